package httpcache

import (
	"hash/maphash"
	"sync"
)

// flightGroup coalesces fills: one upstream request per key at a time.
// The map is sharded so that joining one key never waits on another.
type flightGroup struct {
	seed   maphash.Seed
	shards [32]flightShard
}

type flightShard struct {
	mu sync.Mutex
	m  map[string]*flight
}

// flight is one fill in progress. Waiters block on done; res is set
// before done is closed and never changes afterwards.
type flight struct {
	done chan struct{}
	once sync.Once
	g    *flightShard
	key  string

	// res is the stored (or freshened) entry, nil when the fill turned
	// out uncacheable or failed: waiters then go upstream themselves.
	res *entry
	// staleErr marks res as a stale entry served because the origin
	// failed (stale-if-error).
	staleErr bool
}

func newFlightGroup() *flightGroup {
	g := &flightGroup{seed: maphash.MakeSeed()}
	for i := range g.shards {
		g.shards[i].m = make(map[string]*flight)
	}
	return g
}

// join returns the flight for key and whether the caller leads it. A
// leader must call release exactly once (more calls are no-ops).
func (g *flightGroup) join(key string) (f *flight, leader bool) {
	s := &g.shards[maphash.String(g.seed, key)%uint64(len(g.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.m[key]; ok {
		return f, false
	}
	f = &flight{done: make(chan struct{}), g: s, key: key}
	s.m[key] = f
	return f, true
}

// release publishes the result and wakes the waiters. Requests arriving
// afterwards start from a lookup again.
func (f *flight) release(res *entry, staleErr bool) {
	f.once.Do(func() {
		f.g.mu.Lock()
		if f.g.m[f.key] == f {
			delete(f.g.m, f.key)
		}
		f.g.mu.Unlock()
		f.res, f.staleErr = res, staleErr
		close(f.done)
	})
}
