package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/canarydio/canaryd/server"
)

// actionHelp lists the operator actions with what each does.
var actionHelp = []struct{ name, short string }{
	{"pause", "Stop a progressing rollout where it is; checks go on, steps wait for resume"},
	{"resume", "Continue a paused or overridden rollout from the weights in force"},
	{"promote", "Take the next step now, without waiting for the tick, the bake or the gates (a commit; --full: go to 100%)"},
	{"abort", "Send all traffic back to stable now and stop the run (a commit; --reason required)"},
	{"retry", "Start a new run of a rolled-back or aborted rollout"},
	{"undo", "Send the canary back to 0% after Succeeded, or roll back a run, now (a commit; --reason required)"},
}

func newActionCmd(action, short string) *cobra.Command {
	var (
		f      clientFlags
		reason string
		who    string
		full   bool
	)
	cmd := &cobra.Command{
		Use:   action + " NAME --reason TEXT",
		Short: short,
		Long: short + ".\n\nThe action is recorded in the rollout's history with --actor and --reason" +
			" (and in the\ncommit's Rollout-Actor and Rollout-Reason trailers). It needs the API token" +
			" (--token-file or $" + envTokenFile + ").\nExit codes: 0 done, 1 the server refused or could not be reached, 2 wrong usage.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if (action == "abort" || action == "undo") && reason == "" {
				return usageError{fmt.Errorf("%s: --reason is required: say why traffic goes back to stable", action)}
			}
			cl, err := f.newClient(true)
			if err != nil {
				return err
			}
			var res server.ActionResult
			body := server.ActionRequest{Reason: reason, Actor: who, Full: full}
			if err := cl.do(c.Context(), "POST", rolloutPath(args[0])+"/"+action, nil, body, &res); err != nil {
				return err
			}
			r := res.Rollout
			fmt.Fprintf(c.OutOrStdout(), "%s: %s by %s; now %s", r.Name, action, res.Actor, r.Phase)
			if r.Steps > 0 {
				fmt.Fprintf(c.OutOrStdout(), " at step %d/%d, weights %s", r.Step, r.Steps, r.Weights)
			}
			fmt.Fprintln(c.OutOrStdout())
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the history and the commit")
	cmd.Flags().StringVar(&who, "actor", actor(), "who is acting (a person's token names them instead)")
	if action == "promote" {
		cmd.Flags().BoolVar(&full, "full", false, "skip every remaining step and go to 100% now")
	}
	return cmd
}
