// Command canaryd is the progressive-delivery daemon and its command line: validate specs,
// serve rollouts, and (later) talk to a running daemon for on-call work.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	_ "time/tzdata" // schedules name time zones; do not depend on the host's zoneinfo
)

// Exit codes: 0 success, 1 failure (such as an invalid spec), 2 wrong usage.
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error in how canaryd was called.
type usageError struct{ error }

// exitError carries an exit code for a failure that has already been reported.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs canaryd with args and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command "):
		// cobra reports an unknown command with this plain error, as kubectl does.
		fmt.Fprintln(stderr, "canaryd:", err)
		if !errors.As(err, &ue) {
			fmt.Fprintln(stderr, "Run 'canaryd --help' for the commands.")
		}
		return exitUsage
	default:
		fmt.Fprintln(stderr, "canaryd:", err)
		return exitFailure
	}
}
