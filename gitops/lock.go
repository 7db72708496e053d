package gitops

import (
	"context"
	"fmt"
)

// repoLock serialises the Git operations of a Repo. Unlike a sync.Mutex, a caller with a
// deadline can give up waiting for it: a write that must not wait behind a stalled fetch
// fails with a clear error instead.
type repoLock chan struct{}

func newRepoLock() repoLock { return make(repoLock, 1) }

// Lock waits for the lock as long as it takes.
func (l repoLock) Lock() { l <- struct{}{} }

// Unlock releases the lock.
func (l repoLock) Unlock() { <-l }

// LockContext waits for the lock until ctx ends, and then fails naming why.
func (l repoLock) LockContext(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the git cache is busy with a fetch or a push: %w", ctx.Err())
	}
}
