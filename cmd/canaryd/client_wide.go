package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/canarydio/canaryd/server"
)

// isTable reports whether output is one of the tables (table, wide) rather than an encoding.
func isTable(output string) bool { return output == "table" || output == "wide" }

// writeTable writes the status table, or with output "wide" the wide one.
func writeTable(w io.Writer, output string, rs []server.Rollout, now time.Time) {
	if output == "wide" {
		writeWideTable(w, rs, now)
		return
	}
	writeStatusTable(w, rs, now)
}

// writeWideTable is the status table with the run, the subsets, the commit and when the
// rollout last changed: NAME PHASE RUN STEP STABLE CANARY WEIGHTS LAST-VERDICT NEXT-TICK
// COMMIT UPDATED MESSAGE.
func writeWideTable(w io.Writer, rs []server.Rollout, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tRUN\tSTEP\tSTABLE\tCANARY\tWEIGHTS\tLAST-VERDICT\tNEXT-TICK\tCOMMIT\tUPDATED\tMESSAGE")
	for _, r := range rs {
		step, weights := "-", "-"
		if r.Steps > 0 {
			step, weights = fmt.Sprintf("%d/%d", r.Step, r.Steps), r.Weights.String()
		}
		verdict := "-"
		if v := r.LastVerdict; v != nil {
			verdict = fmt.Sprintf("%s %s %s ago", v.Result, v.Gate, ago(now, v.Time))
		}
		updated := "-"
		if !r.Updated.IsZero() {
			updated = ago(now, r.Updated) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Phase, r.Run, step, dash(r.Stable), dash(r.Canary),
			weights, verdict, nextTick(now, r.NextTick), dash(short12(r.Commit)), updated, oneLine(r.Message))
	}
	tw.Flush()
}
