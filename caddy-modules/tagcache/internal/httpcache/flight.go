package httpcache

import (
	"context"
	"fmt"
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

	// waiters counts the requests that want the fill's result: the
	// leader's client until it goes away and each follower until it
	// stops waiting; a background refresh holds one reference of its own
	// for its whole run. Guarded by g.mu.
	waiters int
	// abandon cancels the fill when waiters drops to zero; nil for a
	// background refresh and once the fill is over. Guarded by g.mu.
	abandon context.CancelCauseFunc

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
		f.waiters++
		return f, false
	}
	f = &flight{done: make(chan struct{}), g: s, key: key, waiters: 1}
	s.m[key] = f
	return f, true
}

// errAbandoned is the cause of a fill's context cancelled because every
// request waiting for it went away. It wraps context.Canceled, which is
// how handlers recognize a client gone (Caddy's reverse_proxy answers 499,
// not 502).
var errAbandoned = fmt.Errorf("every request waiting for the fill went away: %w", context.Canceled)

// cancelWhenAbandoned makes the last waiter to leave cancel the fill
// with errAbandoned. The leader calls it once its fill context exists,
// and calls it again with nil when the fill is over.
func (f *flight) cancelWhenAbandoned(cancel context.CancelCauseFunc) {
	f.g.mu.Lock()
	f.abandon = cancel
	f.g.mu.Unlock()
}

// leave drops one waiter. When it was the last one and the fill can
// still be abandoned, leave cancels it, takes the flight out of the group
// (later requests start a fill of their own) and reports true.
func (f *flight) leave() bool {
	f.g.mu.Lock()
	f.waiters--
	cancel := f.abandon
	if f.waiters > 0 || cancel == nil {
		f.g.mu.Unlock()
		return false
	}
	f.abandon = nil
	if f.g.m[f.key] == f {
		delete(f.g.m, f.key)
	}
	f.g.mu.Unlock()
	cancel(errAbandoned)
	return true
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
