package istio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseOptions configures Elect. Namespace, Name and Identity are required;
// the durations default to client-go's usual 15s, 10s and 2s.
type LeaseOptions struct {
	Namespace string
	Name      string
	// Identity names this replica in the Lease; it must be unique (the pod
	// name).
	Identity string
	// LeaseDuration is how long a lease holds without renewal: a new leader
	// takes over at most this long after the old one stopped renewing.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader retries renewing before it gives up.
	RenewDeadline time.Duration
	// RetryPeriod is how often candidates try to acquire and the leader renews.
	RetryPeriod time.Duration
	// Logger receives leadership changes; nil discards.
	Logger *slog.Logger
	// OnNewLeader, when set, is called with the holder's identity whenever the lease is
	// seen to change hands (this replica's own identity included). It must not block.
	OnNewLeader func(identity string)
}

func (o *LeaseOptions) defaults() error {
	if o.Namespace == "" || o.Name == "" || o.Identity == "" {
		return errors.New("lease namespace, name and identity are required")
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Elect campaigns for the Lease opts names and calls run once this replica
// holds it. run's context is cancelled the moment leadership is lost: when
// renewal fails, or as soon as a watch on the Lease shows another holder.
// Elect waits for run to return before it releases the lease, so two
// replicas never act at once.
//
// Elect returns nil when ctx is cancelled (the lease is released, so a
// follower takes over at its next retry), run's error when run returns on
// its own (the lease is released), or an error wrapping ErrLeadershipLost
// when the lease was lost: the caller must then stop acting (fail-stop; a
// process exits and restarts as a follower).
func Elect(ctx context.Context, cfg *rest.Config, opts LeaseOptions, run func(ctx context.Context) error) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	client, le, leading, err := newElector(cfg, opts)
	if err != nil {
		return err
	}
	// The elector's context outlives ctx until run has returned, so the lease
	// is released only after run stopped acting.
	leCtx, stopLE := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLE()
	elected := make(chan struct{})
	go func() { defer close(elected); le.Run(leCtx) }()
	defer func() { stopLE(); <-elected }()

	c := &campaign{opts: opts, client: client}
	var lctx context.Context
	select {
	case <-ctx.Done():
		// The lease may have been won just now, with nothing run under it.
		stopLE()
		<-elected
		c.release()
		return nil
	case <-elected:
		return fmt.Errorf("leader election %s/%s ended before it was won", opts.Namespace, opts.Name)
	case lctx = <-leading:
	}
	opts.Logger.Info("leading", "lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity)
	runErr := c.lead(ctx, lctx, run)
	renewFailed := lctx.Err() != nil
	// run has stopped acting: stop renewing, then hand the lease over.
	stopLE()
	<-elected
	c.release()
	switch lost := c.lostErr(); {
	case ctx.Err() != nil:
		// Asked to stop; the lease is released.
	case lost != nil:
		opts.Logger.Warn("leadership lost", "lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity, "err", lost)
		return lost
	case renewFailed:
		err := fmt.Errorf("%w: lease %s/%s could not be renewed", ErrLeadershipLost, opts.Namespace, opts.Name)
		opts.Logger.Warn("leadership lost", "lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity, "err", err)
		return err
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// newElector builds the client and the Lease elector; leading receives the
// leader's context once the lease is won.
func newElector(cfg *rest.Config, opts LeaseOptions) (kubernetes.Interface, *leaderelection.LeaderElector, chan context.Context, error) {
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "canaryd-leader-election")
	// A single hung request must not outlast the renew deadline.
	cfg.Timeout = max(opts.RenewDeadline/2, time.Second)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("leader election client: %w", err)
	}
	leading := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
		},
		LeaseDuration: opts.LeaseDuration,
		RenewDeadline: opts.RenewDeadline,
		RetryPeriod:   opts.RetryPeriod,
		// Elect releases the lease itself, with a compare-and-swap on the
		// Lease it read: client-go's release rewrites the Lease even when
		// another identity holds it by then.
		ReleaseOnCancel: false,
		Name:            opts.Namespace + "/" + opts.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) { leading <- ctx },
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if opts.OnNewLeader != nil {
					opts.OnNewLeader(id)
				}
			},
		},
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("leader election %s/%s: %w", opts.Namespace, opts.Name, err)
	}
	return client, le, leading, nil
}

// campaign is the leading side of one Elect call.
type campaign struct {
	opts   LeaseOptions
	client kubernetes.Interface
	cancel context.CancelFunc

	mu   sync.Mutex
	lost error
}

// lead runs run under a context that ctx, the elector (lctx) and the Lease
// watch cancel, and returns once run and the watch have stopped.
func (c *campaign) lead(ctx, lctx context.Context, run func(context.Context) error) error {
	runCtx, cancelRun := context.WithCancel(lctx)
	c.cancel = cancelRun
	stopOnCancel := context.AfterFunc(ctx, cancelRun)
	defer stopOnCancel()
	var wg sync.WaitGroup
	wg.Go(func() { c.watchHolder(runCtx) })
	err := run(runCtx)
	cancelRun()
	wg.Wait()
	return err
}

func (c *campaign) lostErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// watchHolder cancels the run as soon as the Lease names another holder.
func (c *campaign) watchHolder(ctx context.Context) {
	sel := fields.OneTermEqualSelector("metadata.name", c.opts.Name).String()
	for ctx.Err() == nil {
		w, err := c.client.CoordinationV1().Leases(c.opts.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(c.opts.RetryPeriod):
			}
			continue
		}
		if c.watchEvents(ctx, w) {
			return
		}
	}
}

// watchEvents reads one watch; it reports true once the lease was lost.
func (c *campaign) watchEvents(ctx context.Context, w watch.Interface) bool {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false
			}
			lease, isLease := ev.Object.(*coordinationv1.Lease)
			if ev.Type == watch.Deleted || (isLease && holder(lease) != c.opts.Identity) {
				if c.stillHeld(ctx) {
					continue
				}
				c.loseTo(ev.Type, lease)
				return true
			}
		}
	}
}

// loseTo records that another holder took the lease and cancels the run.
func (c *campaign) loseTo(t watch.EventType, lease *coordinationv1.Lease) {
	who := "nobody"
	if t != watch.Deleted && lease != nil {
		who = fmt.Sprintf("%q", holder(lease))
	}
	c.mu.Lock()
	if c.lost == nil {
		c.lost = fmt.Errorf("%w: lease %s/%s is now held by %s", ErrLeadershipLost, c.opts.Namespace, c.opts.Name, who)
	}
	c.mu.Unlock()
	c.cancel()
}

// release gives the lease up if this replica still holds it, so a follower
// takes over at its next retry instead of after the lease duration. The
// update carries the resourceVersion read, so a lease another identity took
// meanwhile is never touched.
func (c *campaign) release() {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.RenewDeadline)
	defer cancel()
	leases := c.client.CoordinationV1().Leases(c.opts.Namespace)
	for range 3 {
		l, err := leases.Get(ctx, c.opts.Name, metav1.GetOptions{})
		if err != nil || holder(l) != c.opts.Identity {
			return
		}
		now := metav1.NewMicroTime(time.Now())
		one := int32(1)
		l.Spec.HolderIdentity = nil
		l.Spec.LeaseDurationSeconds = &one
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		if _, err = leases.Update(ctx, l, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			if err != nil {
				c.opts.Logger.Warn("release lease", "lease", c.opts.Namespace+"/"+c.opts.Name, "err", err)
			}
			return
		}
	}
}

// stillHeld re-reads the Lease from storage (not the watch cache) and
// reports whether it still names this replica, so that a stale watch event
// never stops a leader.
func (c *campaign) stillHeld(ctx context.Context) bool {
	l, err := c.client.CoordinationV1().Leases(c.opts.Namespace).Get(ctx, c.opts.Name, metav1.GetOptions{})
	return err == nil && holder(l) == c.opts.Identity
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
