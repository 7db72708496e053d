package gitops

import (
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// A working set that outgrows the budget, walked in a cycle as a tick walks its rollouts'
// manifests, keeps most of it cached: eviction takes victims, not everything.
func TestByteCacheCycleOverBudget(t *testing.T) {
	const objects, size = 1000, 10
	c := newByteCache[int](objects * size * 9 / 10) // room for 900
	key := func(i int) plumbing.Hash {
		return plumbing.ComputeHash(plumbing.BlobObject, []byte{byte(i), byte(i >> 8)})
	}
	hits := 0
	for round := range 5 {
		for i := range objects {
			if v, ok := c.get(key(i)); ok {
				if v != i {
					t.Fatalf("object %d holds %d", i, v)
				}
				if round > 0 {
					hits++
				}
				continue
			}
			c.put(key(i), i, size)
			if c.bytes > c.limit {
				t.Fatalf("after putting %d: %d bytes held, budget %d", i, c.bytes, c.limit)
			}
			if _, ok := c.get(key(i)); !ok {
				t.Fatalf("object %d, just put, is not held", i)
			}
		}
	}
	// Emptying the cache when full keeps nothing of a cycle longer than it; random victims
	// keep about 80 % here.
	if rate := float64(hits) / (4 * objects); rate < 0.6 {
		t.Errorf("hit rate over 4 cycles %.2f, want at least 0.6", rate)
	}
	held := 0
	for _, it := range c.items {
		held += it.size
	}
	if held != c.bytes {
		t.Errorf("items hold %d bytes, the count says %d", held, c.bytes)
	}
}

// An object bigger than the whole budget is still kept, alone: its caller is about to use it.
func TestByteCacheKeepsOversized(t *testing.T) {
	c := newByteCache[string](100)
	a, b := plumbing.ComputeHash(plumbing.BlobObject, []byte("a")), plumbing.ComputeHash(plumbing.BlobObject, []byte("b"))
	c.put(a, "a", 60)
	c.put(b, "b", 500)
	if _, ok := c.get(b); !ok || len(c.items) != 1 || c.bytes != 500 {
		t.Fatalf("after an oversized put: %d items, %d bytes", len(c.items), c.bytes)
	}
	c.putIfRoom(a, "a", 60)
	if _, ok := c.get(a); ok {
		t.Fatal("putIfRoom evicted to make room")
	}
}
