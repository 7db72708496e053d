package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
)

// checkManifests checks, for each valid rollout of a spec file, that its manifest holds the
// route it names: the rule (or http route) exists and holds both backends, and their
// weights sum to 100. The manifest is looked up as the spec's path relative to root, or,
// when root is empty, in the spec file's directory and each of its parents (a repository's
// checkout). It prints every problem to out as MANIFEST:LINE:COL: why, and a note to errOut
// when a manifest is not found; it returns whether there was a problem.
func checkManifests(out, errOut io.Writer, root, specFile string, docs []*rollout.Document) bool {
	bad := false
	for _, d := range docs {
		path, data, ok := findManifest(root, specFile, d.Spec.Manifest)
		if !ok {
			fmt.Fprintf(errOut, "%s: rollout %q: manifest %s not found beside the spec; its route was not checked\n",
				specFile, d.Name(), d.Spec.Manifest)
			continue
		}
		if _, err := gitops.ReadWeights(data, gitops.RefOf(d)); err != nil {
			fmt.Fprintln(out, manifestProblem(path, d, err))
			bad = true
		}
	}
	return bad
}

// manifestProblem places a manifest's refusal: at the rule the domain's rule looked at,
// else at the top of the manifest.
func manifestProblem(path string, d *rollout.Document, err error) rollout.Problem {
	p := rollout.Problem{File: path, Line: 1, Col: 1, Msg: err.Error()}
	var re *rollout.RouteError
	if errors.As(err, &re) && re.Line > 0 {
		p.Line, p.Col, p.Msg = re.Line, re.Col, re.Msg
	}
	line, col := d.Position("spec.route")
	if !d.Spec.Route.IsObject() {
		line, col = d.Position("spec.virtualService")
	}
	p.Msg += fmt.Sprintf(" (rollout %q, %s:%d:%d)", d.Name(), d.File, line, col)
	return p
}

// findManifest reads the manifest rel, relative to root or to the nearest directory above
// specFile that holds it.
func findManifest(root, specFile, rel string) (string, []byte, bool) {
	if rel == "" || filepath.IsAbs(rel) {
		return "", nil, false
	}
	dirs := []string{root}
	if root == "" {
		dirs = nil
		for dir := filepath.Dir(specFile); ; dir = filepath.Dir(dir) {
			dirs = append(dirs, dir)
			if filepath.Dir(dir) == dir || dir == "." {
				break
			}
		}
	}
	for _, dir := range dirs {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		if data, err := os.ReadFile(path); err == nil {
			return path, data, true
		}
	}
	return "", nil, false
}
