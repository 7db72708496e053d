package controller

import (
	"sync"

	"github.com/canarydio/canaryd/rollout"
)

// mailbox is a worker's inbox. Sending never waits for the worker: it may be deciding,
// never anything slower, as probes and moves run beside it. It keeps what matters: every
// operator action in order, and only the newest of what Git said (a newer fetch replaces
// an older one that was not read yet).
type mailbox struct {
	mu     sync.Mutex
	ops    []request
	git    *rollout.GitChange
	signal chan struct{} // holds a token while the mailbox is not empty
}

func newMailbox() *mailbox { return &mailbox{signal: make(chan struct{}, 1)} }

func (b *mailbox) notify() {
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// putOp appends an operator's request.
func (b *mailbox) putOp(req request) {
	b.mu.Lock()
	b.ops = append(b.ops, req)
	b.mu.Unlock()
	b.notify()
}

// putGit keeps ch as the newest word of Git, replacing one not read yet.
func (b *mailbox) putGit(ch rollout.GitChange) {
	b.mu.Lock()
	b.git = &ch
	b.mu.Unlock()
	b.notify()
}

// take empties the mailbox: the operator requests in order, and Git's newest word (nil
// when there is none).
func (b *mailbox) take() ([]request, *rollout.GitChange) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ops, g := b.ops, b.git
	b.ops, b.git = nil, nil
	return ops, g
}
