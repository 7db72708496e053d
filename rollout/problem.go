package rollout

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a spec, with where it is.
type Problem struct {
	File  string `json:"file"`
	Line  int    `json:"line"`
	Col   int    `json:"col"`
	Field string `json:"field,omitempty"`
	Msg   string `json:"message"`
}

// String formats the problem as FILE:LINE:COL: field: why.
func (p Problem) String() string {
	if p.Field == "" {
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", p.File, p.Line, p.Col, p.Field, p.Msg)
}

// Problems is every problem found in one or more specs. It is an error; its message has one
// problem per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Summary says where the first problem is and why, "FILE:LINE: field: why", and how many
// more there are: one line for a status message. It is "" when there are no problems.
func (ps Problems) Summary() string {
	if len(ps) == 0 {
		return ""
	}
	p := ps[0]
	s := fmt.Sprintf("%s:%d: ", p.File, p.Line)
	if p.Field != "" {
		s += p.Field + ": "
	}
	s += p.Msg
	if len(ps) > 1 {
		s += fmt.Sprintf(" (and %d more problems)", len(ps)-1)
	}
	return s
}

// Err returns ps as an error, or nil when there are no problems.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// sort orders the problems by file, line and column, keeping the order of equal ones.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}
