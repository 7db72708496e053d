// Package faultnet makes network faults for tests: a TCP proxy that forwards until told to
// stall, and from then on accepts and stays silent, as a hung server or a black-holing
// firewall does.
package faultnet

import (
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a target. While stalled it forwards nothing in either
// direction, on the connections it already has and on new ones, which it accepts and
// never answers. A Proxy is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	stalled bool
	resumed chan struct{} // closed by Resume: the stall is over
	waiting chan struct{} // closed when a client writes into the stall
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

// Start starts a proxy on 127.0.0.1 in front of target; the test's cleanup stops it.
func Start(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}, resumed: make(chan struct{}), waiting: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		if p.stalled {
			close(p.resumed)
			p.stalled = false
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stall makes the proxy silent from now on. Waiting's channel is new for each stall.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stalled {
		p.stalled, p.resumed, p.waiting = true, make(chan struct{}), make(chan struct{})
	}
}

// Waiting is closed once a client has written into the current stall: a call is stuck.
func (p *Proxy) Waiting() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}

// Resume ends the stall: the connections held in it are closed, as a peer that comes back
// after a hang resets them, and new ones are forwarded again.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stalled {
		return
	}
	for c, held := range p.conns {
		if held {
			c.Close()
		}
	}
	p.stalled = false
	close(p.resumed)
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[c] = p.stalled
		p.mu.Unlock()
		p.wg.Go(func() { p.forward(c) })
	}
}

func (p *Proxy) forward(c net.Conn) {
	defer func() {
		c.Close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	if !p.pass(c) { // accepted in a stall: never answered
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { p.copy(c, up, c); done <- struct{}{} }()
	go func() { p.copy(c, c, up); done <- struct{}{} }()
	<-done
}

// pass waits out a stall on c: it reports false when c was held in it (and closed by
// Resume), true when c may be forwarded.
func (p *Proxy) pass(c net.Conn) bool {
	p.mu.Lock()
	stalled, resumed := p.stalled, p.resumed
	if stalled {
		p.conns[c] = true
	}
	p.mu.Unlock()
	if !stalled {
		return true
	}
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err == nil {
		p.noteWaiting()
	}
	<-resumed
	return false
}

func (p *Proxy) noteWaiting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.waiting:
	default:
		close(p.waiting)
	}
}

// copy forwards src to dst in chunks; a chunk read during a stall is held, never
// delivered, and client is then held in the stall like a new connection.
func (p *Proxy) copy(client, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			stalled, resumed := p.stalled, p.resumed
			if stalled {
				p.conns[client] = true
			}
			p.mu.Unlock()
			if stalled {
				if src == client {
					p.noteWaiting()
				}
				<-resumed
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
