// Package traffic sends steady helloworld calls through the sandbox's gateway, as users
// would, and counts the replies by the instance that answered and by status, so the demo
// can show the split of traffic actually observed next to the weights in Git.
package traffic

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Options configures a Generator.
type Options struct {
	// Target is the gateway's host:port.
	Target string
	// Rate is calls per second; 0 means 50.
	Rate float64
	// Name is sent in every request; "Jack" when empty.
	Name string
	// Timeout bounds each call; 0 means 2s.
	Timeout time.Duration
	// MaxInFlight bounds concurrent calls; a tick that finds them all busy is skipped and
	// counted. 0 means 64.
	MaxInFlight int
	// Window is how far back Snapshot.Recent looks; 0 means 5s.
	Window time.Duration
}

// Counts is what a span of calls ended with.
type Counts struct {
	Calls uint64
	// ByInstance counts the answered calls by the instance that answered.
	ByInstance map[string]uint64
	// ByCode counts the calls by gRPC status ("OK", "Unavailable", ...).
	ByCode map[string]uint64
}

func (c *Counts) init() {
	if c.ByInstance == nil {
		c.ByInstance, c.ByCode = map[string]uint64{}, map[string]uint64{}
	}
}

func (c *Counts) add(o Counts) {
	c.init()
	c.Calls += o.Calls
	for k, v := range o.ByInstance {
		c.ByInstance[k] += v
	}
	for k, v := range o.ByCode {
		c.ByCode[k] += v
	}
}

func (c *Counts) count(from string, code codes.Code) {
	c.init()
	c.Calls++
	if from != "" {
		c.ByInstance[from]++
	}
	c.ByCode[code.String()]++
}

// Snapshot is what the generator has seen.
type Snapshot struct {
	Total  Counts
	Recent Counts // the calls that ended within the last Window
	// Skipped counts ticks that found MaxInFlight calls busy.
	Skipped uint64
}

// Generator sends calls at a steady rate while Run runs. Its methods are safe for
// concurrent use.
type Generator struct {
	opts Options
	conn *grpc.ClientConn

	paused  atomic.Bool
	mu      sync.Mutex
	total   Counts
	buckets []bucket // one per second of the recent window, oldest first
	skipped uint64
}

type bucket struct {
	sec int64
	Counts
}

// New connects (lazily) to the target. It fails only on a malformed target.
func New(o Options) (*Generator, error) {
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if o.Name == "" {
		o.Name = "Jack"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.Window <= 0 {
		o.Window = 5 * time.Second
	}
	conn, err := grpc.NewClient(o.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("traffic to %s: %w", o.Target, err)
	}
	return &Generator{opts: o, conn: conn}, nil
}

// Run sends calls until ctx ends, waits for the calls in flight, closes the connection
// and returns nil. It must be called at most once.
func (g *Generator) Run(ctx context.Context) error {
	defer g.conn.Close()
	t := time.NewTicker(time.Duration(float64(time.Second) / g.opts.Rate))
	defer t.Stop()
	sem := make(chan struct{}, g.opts.MaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if g.paused.Load() {
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			g.mu.Lock()
			g.skipped++
			g.mu.Unlock()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			g.call(ctx)
		})
	}
}

// SetPaused stops (true) or resumes (false) sending calls; calls in flight finish.
func (g *Generator) SetPaused(paused bool) { g.paused.Store(paused) }

func (g *Generator) call(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	r, err := SayHello(cctx, g.conn, g.opts.Name)
	if ctx.Err() != nil {
		return // cut short by the end of Run; not an answer
	}
	g.record(time.Now(), r.From, status.Code(err))
}

func (g *Generator) record(now time.Time, from string, code codes.Code) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total.count(from, code)
	sec := now.Unix()
	if n := len(g.buckets); n == 0 || g.buckets[n-1].sec != sec {
		g.buckets = append(g.buckets, bucket{sec: sec})
	}
	g.buckets[len(g.buckets)-1].count(from, code)
	g.trim(sec)
}

// trim drops the buckets older than the window.
func (g *Generator) trim(nowSec int64) {
	oldest := nowSec - int64(g.opts.Window/time.Second) + 1
	i := 0
	for i < len(g.buckets) && g.buckets[i].sec < oldest {
		i++
	}
	g.buckets = g.buckets[i:]
}

// Snapshot returns copies of the counts so far.
func (g *Generator) Snapshot() Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trim(time.Now().Unix())
	s := Snapshot{Skipped: g.skipped}
	s.Total.add(g.total)
	for _, b := range g.buckets {
		s.Recent.add(b.Counts)
	}
	s.Total.init()
	s.Recent.init()
	return s
}
