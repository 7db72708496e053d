package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarydio/canaryd/server"
)

// completeTimeout bounds the request shell completion makes for rollout names.
const completeTimeout = 3 * time.Second

// outputFormats are the values of -o, as shell completion offers them.
var outputFormats = []string{"table\taligned columns", "wide\tthe table with more columns", "json\tthe API's fields", "yaml\tthe API's fields"}

// completeNames completes a rollout name from the daemon's list (--server, or
// $CANARYD_SERVER), each with its phase; it offers nothing when the daemon cannot be
// reached in completeTimeout.
func (f *clientFlags) completeNames(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl, err := f.newClient(false)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl.http.Timeout = completeTimeout
	ctx, cancel := context.WithTimeout(c.Context(), completeTimeout)
	defer cancel()
	var list server.RolloutList
	if err := cl.do(ctx, "GET", "/api/v1/rollouts", nil, nil, &list); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, r := range list.Rollouts {
		if strings.HasPrefix(r.Name, toComplete) {
			out = append(out, r.Name+"\t"+string(r.Phase))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// outputFlag registers -o with its completion.
func outputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "table", "table, wide, json or yaml")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
}
