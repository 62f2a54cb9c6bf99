// Package retry holds the drivers' reconnect helpers: a capped
// exponential backoff and a context-aware sleep.
package retry

import (
	"context"
	"time"
)

// Backoff yields retry delays from 100ms, doubling up to Max. The zero
// value caps at 5s.
type Backoff struct {
	// Max caps the delay. Default: 5s.
	Max time.Duration
	d   time.Duration
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	limit := b.Max
	if limit <= 0 {
		limit = 5 * time.Second
	}
	if b.d == 0 {
		b.d = 100 * time.Millisecond
	} else {
		b.d = min(2*b.d, limit)
	}
	return b.d
}

// Reset starts the sequence over.
func (b *Backoff) Reset() { b.d = 0 }

// Sleep waits d or until ctx is done, reporting whether it slept fully.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
