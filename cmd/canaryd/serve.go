package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/canarydio/canaryd/store"
)

// errNotWired says plainly what serve cannot do yet, rather than pretending to run rollouts.
var errNotWired = errors.New("serve is not wired yet: the Git, analysis and cluster adapters join the controller in a later release; " +
	"this build only checks the config and the data dir")

func newServeCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve --config canaryd.yaml",
		Short: "Run the daemon (skeleton: checks the config and opens the store)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if configPath == "" {
				return usageError{errors.New("serve: --config is required")}
			}
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			db, err := store.Open(filepath.Join(cfg.DataDir, "canaryd.db"), store.Options{})
			if err != nil {
				return err
			}
			defer db.Close()
			fmt.Fprintf(c.ErrOrStderr(), "config %s is valid; store %s opened\n", configPath, db.Path())
			return errNotWired
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the daemon's configuration file")
	return cmd
}
