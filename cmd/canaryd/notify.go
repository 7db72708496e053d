package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canarydio/canaryd/notify"
	"github.com/canarydio/canaryd/rollout"
)

// NotifyConfig is the notify: section of the daemon's configuration.
type NotifyConfig struct {
	Queue     int              `yaml:"queue"`
	Receivers []NotifyReceiver `yaml:"receivers"`
}

// NotifyReceiver is one place notifications go.
type NotifyReceiver struct {
	Name     string           `yaml:"name"`
	Kind     string           `yaml:"kind"`
	URL      string           `yaml:"url"`
	URLFile  string           `yaml:"urlFile"`
	Events   []string         `yaml:"events"`
	Rollouts []string         `yaml:"rollouts"`
	Timeout  rollout.Duration `yaml:"timeout"`
}

// notifyEvents are the event kinds a receiver may name.
var notifyEvents = []rollout.EventKind{rollout.EventStep, rollout.EventRolledBack, rollout.EventAborted,
	rollout.EventOverridden, rollout.EventPaused, rollout.EventResumed, rollout.EventPromoted,
	rollout.EventSucceeded, rollout.EventInvalid, rollout.EventStarted}

// checkNotify reports the problems of the notify: section.
func checkNotify(cfg *Config, bad func(field, msg string)) {
	for i, r := range cfg.Notify.Receivers {
		at := fmt.Sprintf("notify.receivers[%d]", i)
		if r.Name == "" {
			bad(at+".name", "is required")
		}
		if !slices.Contains(notify.Kinds, r.Kind) {
			bad(at+".kind", fmt.Sprintf("must be one of %s, not %q", strings.Join(notify.Kinds, ", "), r.Kind))
		}
		if (r.URL == "") == (r.URLFile == "") {
			bad(at+".url", "set url or urlFile (a file holding the URL, for Slack's and Teams' secret URLs)")
		}
		for j, e := range r.Events {
			if !slices.Contains(notifyEvents, rollout.EventKind(e)) {
				bad(fmt.Sprintf("%s.events[%d]", at, j), fmt.Sprintf("unknown event %q (known: %v)", e, notifyEvents))
			}
		}
	}
}

// newNotifier builds the notifier of cfg's notify: section; nil when it lists no receiver.
func newNotifier(cfg NotifyConfig, reg prometheus.Registerer, log *slog.Logger) (*eventNotifier, error) {
	if len(cfg.Receivers) == 0 {
		return nil, nil
	}
	var rs []notify.Receiver
	for _, r := range cfg.Receivers {
		url := r.URL
		if r.URLFile != "" {
			data, err := os.ReadFile(r.URLFile)
			if err != nil {
				return nil, fmt.Errorf("notify receiver %s: url file: %w", r.Name, err)
			}
			url = strings.TrimSpace(string(data))
		}
		nr := notify.Receiver{Name: r.Name, Kind: r.Kind, URL: url, Rollouts: r.Rollouts, Timeout: r.Timeout.Duration}
		for _, e := range r.Events {
			nr.Events = append(nr.Events, rollout.EventKind(e))
		}
		rs = append(rs, nr)
	}
	e := &eventNotifier{fails: map[string]*rollout.Verdict{}}
	n, err := notify.New(notify.Options{Receivers: rs, Queue: cfg.Queue, Registerer: reg, Logger: log, OnResult: e.delivered})
	if err != nil {
		return nil, err
	}
	e.n = n
	return e, nil
}

// eventNotifier turns saved history into notifications. It remembers each rollout's last
// failing verdict, so that a rollback's notification carries the check that caused it. A
// nil *eventNotifier does nothing.
type eventNotifier struct {
	n     *notify.Notifier
	mu    sync.Mutex
	fails map[string]*rollout.Verdict
	// appendTo records each delivery's outcome in the rollout's history; set by historyTo
	// before anything is sent.
	appendTo func(name string, evs ...rollout.Event) error
	log      *slog.Logger
}

// historyTo makes every delivery's outcome an event in the rollout's history, appended
// with appendTo (the store's Append). It must be called before run.
func (e *eventNotifier) historyTo(appendTo func(name string, evs ...rollout.Event) error, log *slog.Logger) {
	if e == nil {
		return
	}
	e.appendTo, e.log = appendTo, log
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
}

// delivered records the outcome of one delivery as a notified event: one small write per
// delivery, from the receiver's worker, never on the way of a move.
func (e *eventNotifier) delivered(receiver string, m notify.Message, result string, err error) {
	if e.appendTo == nil {
		return
	}
	ev := rollout.Event{Time: time.Now(), Rollout: m.Rollout, Kind: rollout.EventNotified, Run: m.Run,
		Step: m.Step - 1, Weights: m.Weights, Phase: m.Phase, Commit: m.Commit, Actor: receiver, Reason: result,
		Message: fmt.Sprintf("%s notification to %s: %s", m.Event, receiver, result)}
	if err != nil {
		ev.Message += ": " + err.Error()
	}
	if err := e.appendTo(m.Rollout, ev); err != nil {
		e.log.Warn("notification outcome not recorded", "rollout", m.Rollout, "receiver", receiver, "err", err)
	}
}

// saved queues a notification for each event that was just saved; it never blocks.
func (e *eventNotifier) saved(evs []rollout.Event) {
	if e == nil {
		return
	}
	for _, ev := range evs {
		e.mu.Lock()
		switch {
		case ev.Kind == rollout.EventStarted:
			delete(e.fails, ev.Rollout)
		case ev.Verdict != nil && ev.Verdict.Result == rollout.Fail:
			e.fails[ev.Rollout] = ev.Verdict
		}
		fail := e.fails[ev.Rollout]
		e.mu.Unlock()
		if ev.Kind != rollout.EventRolledBack {
			fail = nil
		}
		e.n.Notify(notify.FromEvent(ev, fail))
	}
}

// specs notifies invalid specs (once per distinct set of problems) and forgets fixed ones.
func (e *eventNotifier) specs(entries []*entry, head string) {
	if e == nil {
		return
	}
	for _, en := range entries {
		switch {
		case en.onLastValid():
			// Its rollout runs on the last valid spec: the controller's invalid event notifies.
		case len(en.problems) > 0:
			e.n.Invalid(en.name, head, en.problems.Error())
		default:
			e.n.Valid(en.name)
		}
	}
}

// run delivers notifications until ctx ends.
func (e *eventNotifier) run(ctx context.Context) error {
	if e == nil {
		return nil
	}
	return e.n.Run(ctx)
}
