package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/canarydio/canaryd/rollout"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "canaryd",
		Short:         "Progressive delivery for gRPC services on Istio, the GitOps way",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%v\n%s", err, c.UsageString())}
	})
	root.AddCommand(newVersionCmd(), newValidateCmd(), newServeCmd(), newDemoCmd(), newSchemaCmd())
	root.AddCommand(clientCommands()...)
	return root
}

func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return usageError{fmt.Errorf("%s: %v", c.CommandPath(), err)}
		}
		return nil
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print canaryd's version",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintf(c.OutOrStdout(), "canaryd %s\n", buildVersion())
			return nil
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + info.GoVersion
}

func newValidateCmd() *cobra.Command {
	var root, configPath string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check Rollout specs offline; print every problem as FILE:LINE:COL: field: why",
		Long: "validate parses each file (every YAML document in it) and reports every problem at once.\n" +
			"When a rollout's manifest is found (under --root, or in the spec's directory or a parent),\n" +
			"it also checks that the manifest holds the route, with both backends, at weights summing to 100.\n" +
			"With --config it also applies the daemon's egress rules; without, the default rules\n" +
			"(no link-local or cloud-metadata target). It exits 0 when all specs are valid, 1 when\n" +
			"any is not, and 2 on a usage error.",
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(c *cobra.Command, files []string) error {
			pol, err := validatePolicy(configPath)
			if err != nil {
				return err
			}
			bad := false
			for _, file := range files {
				if !validateFile(c, file, root, pol) {
					bad = true
				}
			}
			if bad {
				return exitError{exitFailure}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "the directory the specs' manifest paths are relative to (default: the spec's directory or its nearest parent holding the manifest)")
	cmd.Flags().StringVar(&configPath, "config", "", "the daemon's configuration, for its egress rules")
	return cmd
}

// validatePolicy is the egress policy validate applies: the config's, or the default one,
// which allows any absolute file since there is no config to say which.
func validatePolicy(configPath string) (*rollout.EgressPolicy, error) {
	if configPath == "" {
		return rollout.CompileEgress(rollout.Egress{Files: []string{"/"}})
	}
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	return cfg.egress, nil
}

// validateFile prints the problems of one spec file (its specs, the egress rules, the
// manifests found for it) and reports whether it is valid.
func validateFile(c *cobra.Command, file, root string, pol *rollout.EgressPolicy) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "%s: %v\n", file, err)
		return false
	}
	docs, err := rollout.Parse(file, data)
	if err != nil {
		fmt.Fprintln(c.OutOrStdout(), err)
		return false
	}
	var ps rollout.Problems
	for _, d := range docs {
		ps = append(ps, pol.Check(d)...)
	}
	if len(ps) > 0 {
		fmt.Fprintln(c.OutOrStdout(), ps)
		return false
	}
	if checkManifests(c.OutOrStdout(), c.ErrOrStderr(), root, file, docs) {
		return false
	}
	for _, d := range docs {
		fmt.Fprintf(c.ErrOrStderr(), "%s: rollout %q is valid\n", file, d.Name())
	}
	return true
}
