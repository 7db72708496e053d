package istio_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/kubetest"
)

// Short lease timings, so takeovers happen within a test.
const (
	leaseDuration = 5 * time.Second
	renewDeadline = 4 * time.Second
	retryPeriod   = 250 * time.Millisecond
)

func leaseOpts(ns, id string) istio.LeaseOptions {
	return istio.LeaseOptions{Namespace: ns, Name: "canaryd", Identity: id,
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod}
}

// replica is one canaryd process: it acts (sets weights) only while Elect
// says it leads.
type replica struct {
	id      string
	actions atomic.Int64
	acting  atomic.Bool
	cancel  context.CancelFunc
	done    chan error
}

// actors counts replicas acting at once; max records the most ever seen.
type actors struct {
	now, max atomic.Int32
}

func (a *actors) enter() {
	n := a.now.Add(1)
	for {
		m := a.max.Load()
		if n <= m || a.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func startReplica(t *testing.T, f *fixture, id string, all *actors) *replica {
	t.Helper()
	r := f.router(t, nil)
	rep := &replica{id: id, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	rep.cancel = cancel
	go func() {
		rep.done <- istio.Elect(ctx, f.env.Config, leaseOpts(f.ns, id), func(ctx context.Context) error {
			all.enter()
			rep.acting.Store(true)
			defer func() { rep.acting.Store(false); all.now.Add(-1) }()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-tick.C:
				}
				if err := r.SetWeights(ctx, f.doc, rollout.CanaryAt(i%2*40)); err != nil && ctx.Err() == nil {
					return fmt.Errorf("%s: %w", id, err)
				}
				rep.actions.Add(1)
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-rep.done })
	return rep
}

// stop cancels the replica and returns what Elect returned.
func (r *replica) stop() error {
	r.cancel()
	err := <-r.done
	r.done <- err // for the cleanup
	return err
}

// TestElectOneActs: two replicas against one API server: exactly one acts;
// stopping it hands over to the other within the lease duration.
func TestElectOneActs(t *testing.T) {
	f := newFixture(t, nil)
	all := &actors{}
	a := startReplica(t, f, "replica-a", all)
	b := startReplica(t, f, "replica-b", all)
	var leader, follower *replica
	kubetest.Eventually(t, 30*time.Second, func() (bool, string) {
		switch {
		case a.actions.Load() >= 10:
			leader, follower = a, b
		case b.actions.Load() >= 10:
			leader, follower = b, a
		}
		return leader != nil, fmt.Sprintf("no replica acted 10 times (a %d, b %d)", a.actions.Load(), b.actions.Load())
	})
	if n := follower.actions.Load(); n != 0 {
		t.Fatalf("the follower %s acted %d times while %s led", follower.id, n, leader.id)
	}
	if err := leader.stop(); err != nil {
		t.Fatalf("stopped leader's Elect = %v, want nil", err)
	}
	if leader.acting.Load() {
		t.Fatal("the stopped leader still acts")
	}
	stopped := leader.actions.Load()
	kubetest.Eventually(t, leaseDuration, func() (bool, string) {
		return follower.actions.Load() > 0, fmt.Sprintf("%s did not take over", follower.id)
	})
	if leader.actions.Load() != stopped {
		t.Error("the stopped leader acted again")
	}
	if m := all.max.Load(); m != 1 {
		t.Errorf("%d replicas acted at once, want 1", m)
	}
}

// TestElectLeaseTakenAway: when another identity takes the Lease, the
// leader's run is cancelled at once (fail-stop, not after its renew
// deadline) and Elect says leadership was lost.
func TestElectLeaseTakenAway(t *testing.T) {
	f := newFixture(t, nil)
	all := &actors{}
	a := startReplica(t, f, "replica-a", all)
	kubetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return a.actions.Load() > 0, "replica-a never acted"
	})
	leases := f.kube.CoordinationV1().Leases(f.ns)
	ctx := context.Background()
	// Take the lease with a long duration, as a replica with a skewed clock
	// or an operator would.
	for {
		l, err := leases.Get(ctx, "canaryd", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.Spec.HolderIdentity = ptr.To("thief")
		l.Spec.LeaseDurationSeconds = ptr.To[int32](3600)
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		if _, err = leases.Update(ctx, l, metav1.UpdateOptions{}); err == nil {
			break
		}
		if !strings.Contains(err.Error(), "modified") {
			t.Fatal(err)
		}
	}
	var err error
	select {
	case err = <-a.done:
		a.done <- err
	case <-time.After(renewDeadline):
		t.Fatalf("replica-a still leads %s after its lease was taken", renewDeadline)
	}
	if !errors.Is(err, istio.ErrLeadershipLost) || !strings.Contains(err.Error(), `"thief"`) {
		t.Fatalf("Elect = %v, want ErrLeadershipLost naming the thief", err)
	}
	if a.acting.Load() {
		t.Error("replica-a still acts after losing the lease")
	}
	l, err := leases.Get(ctx, "canaryd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(l.Spec.HolderIdentity, ""); got != "thief" {
		t.Errorf("lease holder %q after the loss, want thief (a loser must not release another's lease)", got)
	}
}

// TestElectTakesOverCrashedLeader: a leader that died without releasing its
// Lease is replaced once the lease expires.
func TestElectTakesOverCrashedLeader(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	now := metav1.NewMicroTime(time.Now())
	_, err := f.kube.CoordinationV1().Leases(f.ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "canaryd", Namespace: f.ns},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To("crashed"),
			LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)),
			AcquireTime:          &now,
			RenewTime:            &now,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := &actors{}
	a := startReplica(t, f, "replica-a", all)
	kubetest.Eventually(t, 3*leaseDuration, func() (bool, string) {
		return a.actions.Load() > 0, "replica-a did not take over the crashed leader's lease"
	})
	l, err := f.kube.CoordinationV1().Leases(f.ns).Get(ctx, "canaryd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(l.Spec.HolderIdentity, ""); got != "replica-a" {
		t.Errorf("lease holder %q, want replica-a", got)
	}
	if got := ptr.Deref(l.Spec.LeaseTransitions, 0); got != 1 {
		t.Errorf("lease transitions %d, want 1", got)
	}
}
