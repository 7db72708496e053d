package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// parseSpecs parses the spec files at the head and checks each valid rollout against what
// only the daemon knows: its egress rules and the repo (the manifest, the other specs). A
// rollout that fails a check is Invalid with positioned problems; the others are untouched.
func (d *daemon) parseSpecs(files map[string][]byte) map[string]*entry {
	entries := parseSpecs(files)
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
	return entries
}

// invalidate makes e Invalid with ps added to its problems. Its source changes with them, so
// that the catalog keeps no valid document for it, and takes a fixed one when they go.
func (e *entry) invalidate(ps rollout.Problems) {
	e.doc, e.sched = nil, nil
	e.problems = append(e.problems, ps...)
	e.source += "\x00" + ps.Error()
}

// prepareAll prepares each document and returns those that are ready. A rollout whose
// preparation fails (its manifest cannot be read, its history not rebuilt) is marked Invalid
// in the catalog with the reason, and the others go on.
func (d *daemon) prepareAll(ctx context.Context, docs []*rollout.Document) []*rollout.Document {
	ready := docs[:0:0]
	for _, doc := range docs {
		if err := d.prepare(ctx, doc); err != nil {
			line, col := doc.Position("spec.manifest")
			p := rollout.Problem{File: doc.File, Line: line, Col: col, Field: "spec.manifest",
				Msg: fmt.Sprintf("cannot start the rollout: %v", err)}
			d.log.Warn("invalid spec", "rollout", doc.Name(), "problems", p.String())
			d.cat.invalidate(doc.Name(), rollout.Problems{p})
			continue
		}
		ready = append(ready, doc)
	}
	d.gaugeInvalid()
	return ready
}

// gaugeInvalid sets the phase gauges of every Invalid rollout, which the controller never
// saves: /metrics says canaryd_rollout_phase{phase="Invalid"} 1 for each.
func (d *daemon) gaugeInvalid() {
	m, ok := d.metrics.(interface{ SetRollout(server.Rollout) })
	if !ok || d.db == nil {
		return
	}
	for _, e := range d.cat.all() {
		if len(e.problems) == 0 {
			continue
		}
		st, found, err := d.db.State(e.name)
		if err != nil {
			found = false
		}
		m.SetRollout(source{d}.view(e, st, found))
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
	data, _, err := d.repo.ReadManifest(doc.Spec.Manifest, gitops.MaxManifestBytes)
	if err == nil {
		_, err = gitops.ReadWeights(data, gitops.RefOf(doc))
	}
	if err == nil {
		return nil
	}
	line, col := doc.Position("spec.manifest")
	return rollout.Problems{{File: doc.File, Line: line, Col: col, Field: "spec.manifest", Msg: err.Error()}}
}

// markConflicts makes Invalid every pair of valid rollouts that target the same route of the
// same VirtualService (an unnamed route conflicts with every route of its VirtualService),
// each naming the other's file and line: one route, one rollout.
func markConflicts(entries map[string]*entry) {
	var valid []*entry
	for _, e := range entries {
		if e.doc != nil {
			valid = append(valid, e)
		}
	}
	slices.SortFunc(valid, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
	byVS := map[rollout.ObjectRef][]*entry{}
	for _, e := range valid {
		byVS[e.doc.Spec.VirtualService] = append(byVS[e.doc.Spec.VirtualService], e)
	}
	found := map[*entry]rollout.Problems{}
	for _, group := range byVS {
		for i, a := range group {
			for _, b := range group[i+1:] {
				ra, rb := a.doc.Spec.Route, b.doc.Spec.Route
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

// conflict is doc's problem with other, which targets the same route.
func conflict(doc, other *rollout.Document) rollout.Problem {
	line, col := doc.Position("spec.virtualService")
	ol, oc := other.Position("spec.virtualService")
	route := "its route"
	if r := cmp.Or(doc.Spec.Route, other.Spec.Route); r != "" {
		route = fmt.Sprintf("route %q", r)
	}
	return rollout.Problem{File: doc.File, Line: line, Col: col, Field: "spec.virtualService",
		Msg: fmt.Sprintf("rollout %q (%s:%d:%d) also manages %s of virtualservice %s; one route, one rollout: remove one spec",
			other.Name(), other.File, ol, oc, route, doc.Spec.VirtualService)}
}
