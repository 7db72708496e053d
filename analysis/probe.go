package analysis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fullstorydev/grpcurl"
	protov1 "github.com/golang/protobuf/proto" //nolint:staticcheck // grpcurl's handler takes v1 messages
	"github.com/jhump/protoreflect/desc"       //nolint:staticcheck // grpcurl's API is built on it
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/canarydio/canaryd/rollout"
)

// BackendHeader is the response header a backend may use to say who answered; without it
// the probe looks for "I'm from NAME!" in the reply, as the sample greeter writes.
const BackendHeader = "x-backend"

// probeIdle is how long an unused probe connection is kept before it is closed.
const probeIdle = 10 * time.Minute

// maxReply is how much of a reply a verdict's evidence keeps.
const maxReply = 256

var fromBackend = regexp.MustCompile(`I'm from ([^!"\s]+)!`)

// ErrClosed is returned by a Probe used after Close.
var ErrClosed = errors.New("probe is closed")

// Probe makes synthetic gRPC calls the way grpcurl does, in process. It keeps one
// connection per target (address, TLS settings, descriptor source) and reuses it across
// checks, dialling again when the connection has failed; descriptors from server
// reflection or protosets are cached with the connection. A Probe is safe for concurrent
// use; Close drops every connection.
type Probe struct {
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	conns  map[string]*probeConn
	closed bool
	dial   dialFunc // nil: gRPC's own dialer
}

// NewProbe returns a Probe that logs to log (nil discards) and reads the time from now
// (nil means time.Now).
func NewProbe(log *slog.Logger, now func() time.Time) *Probe {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Probe{log: log, now: now, conns: map[string]*probeConn{}}
}

// Close closes every cached connection. Calls after Close fail with ErrClosed.
func (p *Probe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for k, pc := range p.conns {
		pc.close()
		delete(p.conns, k)
	}
	return nil
}

// Call is the outcome of one probe call that ran.
type Call struct {
	Code    codes.Code
	Message string // the status message when Code is not OK
	Latency time.Duration
	// Reply is the response as grpcurl prints it (indented JSON); empty when none.
	Reply string
	// Backend names who answered, when the reply or its headers say so.
	Backend string
}

// Call makes one call of cmd with the given deadline (none when timeout <= 0). A call
// that ran returns its status in Call, whatever the code; an error means the call could
// not be made at all: bad TLS files, no descriptors, an unknown method, a request that does
// not fit the method's input.
func (p *Probe) Call(ctx context.Context, cmd *rollout.GRPCurlCommand, timeout time.Duration) (Call, error) {
	pc, err := p.conn(cmd)
	if err != nil {
		return Call{}, err
	}
	c, used, err := p.call(ctx, pc, cmd, timeout)
	if used.reused && ctx.Err() == nil && brokenTransport(used.cc, c, err) {
		// The cached connection died under the call (a restarted server, a dropped
		// connection): that says nothing about the service, so try once more on a new
		// connection, which reports the target's state as it is now.
		p.log.Info("probe connection broken, dialling again", "addr", cmd.Address)
		pc.drop(used.cc)
		c, _, err = p.call(ctx, pc, cmd, timeout)
	}
	return c, err
}

// attempt is the connection a call used, and whether it was cached from an earlier call.
type attempt struct {
	cc     *grpc.ClientConn
	reused bool
}

// call makes one call on pc's connection.
func (p *Probe) call(ctx context.Context, pc *probeConn, cmd *rollout.GRPCurlCommand, timeout time.Duration) (Call, attempt, error) {
	cc, src, reused, err := pc.prepare(ctx, cmd)
	used := attempt{cc: cc, reused: reused}
	if err != nil {
		return Call{}, used, err
	}
	parser, format, err := grpcurl.RequestParserAndFormatter(grpcurl.FormatJSON, src,
		strings.NewReader(cmd.Data), grpcurl.FormatOptions{})
	if err != nil {
		return Call{}, used, fmt.Errorf("request parser: %w", err)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	h := &callHandler{format: format}
	headers := append(append([]string(nil), cmd.Headers...), cmd.RPCHeaders...)
	start := time.Now()
	err = grpcurl.InvokeRPC(ctx, src, cc, cmd.Method, headers, h, parser.Next)
	latency := time.Since(start)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return Call{Code: st.Code(), Message: st.Message(), Latency: latency}, used, nil
		}
		return Call{}, used, fmt.Errorf("call %s: %w", cmd.Method, err)
	}
	if h.formatErr != nil {
		return Call{}, used, fmt.Errorf("format the reply of %s: %w", cmd.Method, h.formatErr)
	}
	c := Call{Code: h.status.Code(), Latency: latency, Reply: strings.Join(h.replies, "\n")}
	if c.Code != codes.OK {
		c.Message = h.status.Message()
	}
	c.Backend = backendOf(h.header, c.Reply)
	return c, used, nil
}

// transportErrors are the messages of the UNAVAILABLE statuses grpc-go makes on the client
// side when a connection breaks; a server (or a gateway) that answers UNAVAILABLE itself
// leaves the connection ready.
var transportErrors = []string{"error reading from server", "transport is closing", "connection error", "transport: "}

// brokenTransport reports whether a call (or the reflection before it, err) failed
// because the client's connection broke, rather than because the server answered with an
// error.
func brokenTransport(cc *grpc.ClientConn, c Call, err error) bool {
	if err != nil {
		return status.Code(err) == codes.Unavailable
	}
	if c.Code != codes.Unavailable || cc == nil {
		return false
	}
	if cc.GetState() != connectivity.Ready {
		return true
	}
	for _, m := range transportErrors {
		if strings.Contains(c.Message, m) {
			return true
		}
	}
	return false
}

// callHandler collects what grpcurl's InvokeRPC reports about one call.
type callHandler struct {
	format    grpcurl.Formatter
	header    metadata.MD
	replies   []string
	status    *status.Status
	formatErr error
}

func (h *callHandler) OnResolveMethod(*desc.MethodDescriptor) {}
func (h *callHandler) OnSendHeaders(metadata.MD)              {}
func (h *callHandler) OnReceiveHeaders(md metadata.MD)        { h.header = md }
func (h *callHandler) OnReceiveTrailers(st *status.Status, _ metadata.MD) {
	h.status = st
}

func (h *callHandler) OnReceiveResponse(m protov1.Message) {
	s, err := h.format(m)
	if err != nil {
		h.formatErr = err
		return
	}
	h.replies = append(h.replies, s)
}

func backendOf(md metadata.MD, reply string) string {
	if v := md.Get(BackendHeader); len(v) > 0 && v[0] != "" {
		return v[0]
	}
	if m := fromBackend.FindStringSubmatch(reply); m != nil {
		return m[1]
	}
	return ""
}

// Check runs the probe of a spec: Count calls, one after another, each with the spec's
// timeout (or -max-time when shorter). It passes when at least MinSuccess of the calls
// returned OK with a reply that matches Expect (see replyMatches), and fails otherwise. A probe that cannot
// run (a bad command line, no descriptors, an unknown method, ctx cancelled) is an Error
// verdict, never a pass.
//
// With canaryAddress the calls go straight to the canary, whatever its weight; with
// stableAddress too, the same calls to stable are made beside them as a control: when the
// canary fails and stable fails as well, the verdict is Inconclusive (the probe or its
// backend dependencies are broken, not the canary). A failing stable call never fails
// the gate.
func (p *Probe) Check(ctx context.Context, spec *rollout.Probe) rollout.Verdict {
	v := rollout.Verdict{Gate: rollout.ProbeGate, Time: p.now(), Result: rollout.Error}
	cmd, expect, err := probeSetup(spec)
	if err != nil {
		v.Reason = err.Error()
		return v
	}
	count, need := probeNeeds(spec)
	target := cmd
	if spec.CanaryAddress != "" {
		target = withAddress(cmd, spec.CanaryAddress)
	}
	passed, err := p.calls(ctx, &v, target, expect, count, probeTimeout(spec, cmd))
	if err != nil {
		v.Reason = fmt.Sprintf("probe cannot run: %v", err)
		return v
	}
	v.Result = rollout.Fail
	if passed >= need {
		v.Result = rollout.Pass
	}
	v.Reason = fmt.Sprintf("%d of %d calls returned OK with a matching reply; %d needed", passed, count, need)
	if passed < count {
		v.Reason += "; the others: " + failedCalls(v.Evidence)
	}
	if spec.CanaryAddress != "" {
		v.Reason = "canary: " + v.Reason
	}
	if spec.StableAddress != "" && spec.CanaryAddress != "" {
		p.control(ctx, &v, spec, cmd, expect, count, need)
	}
	return v
}

// control makes the stable subset's calls beside the canary's. They are evidence only:
// stable failing too turns the canary's failure into Inconclusive, never the other way.
func (p *Probe) control(ctx context.Context, v *rollout.Verdict, spec *rollout.Probe, cmd *rollout.GRPCurlCommand, expect *rollout.Expect, count, need int) {
	passed, err := p.calls(ctx, v, withAddress(cmd, spec.StableAddress), expect, count, probeTimeout(spec, cmd))
	switch {
	case err != nil:
		v.Reason += fmt.Sprintf("; stable control cannot run: %v", err)
	case passed >= need:
		v.Reason += fmt.Sprintf("; stable: %d of %d", passed, count)
	case v.Result == rollout.Fail:
		v.Result = rollout.Inconclusive
		v.Reason += fmt.Sprintf("; stable fails too (%d of %d): the probe, not the canary, is broken", passed, count)
	default:
		v.Reason += fmt.Sprintf("; stable: %d of %d (not counted against the canary)", passed, count)
	}
}

// calls makes count calls of cmd, adds their evidence to v and returns how many passed.
func (p *Probe) calls(ctx context.Context, v *rollout.Verdict, cmd *rollout.GRPCurlCommand, expect *rollout.Expect, count int, timeout time.Duration) (int, error) {
	shown := displayCommand(cmd)
	want := fmt.Sprintf("OK and reply ~ %q", expect.String())
	passed := 0
	for i := 0; i < count; i++ {
		c, err := p.Call(ctx, cmd, timeout)
		if err == nil && ctx.Err() != nil {
			err = fmt.Errorf("check interrupted: %w", ctx.Err())
		}
		if err != nil {
			return passed, err
		}
		ev := callEvidence(shown, want, c)
		if c.Code == codes.OK && replyMatches(expect, c.Reply) {
			passed++
			ev.Value = 1
		} else if c.Code == codes.OK {
			ev.Reason = "reply does not match " + expect.String()
		}
		v.Evidence = append(v.Evidence, ev)
	}
	return passed, nil
}

// failedCalls tallies what the calls that did not pass returned, most frequent first:
// "UNAVAILABLE ×3, reply does not match ×1", so that a probe's verdict names the status
// codes a person would look up.
func failedCalls(evs []rollout.Evidence) string {
	n := map[string]int{}
	var order []string
	for _, ev := range evs {
		if ev.Value == 1 {
			continue
		}
		what := ev.Code
		if what == "OK" {
			what = "a reply that does not match"
		}
		if n[what] == 0 {
			order = append(order, what)
		}
		n[what]++
	}
	slices.SortStableFunc(order, func(a, b string) int { return n[b] - n[a] })
	parts := make([]string, len(order))
	for i, what := range order {
		parts[i] = fmt.Sprintf("%s ×%d", what, n[what])
	}
	return strings.Join(parts, ", ")
}

// withAddress returns a copy of cmd that calls addr.
func withAddress(cmd *rollout.GRPCurlCommand, addr string) *rollout.GRPCurlCommand {
	c := *cmd
	c.Address = addr
	return &c
}

// replyMatches reports whether expect matches the reply as grpcurl prints it (indented
// JSON) or as one compact JSON line, so that both `"message": "Hi` and a /^{"message":…}$/
// regular expression work.
func replyMatches(expect *rollout.Expect, reply string) bool {
	return expect.Match(reply) || expect.Match(compactJSON(reply))
}

func probeSetup(spec *rollout.Probe) (*rollout.GRPCurlCommand, *rollout.Expect, error) {
	if spec == nil {
		return nil, nil, errors.New("no probe in the spec")
	}
	cmd := spec.Command
	if cmd == nil {
		var err error
		if cmd, err = rollout.ParseGRPCurl(spec.GRPCurl); err != nil {
			return nil, nil, fmt.Errorf("probe command line: %w", err)
		}
	}
	expect, err := rollout.CompileExpect(spec.Expect)
	if err != nil {
		return nil, nil, fmt.Errorf("probe expect: %w", err)
	}
	return cmd, expect, nil
}

// probeNeeds returns how many calls a check makes and how many must succeed.
func probeNeeds(spec *rollout.Probe) (count, need int) {
	count = max(spec.Count, 1)
	ratio := 1.0
	if spec.MinSuccess != nil {
		ratio = min(max(*spec.MinSuccess, 0), 1)
	}
	need = int(math.Ceil(ratio*float64(count) - 1e-9))
	return count, need
}

func probeTimeout(spec *rollout.Probe, cmd *rollout.GRPCurlCommand) time.Duration {
	t := spec.Timeout.Duration
	if t <= 0 {
		t = rollout.DefaultProbeTimeout
	}
	if cmd.MaxTime > 0 && cmd.MaxTime < t {
		t = cmd.MaxTime
	}
	return t
}

func callEvidence(query, want string, c Call) rollout.Evidence {
	ev := rollout.Evidence{
		Query: query, Threshold: want, Code: codeName(c.Code), Latency: c.Latency,
		Reply: trimReply(c.Reply), Backend: c.Backend,
	}
	if c.Code != codes.OK {
		ev.Reason = c.Message
	}
	return ev
}

// codeName returns the code as grpcurl and Istio's docs write it: "OK", "UNAVAILABLE".
func codeName(c codes.Code) string {
	var b strings.Builder
	prev := 'A'
	for _, r := range c.String() {
		if r >= 'A' && r <= 'Z' && !(prev >= 'A' && prev <= 'Z') {
			b.WriteByte('_')
		}
		b.WriteRune(r)
		prev = r
	}
	return strings.ToUpper(b.String())
}

// trimReply compacts a JSON reply onto one line and cuts it to maxReply bytes.
func trimReply(s string) string {
	s = compactJSON(s)
	if len(s) > maxReply {
		s = s[:maxReply] + "…"
	}
	return s
}

// compactJSON writes a JSON reply on one line; other text is returned trimmed.
func compactJSON(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) == nil {
		return b.String()
	}
	return strings.TrimSpace(s)
}

// displayCommand writes the command as a grpcurl line with every header value hidden, so
// that tokens never reach a verdict or a log line.
func displayCommand(c *rollout.GRPCurlCommand) string {
	var w []string
	add := func(s ...string) { w = append(w, s...) }
	if c.Data != "" {
		add("-d", shellQuote(c.Data))
	}
	if c.Plaintext {
		add("-plaintext")
	}
	if c.Insecure {
		add("-insecure")
	}
	for _, h := range c.Headers {
		name, _, _ := strings.Cut(h, ":")
		add("-H", shellQuote(name+": <redacted>"))
	}
	for _, h := range c.RPCHeaders {
		name, _, _ := strings.Cut(h, ":")
		add("-rpc-header", shellQuote(name+": <redacted>"))
	}
	if c.Authority != "" {
		add("-authority", shellQuote(c.Authority))
	}
	if c.ServerName != "" {
		add("-servername", shellQuote(c.ServerName))
	}
	for _, f := range [][2]string{{"-cacert", c.CACert}, {"-cert", c.Cert}, {"-key", c.Key}, {"-user-agent", c.UserAgent}} {
		if f[1] != "" {
			add(f[0], shellQuote(f[1]))
		}
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"-max-time", c.MaxTime}, {"-connect-timeout", c.ConnectTime}} {
		if f.d > 0 {
			add(f.name, strconv.FormatFloat(f.d.Seconds(), 'f', -1, 64))
		}
	}
	for _, ps := range c.Protosets {
		add("-protoset", shellQuote(ps))
	}
	for _, ip := range c.ImportPaths {
		add("-import-path", shellQuote(ip))
	}
	for _, pr := range c.Protos {
		add("-proto", shellQuote(pr))
	}
	add(c.Address, c.Method)
	return "grpcurl " + strings.Join(w, " ")
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`|;&<>(){}*?[]#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
