package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// parseSpecs parses the spec files at the head and checks each valid rollout against what
// only the daemon knows: its egress rules and the repo (the manifest, the other specs). A
// rollout that fails a check is Invalid with positioned problems; the others are untouched.
func (d *daemon) parseSpecs(files map[string][]byte) map[string]*entry {
	entries := d.specs.parseSpecs(files)
	for _, e := range entries {
		if e.doc == nil {
			continue
		}
		var ps rollout.Problems
		if d.cfg.egress != nil {
			ps = d.cfg.egress.Check(e.doc)
		}
		ps = append(ps, d.checkManifest(e.doc)...)
		if len(ps) > 0 {
			e.invalidate(ps)
		}
	}
	markConflicts(entries)
	d.lastValidSpecs(entries)
	return entries
}

// Bounds of the search for a rollout's last valid spec in the spec file's history.
const (
	lastValidDepth    = 500 // commits looked back
	lastValidVersions = 20  // earlier versions of the file parsed
)

// lastValidSpecs finds, for each invalid rollout that canaryd has not run since it started
// but that the store says has a canary with traffic under way (a restart while its spec was
// invalid), the last valid version of its spec in Git, so that the canary is not left
// unguarded: the rollout runs on it, Invalidated, as if its spec had turned invalid while it
// ran. A rollout with no such version stays Invalid.
func (d *daemon) lastValidSpecs(entries map[string]*entry) {
	if d.db == nil {
		return
	}
	for name, e := range entries {
		if e.doc != nil || len(e.problems) == 0 {
			continue
		}
		if _, known := d.cat.get(name); known {
			continue // the catalog keeps what it ran (replace)
		}
		st, ok, err := d.db.State(name)
		if err != nil || !ok || st.Weights.Canary == 0 || (st.Phase != rollout.Progressing && st.Phase != rollout.Paused) {
			continue
		}
		if doc := d.lastValid(e); doc != nil {
			e.runOnLastValid(doc, doc.Schedule())
			d.log.Warn("invalid spec: running on the last valid one in git", "rollout", name, "weight", st.Weights.Canary)
		}
	}
}

// lastValid returns the newest earlier version of e's spec in Git that validates and passes
// the daemon's checks, or nil.
func (d *daemon) lastValid(e *entry) *rollout.Document {
	file, _, _ := strings.Cut(e.source, "\x00")
	versions, err := d.repo.Versions(file, lastValidDepth, lastValidVersions, rollout.MaxSpecBytes)
	if err != nil {
		d.log.Warn("read earlier versions of a spec", "rollout", e.name, "err", err)
	}
	for _, data := range versions {
		docs, _ := rollout.Parse(file, data)
		for _, doc := range docs {
			if doc.Name() != e.name || len(doc.Problems) > 0 {
				continue
			}
			if d.cfg.egress != nil && len(d.cfg.egress.Check(doc)) > 0 {
				continue
			}
			return doc
		}
	}
	return nil
}

// invalidate makes e Invalid with ps added to its problems. Its source changes with them, so
// that the catalog keeps no valid document for it, and takes a fixed one when they go.
func (e *entry) invalidate(ps rollout.Problems) {
	e.doc, e.sched = nil, nil
	e.problems = append(e.problems, ps...)
	e.source += "\x00" + ps.Error()
}

// gaugeInvalid sets the phase gauges of every Invalid rollout, which the controller never
// saves: /metrics says canaryd_rollout_phase{phase="Invalid"} 1 for each.
func (d *daemon) gaugeInvalid() {
	m, ok := d.metrics.(interface{ SetRollout(server.Rollout) })
	if !ok || d.db == nil {
		return
	}
	var es []*entry
	for _, e := range d.cat.all() {
		if len(e.problems) > 0 && !e.onLastValid() { // the controller reports an invalidated spec's rollout
			es = append(es, e)
		}
	}
	for i, v := range d.db.StateViews(entryNames(es)) {
		m.SetRollout(source{d}.view(es[i], v.State, v.Found && v.Err == nil))
	}
}

// invalidate replaces the entry of name by an Invalid copy with ps added.
func (c *catalog) invalidate(name string, ps rollout.Problems) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.entries[name]
	if !ok {
		return
	}
	e := *old
	e.problems = append(append(rollout.Problems(nil), old.problems...), ps...)
	e.invalidate(nil)
	e.source += "\x00prepare"
	c.entries[name] = &e
}

// checkManifest reads the rollout's manifest at the head as the editor will, and reports
// why the rollout cannot run on it: a path outside the repo or through a link, a missing,
// binary or too large file, no such VirtualService or route, subsets missing, weights that
// do not sum to 100.
func (d *daemon) checkManifest(doc *rollout.Document) rollout.Problems {
	_, err := d.repo.RouteWeights(doc, int64(d.cfg.Git.MaxManifestBytes))
	if err == nil {
		return nil
	}
	line, col := doc.Position("spec.manifest")
	return rollout.Problems{{File: doc.File, Line: line, Col: col, Field: "spec.manifest", Msg: err.Error()}}
}

// markConflicts makes Invalid every pair of valid rollouts that target the same route of the
// same object (an unnamed route conflicts with every route of its object), each naming the
// other's file and line: one route, one rollout.
func markConflicts(entries map[string]*entry) {
	var valid []*entry
	for _, e := range entries {
		if e.doc != nil {
			valid = append(valid, e)
		}
	}
	slices.SortFunc(valid, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
	type object struct{ kind, namespace, name string }
	byObject := map[object][]*entry{}
	for _, e := range valid {
		t := e.doc.Spec.Target()
		k := object{t.Kind, t.Namespace, t.Name}
		byObject[k] = append(byObject[k], e)
	}
	found := map[*entry]rollout.Problems{}
	for _, group := range byObject {
		for i, a := range group {
			for _, b := range group[i+1:] {
				ra, rb := a.doc.Spec.Target().Route, b.doc.Spec.Target().Route
				if ra != rb && ra != "" && rb != "" {
					continue
				}
				found[a] = append(found[a], conflict(a.doc, b.doc))
				found[b] = append(found[b], conflict(b.doc, a.doc))
			}
		}
	}
	for e, ps := range found {
		e.invalidate(ps)
	}
}

// targetField is the spec field that names what doc steps.
func targetField(doc *rollout.Document) string {
	if doc.Spec.Route.IsObject() {
		return "spec.route"
	}
	return "spec.virtualService"
}

// conflict is doc's problem with other, which targets the same route.
func conflict(doc, other *rollout.Document) rollout.Problem {
	field := targetField(doc)
	line, col := doc.Position(field)
	ol, oc := other.Position(targetField(other))
	t := doc.Spec.Target()
	if t.Route == "" {
		t.Route = other.Spec.Target().Route
	}
	return rollout.Problem{File: doc.File, Line: line, Col: col, Field: field,
		Msg: fmt.Sprintf("rollout %q (%s:%d:%d) also manages %s; one route, one rollout: remove one spec",
			other.Name(), other.File, ol, oc, t)}
}

// invalidatedStatus is the status message of a rollout that runs on the last valid version
// of its invalid spec: why, then what the rollout itself last said.
func invalidatedStatus(ps rollout.Problems, said string) string {
	msg := "spec invalid at " + ps.Summary() + "; running on the last valid spec"
	if said != "" && !strings.Contains(said, msg) {
		msg += " (" + said + ")"
	}
	return msg
}

// recordInvalid appends one history event per distinct reason to every invalid rollout that
// does not run, while this replica leads (followers never write): "spec invalid at
// FILE:LINE: why". A reason already at the end of the rollout's history is not repeated,
// across restarts too.
func (d *daemon) recordInvalid(head string) {
	if d.db == nil || !d.leading.Load() {
		return
	}
	d.invalidMu.Lock()
	defer d.invalidMu.Unlock()
	for _, e := range d.cat.all() {
		if len(e.problems) == 0 || e.doc != nil {
			continue
		}
		reason := e.problems.Error()
		last, err := d.db.History(e.name, 0, 1)
		if err != nil {
			d.log.Warn("read history", "rollout", e.name, "err", err)
			continue
		}
		if len(last) == 1 && last[0].Kind == rollout.EventInvalid && last[0].Reason == reason {
			continue
		}
		ev := rollout.Event{Time: time.Now(), Kind: rollout.EventInvalid, Phase: rollout.Invalid, Step: -1, Commit: head,
			Reason: reason, Message: "spec invalid at " + e.problems.Summary() + "; the rollout does not run until it is fixed"}
		if err := d.db.Append(e.name, ev); err != nil {
			d.log.Warn("record an invalid spec", "rollout", e.name, "err", err)
		}
	}
}
