package analysis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// ErrEgress is wrapped by the error of a connection that the daemon's egress rules refuse
// for the address its target's host name resolved to.
var ErrEgress = errors.New("egress refused")

// dialTimeout bounds each connection attempt of the gates when the egress rules dial.
const dialTimeout = 10 * time.Second

// dialFunc dials as net.Dialer.DialContext does.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// egressDialer returns a dialer that checks each address it connects to against p, after
// the host name is resolved and before the connection is made, so that a name pointing at
// a cloud-metadata or denied address is refused, whatever it resolves to at that moment.
func egressDialer(p *rollout.EgressPolicy) dialFunc {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: dialled %q: not an address", ErrEgress, address)
			}
			if why := p.Dialed(ap.Addr()); why != "" {
				return fmt.Errorf("%w: %s", ErrEgress, why)
			}
			return nil
		}}
	return d.DialContext
}

// egressClient is the default Prometheus client, its connections checked by dial.
func egressClient(dial dialFunc) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = dial
	t.Proxy = nil // a proxy would connect on the spec's behalf, past the rules
	return &http.Client{Timeout: 15 * time.Second, Transport: t}
}
