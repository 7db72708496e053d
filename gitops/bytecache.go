package gitops

import "github.com/go-git/go-git/v5/plumbing"

// byteCache holds decoded objects by hash (objects never change) up to a budget of their
// estimated sizes; it is emptied when an addition would pass it. The caller guards it.
type byteCache[V any] struct {
	items map[plumbing.Hash]V
	bytes int
	limit int
}

func newByteCache[V any](limit int) byteCache[V] {
	return byteCache[V]{items: map[plumbing.Hash]V{}, limit: limit}
}

func (c *byteCache[V]) get(h plumbing.Hash) (V, bool) {
	v, ok := c.items[h]
	return v, ok
}

func (c *byteCache[V]) put(h plumbing.Hash, v V, size int) {
	if c.bytes+size > c.limit {
		clear(c.items)
		c.bytes = 0
	}
	c.items[h] = v
	c.bytes += size
}
