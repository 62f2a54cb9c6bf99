// Package flight coalesces concurrent work on the same key, like
// golang.org/x/sync/singleflight, with the cancellation semantics a shared
// cache fill needs (as tailscale's util/singleflight DoChanContext): the
// work runs detached from the caller that started it, each caller can stop
// waiting when its own context ends, and the work's context is cancelled
// only when every waiter has left.
package flight

import (
	"context"
	"sync"
)

// Group runs work per key. The zero value is ready to use.
type Group[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*call[V]
}

type call[V any] struct {
	done   chan struct{}
	val    V
	err    error
	refs   int
	cancel context.CancelFunc
}

// Do calls fn once for all concurrent callers of key and returns its
// result. fn's context keeps the first caller's values but not its
// cancellation; it is cancelled when every caller waiting for the result
// has returned because its own context ended (they get ctx.Err()). shared
// reports whether this caller joined work started by another.
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(ctx context.Context) (V, error)) (v V, err error, shared bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[K]*call[V]{}
	}
	c, shared := g.calls[key]
	if !shared {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call[V]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go g.run(cctx, key, c, fn)
	}
	c.refs++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err, shared
	case <-ctx.Done():
		g.mu.Lock()
		c.refs--
		if c.refs == 0 {
			c.cancel()
			if g.calls[key] == c {
				delete(g.calls, key) // a new caller starts afresh
			}
		}
		g.mu.Unlock()
		var zero V
		return zero, ctx.Err(), shared
	}
}

func (g *Group[K, V]) run(ctx context.Context, key K, c *call[V], fn func(context.Context) (V, error)) {
	defer func() {
		g.mu.Lock()
		if g.calls[key] == c {
			delete(g.calls, key)
		}
		g.mu.Unlock()
		c.cancel()
		close(c.done)
	}()
	c.val, c.err = fn(ctx)
}

// InFlight returns the number of keys with work running.
func (g *Group[K, V]) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}
