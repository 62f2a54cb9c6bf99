package workers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Shutdown loses no accepted work: jobs running when the worker is told to
// stop finish and are acked; jobs not yet started stay queued and the next
// worker handles them, each exactly once.
func TestGracefulShutdownLosesNoWork(t *testing.T) {
	db := pgtest.Meta(t)
	log := slog.New(slog.DiscardHandler)
	b := pgbroker.New(db.Pool, pgbroker.Config{}, log)
	defer b.Close()
	ctx := context.Background()
	sub := broker.Subscription{Name: "workers-test", Concurrency: 2, AckDeadline: 5 * time.Second}
	if err := b.CreateSubscription(ctx, broker.Subscription{Topic: broker.TopicSQLJobs, Name: sub.Name}); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		if _, err := b.Publish(ctx, broker.TopicSQLJobs, []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	done := map[string]int{}
	redelivered := 0
	started := make(chan struct{}, n)
	release := make(chan struct{})
	handler := func(block bool) broker.Handler {
		return func(ctx context.Context, m *broker.Message) error {
			if block {
				started <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			done[string(m.Data)]++
			if m.Redelivered() {
				redelivered++
			}
			return nil
		}
	}

	// Worker 1 takes two jobs, blocks in both, and is told to stop.
	r1, err := New(Config{Addr: freeAddr(t), DrainTimeout: config.Duration(30 * time.Second)}, Deps{Log: log, Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	r1.Handle(broker.TopicSQLJobs, sub, handler(true))
	ctx1, stop1 := context.WithCancel(ctx)
	run1 := make(chan error, 1)
	go func() { run1 <- r1.Run(ctx1) }()
	<-started
	<-started
	stop1()
	time.Sleep(200 * time.Millisecond) // shutdown has begun; the jobs are still running
	close(release)
	if err := <-run1; err != nil {
		t.Fatalf("worker 1 Run = %v", err)
	}
	mu.Lock()
	first := len(done)
	mu.Unlock()
	if first != 2 {
		t.Fatalf("worker 1 finished %d jobs, want the 2 it was running", first)
	}

	// Worker 2 handles the rest.
	r2, err := New(Config{Addr: freeAddr(t)}, Deps{Log: log, Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	r2.Handle(broker.TopicSQLJobs, sub, handler(false))
	ctx2, stop2 := context.WithCancel(ctx)
	run2 := make(chan error, 1)
	go func() { run2 <- r2.Run(ctx2) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := len(done)
		mu.Unlock()
		if got == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop2()
	if err := <-run2; err != nil {
		t.Fatalf("worker 2 Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(done) != n {
		t.Errorf("handled %d distinct jobs, want %d", len(done), n)
	}
	for id, c := range done {
		if c != 1 {
			t.Errorf("job %s handled %d times, want once", id, c)
		}
	}
	if redelivered != 0 {
		t.Errorf("%d redeliveries after a graceful shutdown, want 0", redelivered)
	}
}
