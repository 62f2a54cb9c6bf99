package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDoCoalesces(t *testing.T) {
	var g Group[string, int]
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context) (int, error) {
		runs.Add(1)
		<-release
		return 42, nil
	}
	var wg sync.WaitGroup
	results := make([]int, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err, _ := g.Do(context.Background(), "k", fn)
			if err != nil {
				t.Errorf("Do: %v", err)
			}
			results[i] = v
		}()
	}
	for g.waiters("k") < 10 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if runs.Load() != 1 {
		t.Errorf("fn ran %d times, want 1", runs.Load())
	}
	for i, v := range results {
		if v != 42 {
			t.Errorf("result %d = %d, want 42", i, v)
		}
	}
	if g.InFlight() != 0 {
		t.Errorf("InFlight() = %d after completion", g.InFlight())
	}
}

// waiters is a test helper: the number of callers waiting on key.
func (g *Group[K, V]) waiters(key K) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.calls[key]; c != nil {
		return c.refs
	}
	return 0
}

func TestFirstCallerLeavingDoesNotCancel(t *testing.T) {
	var g Group[string, string]
	started := make(chan struct{})
	release := make(chan struct{})
	fn := func(ctx context.Context) (string, error) {
		close(started)
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	first, cancelFirst := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err, _ := g.Do(first, "k", fn)
		errc <- err
	}()
	<-started
	second := make(chan string, 1)
	go func() {
		v, _, shared := g.Do(context.Background(), "k", fn)
		if !shared {
			t.Errorf("second caller did not share")
		}
		second <- v
	}()
	for g.waiters("k") < 2 {
		time.Sleep(time.Millisecond)
	}
	cancelFirst()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("first caller error = %v, want Canceled", err)
	}
	close(release)
	if v := <-second; v != "done" {
		t.Errorf("second caller got %q, want done (the work must survive the first caller)", v)
	}
}

func TestAllCallersLeavingCancels(t *testing.T) {
	var g Group[int, int]
	cancelled := make(chan struct{})
	fn := func(ctx context.Context) (int, error) {
		<-ctx.Done()
		close(cancelled)
		return 0, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 40*time.Millisecond)
	defer cancel2()
	done := make(chan struct{})
	go func() { g.Do(ctx2, 1, fn); close(done) }()
	if _, err, _ := g.Do(ctx, 1, fn); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want DeadlineExceeded", err)
	}
	select {
	case <-cancelled:
		t.Fatal("work cancelled while a caller still waited")
	default:
	}
	<-done
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("work not cancelled after every caller left")
	}
}

func TestValuesKept(t *testing.T) {
	var g Group[int, string]
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	got, _, _ := g.Do(ctx, 1, func(ctx context.Context) (string, error) {
		return ctx.Value(key{}).(string), nil
	})
	if got != "v" {
		t.Errorf("value = %q, want v", got)
	}
}
