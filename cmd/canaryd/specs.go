package main

import (
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// entry is one rollout as the repo's specs define it: valid (doc set, no problems) or not.
type entry struct {
	name     string
	doc      *rollout.Document
	sched    rollout.Schedule // doc's schedule, parsed once
	problems rollout.Problems
	source   string // the document's file and its bytes, to tell a changed spec from a re-read one
}

// memoSchedule remembers a schedule's last answer: the status list asks every rollout's
// next tick on each rebuild, thousands of times a second during a storm, and a cron
// schedule walks the calendar to answer. Next(t) is the same for every t from the time it
// was asked at up to the answer, as no activation lies between.
type memoSchedule struct {
	s          rollout.Schedule
	mu         sync.Mutex
	from, next time.Time
}

func (m *memoSchedule) Next(t time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.next.IsZero() && !t.Before(m.from) && t.Before(m.next) {
		return m.next
	}
	m.from, m.next = t, m.s.Next(t)
	return m.next
}

// catalog is the set of rollouts read from the repo's specs, replaced on every fetch.
type catalog struct {
	mu      sync.Mutex
	entries map[string]*entry
}

// parseSpecs turns the spec files at the head into entries. A document that does not
// validate becomes an entry with problems; a file with no decodable document becomes one
// named after the file, so that it shows up in status rather than disappearing.
func parseSpecs(files map[string][]byte) map[string]*entry {
	return (*specCache)(nil).parseSpecs(files)
}

// specCache keeps each spec file's parse by its bytes, so that a reload after pushes that
// changed only manifests (every step's commit) parses no spec again: with thousands of
// rollouts that is most of a reload's cost. Documents are never changed after parsing.
type specCache struct {
	files map[string]parsedSpec
}

type parsedSpec struct {
	data string
	docs []*rollout.Document
	err  error
}

// parse returns rollout.Parse of data, from the cache when file held the same bytes at the
// last reload; next collects what the following reload may reuse.
func (c *specCache) parse(file string, data []byte, next map[string]parsedSpec) ([]*rollout.Document, error) {
	if c != nil {
		if p, ok := c.files[file]; ok && p.data == string(data) {
			next[file] = p
			return p.docs, p.err
		}
	}
	docs, err := rollout.Parse(file, data)
	next[file] = parsedSpec{data: string(data), docs: docs, err: err}
	return docs, err
}

// parseSpecs is the package's parseSpecs, reusing the parses of unchanged files; a nil
// cache parses everything.
func (c *specCache) parseSpecs(files map[string][]byte) map[string]*entry {
	next := map[string]parsedSpec{}
	defer func() {
		if c != nil {
			c.files = next
		}
	}()
	out := map[string]*entry{}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, file := range names {
		data := files[file]
		docs, err := c.parse(file, data, next)
		for _, doc := range docs {
			e := &entry{name: doc.Name(), problems: doc.Problems, source: file + "\x00" + string(data)}
			if e.name == "" {
				e.name = strings.TrimSuffix(path.Base(file), path.Ext(file))
			}
			if len(e.problems) == 0 {
				e.doc, e.sched = doc, &memoSchedule{s: doc.Schedule()}
			}
			if _, dup := out[e.name]; dup {
				e.doc = nil
				e.problems = append(e.problems, rollout.Problem{File: file, Line: 1, Col: 1, Field: "metadata.name",
					Msg: "another spec file defines a rollout of this name"})
			}
			out[e.name] = e
		}
		if len(docs) == 0 && err != nil {
			name := strings.TrimSuffix(path.Base(file), path.Ext(file))
			ps, _ := err.(rollout.Problems)
			out[name] = &entry{name: name, problems: ps, source: file + "\x00" + string(data)}
		}
	}
	return out
}

// replace installs the new entries, keeping the old document of every rollout whose spec
// did not change (so the controller sees a change only when there is one). A rollout that
// ran on a valid spec whose new version is invalid keeps running on the last valid one,
// marked Invalidated (see keepLastValid). It returns the documents to run.
func (c *catalog) replace(next map[string]*entry) []*rollout.Document {
	c.mu.Lock()
	defer c.mu.Unlock()
	var docs []*rollout.Document
	for name, e := range next {
		old, ok := c.entries[name]
		switch {
		case ok && old.source == e.source:
			next[name] = old
			e = old
		case ok && old.doc != nil && e.doc == nil && len(e.problems) > 0:
			e.keepLastValid(old)
		}
		if e.doc != nil {
			docs = append(docs, e.doc)
		}
	}
	c.entries = next
	slices.SortFunc(docs, func(a, b *rollout.Document) int { return strings.Compare(a.Name(), b.Name()) })
	return docs
}

// keepLastValid makes e, whose spec is invalid, run on old's document, the last valid version
// of its spec, so that a canary with traffic is never left unguarded: its gates keep
// checking and a failing canary rolls back, but it takes no step forward until the spec is
// fixed (rollout.Document.Invalidated). Status shows e's problems beside the rollout's phase.
func (e *entry) keepLastValid(old *entry) { e.runOnLastValid(old.doc, old.sched) }

// runOnLastValid makes e, whose spec is invalid, run on last, the last valid version of it.
func (e *entry) runOnLastValid(last *rollout.Document, sched rollout.Schedule) {
	doc := *last
	doc.Invalidated = e.problems
	e.doc, e.sched = &doc, sched
}

// onLastValid reports whether e runs on the last valid version of its invalid spec.
func (e *entry) onLastValid() bool { return e.doc != nil && len(e.doc.Invalidated) > 0 }

func (c *catalog) get(name string) (*entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	return e, ok
}

// entryNames returns the names of es, in their order.
func entryNames(es []*entry) []string {
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.name
	}
	return names
}

func (c *catalog) all() []*entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*entry, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
	return out
}
