package gitops

import "github.com/go-git/go-git/v5/plumbing"

// byteCache holds decoded objects by hash (objects never change) up to a budget of their
// estimated sizes; it is emptied when an addition would pass it. The caller guards it.
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

func (c *byteCache[V]) put(h plumbing.Hash, v V, size int) {
	c.drop(h)
	if c.bytes+size > c.limit {
		clear(c.items)
		c.bytes = 0
	}
	c.items[h] = sized[V]{v: v, size: size}
	c.bytes += size
}

// putIfRoom is put for an object that is only worth keeping while there is room: it never
// empties the cache.
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
