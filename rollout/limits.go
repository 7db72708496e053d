package rollout

import (
	"fmt"
	"strings"
)

// Limits on what a spec may hold. They keep parsing and validation cheap and linear, so that a
// careless or hostile file in the repo costs its own rollout an Invalid and nothing else.
const (
	// MaxSpecBytes is the largest spec file Parse reads.
	MaxSpecBytes = 1 << 20
	// MaxDocuments is the most YAML documents one spec file may hold.
	MaxDocuments = 100
	// MaxSteps is the most steps a spec may list: weights rise strictly within 0..100.
	MaxSteps = 101
	// MaxListItems is the most items any other list of a spec may hold.
	MaxListItems = 1000
	// MaxNodes is the most YAML nodes one document may expand to, aliases included.
	MaxNodes = 100_000
	// MaxQueryBytes is the longest PromQL template a metric may have.
	MaxQueryBytes = 8 << 10
	// MaxProbeCount is the most probe calls one check may make.
	MaxProbeCount = 100
)

// listLimit is how many items the list at path may hold.
func listLimit(path string) (int, string) {
	if path == "spec.steps" {
		return MaxSteps, "steps (weights rise strictly within 0..100)"
	}
	return MaxListItems, "items"
}

// tooLarge says why a spec file of n bytes is not read, or returns "".
func tooLarge(n int) string {
	if n <= MaxSpecBytes {
		return ""
	}
	return fmt.Sprintf("the file is %d bytes; a spec file may hold at most %d", n, MaxSpecBytes)
}

// problemIndex answers, in time linear in a field path's length, whether a problem is
// already reported for that field, a part of it, or a field that contains it.
type problemIndex struct {
	fields map[string]bool // fields with a problem
	within map[string]bool // every field that contains, or is, a field with a problem
}

func (x *problemIndex) add(field string) {
	if x.fields == nil {
		x.fields, x.within = map[string]bool{}, map[string]bool{}
	}
	x.fields[field] = true
	for f := field; !x.within[f]; {
		x.within[f] = true
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
}

// related reports whether a problem is recorded for field, within it, or around it.
func (x *problemIndex) related(field string) bool {
	if x.within[field] {
		return true
	}
	for f := field; ; {
		if x.fields[f] {
			return true
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			return false
		}
		f = f[:i]
	}
}
