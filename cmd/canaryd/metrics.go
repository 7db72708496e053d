package main

import (
	"github.com/canarydio/canaryd/server"
)

// rolloutPublisher is the part of *server.Metrics that follows the catalog.
type rolloutPublisher interface {
	SetRollout(server.Rollout)
	KeepRollouts(names []string)
	RolloutError(name string)
}

// publishRollouts sets the phase and weight series of every rollout the specs define,
// Invalid ones and never-saved ones included, and deletes the series of rollouts whose
// specs are gone. It reads the store, not the network.
func (d *daemon) publishRollouts() {
	d.notify.specs(d.cat.all(), d.specsHead)
	p, ok := d.metrics.(rolloutPublisher)
	if !ok {
		return
	}
	var names []string
	es := d.cat.all()
	for i, v := range d.db.StateViews(entryNames(es)) {
		if v.Err != nil {
			d.log.Warn("read state for metrics", "rollout", es[i].name, "err", v.Err)
			continue
		}
		p.SetRollout(source{d}.view(es[i], v.State, v.Found))
		names = append(names, es[i].name)
	}
	p.KeepRollouts(names)
}

// rolloutError counts an error of one rollout besides the daemon-wide count.
func (d *daemon) rolloutError(name string) {
	if p, ok := d.metrics.(rolloutPublisher); ok {
		p.RolloutError(name)
	}
}
