// Package tilecache is the tiles engine's in-process cache of finished
// responses: a sharded map bounded by bytes with CLOCK (second chance)
// eviction. A hit is a read-locked map lookup plus one atomic store and
// does not allocate, which keeps the warm tile path allocation-free.
//
// Keys carry the source generation, so entries of an old generation are
// never looked up again and simply age out.
package tilecache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

const shards = 64

// Cache maps K to V within a byte budget.
type Cache[K comparable, V any] struct {
	seed   maphash.Seed
	shards [shards]shard[K, V]

	hits, misses, evictions atomic.Uint64
}

type shard[K comparable, V any] struct {
	mu    sync.RWMutex
	m     map[K]*item[K, V]
	ring  []*item[K, V]
	hand  int
	bytes int64
	max   int64
}

type item[K comparable, V any] struct {
	key  K
	val  V
	size int64
	idx  int
	ref  atomic.Bool
}

// New returns a cache holding about maxBytes (sizes as given to Put).
func New[K comparable, V any](maxBytes int64) *Cache[K, V] {
	c := &Cache[K, V]{seed: maphash.MakeSeed()}
	per := max(maxBytes/shards, 1)
	for i := range c.shards {
		c.shards[i].m = map[K]*item[K, V]{}
		c.shards[i].max = per
	}
	return c
}

func (c *Cache[K, V]) shard(k K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, k)%shards]
}

// Get returns the value of k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	s := c.shard(k)
	s.mu.RLock()
	it := s.m[k]
	s.mu.RUnlock()
	if it == nil {
		c.misses.Add(1)
		var zero V
		return zero, false
	}
	if !it.ref.Load() {
		it.ref.Store(true)
	}
	c.hits.Add(1)
	return it.val, true
}

// Put stores v under k, accounting size bytes, and evicts entries not
// used since the clock hand last passed until the shard fits. A value
// larger than a shard's budget is not stored.
func (c *Cache[K, V]) Put(k K, v V, size int64) {
	s := c.shard(k)
	if size > s.max {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[k]; old != nil {
		// A new item takes the old one's place: Get reads an item's value
		// without the lock, so an item is never written once published.
		it := &item[K, V]{key: k, val: v, size: size, idx: old.idx}
		it.ref.Store(old.ref.Load())
		s.m[k] = it
		s.ring[old.idx] = it
		s.bytes += size - old.size
	} else {
		it := &item[K, V]{key: k, val: v, size: size, idx: len(s.ring)}
		s.m[k] = it
		s.ring = append(s.ring, it)
		s.bytes += size
	}
	for s.bytes > s.max && len(s.ring) > 0 {
		if s.hand >= len(s.ring) {
			s.hand = 0
		}
		it := s.ring[s.hand]
		if it.ref.Load() && it.key != k {
			it.ref.Store(false)
			s.hand++
			continue
		}
		if it.key == k && len(s.ring) > 1 {
			s.hand++
			continue
		}
		s.remove(it)
		c.evictions.Add(1)
	}
}

func (s *shard[K, V]) remove(it *item[K, V]) {
	last := len(s.ring) - 1
	s.ring[it.idx] = s.ring[last]
	s.ring[it.idx].idx = it.idx
	s.ring[last] = nil
	s.ring = s.ring[:last]
	delete(s.m, it.key)
	s.bytes -= it.size
}

// Delete removes k.
func (c *Cache[K, V]) Delete(k K) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.m[k]; it != nil {
		s.remove(it)
	}
}

// DeleteFunc removes every entry whose key matches.
func (c *Cache[K, V]) DeleteFunc(match func(K) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, it := range s.m {
			if match(k) {
				s.remove(it)
			}
		}
		s.mu.Unlock()
	}
}

// Stats are cumulative counters and the current size.
type Stats struct {
	Hits, Misses, Evictions uint64
	Entries                 int
	Bytes                   int64
}

// Stats returns the cache's counters.
func (c *Cache[K, V]) Stats() Stats {
	st := Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		st.Entries += len(s.m)
		st.Bytes += s.bytes
		s.mu.RUnlock()
	}
	return st
}
