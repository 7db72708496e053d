package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// waitRequestTimeout bounds each request while status waits for a rollout.
const waitRequestTimeout = 30 * time.Second

// Exit codes of `status NAME --watch`, as kubectl argo rollouts status has them: 0 when the
// rollout Succeeded, exitDegraded when it ended any other way (RolledBack, Aborted,
// Overridden, Invalid), exitTimeout when --timeout passed first.
const (
	exitDegraded = 1
	exitTimeout  = 3
)

// waitOutcome says whether a phase ends status's wait and with which exit code.
func waitOutcome(p rollout.Phase) (done bool, code int) {
	switch p {
	case rollout.Succeeded:
		return true, 0
	case rollout.RolledBack, rollout.Aborted, rollout.Overridden, rollout.Invalid:
		return true, exitDegraded
	}
	return false, 0
}

// waitRollout polls one rollout every interval, printing a line whenever its phase, step or
// weights change, until it reaches an outcome (see waitOutcome) or timeout passes (0: no
// limit). It then prints the rollout in output's format and returns an exitError for any
// outcome but Succeeded. A server that cannot be reached is retried; a 4xx ends the wait.
func waitRollout(ctx context.Context, cl *apiClient, w io.Writer, name, output string, interval, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		var r server.Rollout
		err := cl.do(ctx, "GET", rolloutPath(name), nil, nil, &r)
		var he *httpError
		switch {
		case ctx.Err() != nil:
		case errors.As(err, &he) && he.Status/100 == 4:
			return err
		case err != nil:
			fmt.Fprintf(w, "error: %v (retrying)\n", err)
		default:
			if line := progressLine(r); line != last {
				fmt.Fprintln(w, line)
				last = line
			}
			if done, code := waitOutcome(r.Phase); done {
				return finishWait(w, r, output, code)
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				fmt.Fprintf(w, "timed out after %s waiting for %s (last: %s)\n", timeout, name, dash(last))
				return exitError{exitTimeout}
			}
			return exitError{exitFailure}
		case <-t.C:
		}
	}
}

// progressLine is one line of a waiting status: the phase, the step and the weights.
func progressLine(r server.Rollout) string {
	s := fmt.Sprintf("%s: %s", r.Name, r.Phase)
	if r.Steps > 0 {
		s += fmt.Sprintf(" step %d/%d %s", r.Step, r.Steps, r.Weights)
	}
	if r.Message != "" {
		s += " - " + truncate(oneLine(r.Message), 100)
	}
	return s
}

func finishWait(w io.Writer, r server.Rollout, output string, code int) error {
	if isTable(output) {
		writeTable(w, output, []server.Rollout{r}, time.Now())
		writeDetails(w, r)
	} else if err := encode(w, output, r); err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}
