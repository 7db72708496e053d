package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// barWidth is how many characters the weight bar of the status table has.
const barWidth = 20

func checkOutput(o string) error {
	switch o {
	case "table", "wide", "json", "yaml":
		return nil
	}
	return usageError{fmt.Errorf("-o %q: want table, wide, json or yaml", o)}
}

func newStatusCmd() *cobra.Command {
	var (
		f        clientFlags
		output   string
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show every rollout, or one, as the running daemon sees it",
		Long: "status asks canaryd's API for the rollouts' phase, step, weights, last verdict and next tick.\n" +
			"Steps count from 1 (0: before the first step) in every output.\n\n" +
			"status --watch redraws every rollout every --interval until interrupted.\n" +
			"status NAME --watch waits until the rollout is done, printing each change, like\n" +
			"kubectl argo rollouts status: it exits 0 when it Succeeded, 1 when it RolledBack, was\n" +
			"Aborted or Overridden or its spec is Invalid, 3 when --timeout passed first (--timeout\n" +
			"then caps the whole wait; without it the wait has no limit).\n\n" +
			"Exit codes otherwise: 0 ok, 1 the server refused or could not be reached, 2 wrong usage.",
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if interval <= 0 {
				return usageError{fmt.Errorf("--interval %s: want a positive duration", interval)}
			}
			cl, err := f.newClient(false)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if name != "" && (watch || c.Flags().Changed("timeout")) {
				wait := time.Duration(0)
				if c.Flags().Changed("timeout") {
					wait = f.timeout
				}
				cl.http.Timeout = min(waitRequestTimeout, f.timeout)
				ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return waitRollout(ctx, cl, c.OutOrStdout(), name, output, interval, wait)
			}
			show := func(ctx context.Context, w io.Writer) error { return showStatus(ctx, cl, w, name, output) }
			if !watch {
				return show(c.Context(), c.OutOrStdout())
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return watchLoop(ctx, c.OutOrStdout(), interval, show)
		},
	}
	f.register(cmd)
	outputFlag(cmd, &output)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw until interrupted; with NAME, wait until the rollout is done")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch redraws")
	return cmd
}

// showStatus writes the status of one rollout (name) or of all (name empty) to w.
func showStatus(ctx context.Context, cl *apiClient, w io.Writer, name, output string) error {
	var rs []server.Rollout
	var raw any
	if name == "" {
		var list server.RolloutList
		if err := cl.do(ctx, "GET", "/api/v1/rollouts", nil, nil, &list); err != nil {
			return err
		}
		rs, raw = list.Rollouts, list
	} else {
		var r server.Rollout
		if err := cl.do(ctx, "GET", rolloutPath(name), nil, nil, &r); err != nil {
			return err
		}
		rs, raw = []server.Rollout{r}, r
	}
	if !isTable(output) {
		return encode(w, output, raw)
	}
	writeTable(w, output, rs, time.Now())
	if l, ok := raw.(server.RolloutList); ok && l.Actions == server.ActionsDisabled {
		fmt.Fprintln(w, "\noperator actions are disabled on this daemon: it has no API token (api.tokenFile)")
	}
	if name != "" {
		writeDetails(w, rs[0])
	}
	return nil
}

// watchLoop calls show every interval until ctx ends, clearing the screen first when w is a
// terminal. An answer the server refused (4xx) ends the loop with its error; an unreachable
// server or a 5xx is shown and retried.
func watchLoop(ctx context.Context, w io.Writer, interval time.Duration, show func(context.Context, io.Writer) error) error {
	tty := isTerminal(w)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var buf strings.Builder
		err := show(ctx, &buf)
		if ctx.Err() != nil {
			return nil
		}
		var he *httpError
		if errors.As(err, &he) && he.Status/100 == 4 {
			return err
		}
		if tty {
			io.WriteString(w, "\x1b[H\x1b[2J")
		}
		fmt.Fprintf(w, "canaryd status at %s (every %s; Ctrl-C stops)\n\n", time.Now().Format(time.TimeOnly), interval)
		if err != nil {
			fmt.Fprintf(w, "error: %v (retrying)\n", err)
		}
		io.WriteString(w, buf.String())
		if !tty {
			io.WriteString(w, "\n")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// writeStatusTable writes one line per rollout: NAME PHASE STEP WEIGHTS LAST-VERDICT
// NEXT-TICK MESSAGE.
func writeStatusTable(w io.Writer, rs []server.Rollout, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tSTEP\tWEIGHTS\tLAST-VERDICT\tNEXT-TICK\tMESSAGE")
	for _, r := range rs {
		step, weights := "-", "-"
		if r.Steps > 0 {
			step = fmt.Sprintf("%d/%d", r.Step, r.Steps)
			weights = fmt.Sprintf("%-7s %s", r.Weights, bar(r.Weights.Canary))
		}
		verdict := "-"
		if v := r.LastVerdict; v != nil {
			verdict = fmt.Sprintf("%s %s %s ago", v.Result, v.Gate, ago(now, v.Time))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Phase, step, weights, verdict, nextTick(now, r.NextTick), truncate(oneLine(r.Message), 80))
	}
	tw.Flush()
}

// writeDetails writes what the table leaves out of one rollout: the commit, the message in
// full, the last verdict's reason and evidence, and the spec's problems.
func writeDetails(w io.Writer, r server.Rollout) {
	fmt.Fprintln(w)
	if r.Commit != "" {
		fmt.Fprintf(w, "commit:  %s\n", r.Commit)
	}
	if r.Message != "" {
		fmt.Fprintf(w, "message: %s\n", oneLine(r.Message))
	}
	if v := r.LastVerdict; v != nil {
		fmt.Fprintf(w, "last verdict: %s %s at %s", v.Result, v.Gate, v.Time.Format(time.RFC3339))
		if v.Reason != "" {
			fmt.Fprintf(w, ": %s", oneLine(v.Reason))
		}
		fmt.Fprintln(w)
		for _, e := range v.Evidence {
			fmt.Fprintf(w, "  - %s\n", evidence(e))
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
}

// evidence formats one measurement on one line.
func evidence(e rollout.Evidence) string {
	var parts []string
	if e.Query != "" {
		parts = append(parts, oneLine(e.Query))
	}
	if e.Code != "" {
		parts = append(parts, "code "+e.Code)
	}
	parts = append(parts, "value "+strconv.FormatFloat(e.Value, 'g', 6, 64))
	if e.Threshold != "" {
		parts = append(parts, "threshold "+e.Threshold)
	}
	if e.Samples > 0 {
		parts = append(parts, fmt.Sprintf("%d samples", e.Samples))
	}
	if e.Latency > 0 {
		parts = append(parts, e.Latency.Round(time.Microsecond).String())
	}
	if e.Backend != "" {
		parts = append(parts, "backend "+e.Backend)
	}
	if e.Reason != "" {
		parts = append(parts, oneLine(e.Reason))
	}
	return strings.Join(parts, " · ")
}

// bar draws the canary's share as barWidth characters.
func bar(canary int) string {
	n := min(max(canary, 0), 100) * barWidth / 100
	return "[" + strings.Repeat("█", n) + strings.Repeat("░", barWidth-n) + "]"
}

func nextTick(now, t time.Time) string {
	switch {
	case t.IsZero():
		return "-"
	case !t.After(now):
		return "due"
	}
	return "in " + t.Sub(now).Round(time.Second).String()
}

func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func newHistoryCmd() *cobra.Command {
	var (
		f      clientFlags
		output string
		limit  int
		before uint64
	)
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "Show a rollout's history: checks with their verdicts, steps, commits and who did what",
		Long: "history prints the newest --limit events of a rollout, oldest first; --before SEQ pages\n" +
			"back. -o json or yaml prints every field, the evidence of each verdict included. Steps\n" +
			"count from 1 (0: before the first step), as in status and the commit trailers.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if limit < 1 || limit > server.MaxHistoryLimit {
				return usageError{fmt.Errorf("--limit %d: want 1..%d", limit, server.MaxHistoryLimit)}
			}
			cl, err := f.newClient(false)
			if err != nil {
				return err
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if before > 0 {
				q.Set("before", strconv.FormatUint(before, 10))
			}
			var page server.HistoryPage
			if err := cl.do(c.Context(), "GET", rolloutPath(args[0])+"/history", q, nil, &page); err != nil {
				return err
			}
			if !isTable(output) {
				return encode(c.OutOrStdout(), output, historyView(page))
			}
			writeHistoryTable(c.OutOrStdout(), page)
			return nil
		},
	}
	f.register(cmd)
	outputFlag(cmd, &output)
	cmd.Flags().IntVar(&limit, "limit", 50, "how many events, 1.."+strconv.Itoa(server.MaxHistoryLimit))
	cmd.Flags().Uint64Var(&before, "before", 0, "show events older than this sequence number")
	return cmd
}

// writeHistoryTable writes the page's events oldest first, and how to page further back.
func writeHistoryTable(w io.Writer, page server.HistoryPage) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tEVENT\tRUN\tSTEP\tWEIGHTS\tVERDICT\tCOMMIT\tACTOR\tDETAIL")
	for i := len(page.Events) - 1; i >= 0; i-- {
		ev := page.Events[i]
		step := "-"
		if ev.Step >= 0 {
			step = strconv.Itoa(ev.Step + 1)
		}
		verdict, detail := "-", ev.Reason
		if v := ev.Verdict; v != nil {
			verdict = string(v.Result) + " " + v.Gate
			detail = v.Reason
		}
		if ev.Message != "" {
			detail = strings.TrimPrefix(detail+"; "+ev.Message, "; ")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, ev.Time.UTC().Format("2006-01-02 15:04:05Z"), ev.Kind, ev.Run,
			step, ev.Weights, verdict, dash(short12(ev.Commit)), dash(ev.Actor), truncate(oneLine(detail), 100))
	}
	tw.Flush()
	if len(page.Events) == 0 {
		fmt.Fprintf(w, "no events\n")
	}
	if page.Next != 0 {
		fmt.Fprintf(w, "older events: canaryd history %s --before %d\n", page.Rollout, page.Next)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short12(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
