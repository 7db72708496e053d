package gitops

import "github.com/go-git/go-git/v5/plumbing"

// byteCache holds decoded objects by hash (objects never change) up to a budget of their
// estimated sizes; an addition that would pass it evicts objects picked at random until it
// fits. Random, not least recently used: a batch walks its rollouts' manifests in a cycle,
// and when they outgrow the budget, a random victim keeps most of them cached where LRU, or
// emptying the cache, would keep none. The caller guards it.
type byteCache[V any] struct {
	items map[plumbing.Hash]sized[V]
	bytes int
	limit int
}

type sized[V any] struct {
	v    V
	size int
}

func newByteCache[V any](limit int) byteCache[V] {
	return byteCache[V]{items: map[plumbing.Hash]sized[V]{}, limit: limit}
}

func (c *byteCache[V]) get(h plumbing.Hash) (V, bool) {
	it, ok := c.items[h]
	return it.v, ok
}

// put adds v, evicting others until it fits; v itself is kept even when it alone passes
// the budget (the caller is about to use it).
func (c *byteCache[V]) put(h plumbing.Hash, v V, size int) {
	c.drop(h)
	for k, it := range c.items { // map order is random: these are random victims
		if c.bytes+size <= c.limit {
			break
		}
		delete(c.items, k)
		c.bytes -= it.size
	}
	c.items[h] = sized[V]{v: v, size: size}
	c.bytes += size
}

// putIfRoom is put for an object that is only worth keeping while there is room: it never
// evicts another.
func (c *byteCache[V]) putIfRoom(h plumbing.Hash, v V, size int) {
	c.drop(h)
	if c.bytes+size <= c.limit {
		c.items[h] = sized[V]{v: v, size: size}
		c.bytes += size
	}
}

// drop forgets h.
func (c *byteCache[V]) drop(h plumbing.Hash) {
	if it, ok := c.items[h]; ok {
		delete(c.items, h)
		c.bytes -= it.size
	}
}
