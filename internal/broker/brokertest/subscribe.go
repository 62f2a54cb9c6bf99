package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
)

// Subscribe receives topic on a subscription of the test's own ("test-"
// and the topic) and returns a channel of its messages, received (and
// acked) until the test ends.
func Subscribe(t testing.TB, b broker.Broker, topic string) <-chan *broker.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub := broker.Subscription{Topic: topic, Name: "test-" + topic}
	if err := b.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *broker.Message, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Receive(ctx, sub, func(_ context.Context, m *broker.Message) error { ch <- m; return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

// Receive waits up to limit for a message of ch (from Subscribe).
func Receive(t testing.TB, ch <-chan *broker.Message, limit time.Duration) *broker.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(limit):
		t.Fatalf("no message within %v", limit)
		return nil
	}
}
