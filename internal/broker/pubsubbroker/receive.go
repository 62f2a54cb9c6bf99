package pubsubbroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/internal/retry"
)

// Receive creates the subscription if needed and calls h for its
// messages, up to sub.Concurrency at once, until ctx is cancelled or the
// broker is closed; it then waits for running handlers and returns nil.
// Errors from the service are logged and retried with backoff; Receive
// returns an error only for a bad subscription.
func (b *Broker) Receive(ctx context.Context, sub broker.Subscription, h broker.Handler) error {
	if err := checkSub(sub); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w %s: nil handler", broker.ErrBadSubscription, sub.Name)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	b.receives.Add(1)
	b.mu.Unlock()
	defer b.receives.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.ctx, cancel)()

	sub = sub.WithDefaults()
	log := b.log.With("subscription", sub.Name, "topic", sub.Topic)
	bo := retry.Backoff{Max: 10 * time.Second}
	for {
		err := b.createSubscription(ctx, sub)
		if err == nil {
			break
		}
		if errors.Is(err, broker.ErrBadSubscription) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		d := bo.Next()
		log.Warn("creating subscription failed; retrying", "err", err, "retry_in", d)
		if !retry.Sleep(ctx, d) {
			return nil
		}
	}
	bo.Reset()
	for {
		s := b.client.Subscriber(b.cfg.Prefix + sub.Name)
		s.ReceiveSettings.MaxOutstandingMessages = sub.Concurrency
		s.ReceiveSettings.NumGoroutines = 1
		// Lease extensions of at most the ack deadline: a subscriber that
		// dies holds its messages that long, not the client's default 60s.
		s.ReceiveSettings.MaxDurationPerAckExtension = min(max(sub.AckDeadline, 10*time.Second), 600*time.Second)
		started := time.Now()
		err := s.Receive(ctx, func(mctx context.Context, m *pubsub.Message) {
			b.handle(ctx, mctx, sub, h, m)
		})
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			bo.Reset()
		}
		d := bo.Next()
		log.Warn("receiving stopped; retrying", "err", err, "retry_in", d)
		if !retry.Sleep(ctx, d) {
			return nil
		}
		// The subscription may have been deleted (expired): recreate it.
		if err := b.createSubscription(ctx, sub); err != nil && ctx.Err() == nil {
			log.Warn("recreating subscription failed", "err", err)
		}
	}
}

// handle runs the handler for one message and acks, nacks or
// dead-letters it.
func (b *Broker) handle(rctx, mctx context.Context, sub broker.Subscription, h broker.Handler, m *pubsub.Message) {
	key := sub.Name + "\x00" + m.ID
	attempt := b.attempts.inc(key)
	if m.DeliveryAttempt != nil && *m.DeliveryAttempt > attempt {
		attempt = *m.DeliveryAttempt
	}
	msg := broker.Message{
		ID:          m.ID,
		Topic:       sub.Topic,
		Data:        m.Data,
		Attributes:  maps.Clone(m.Attributes),
		PublishedAt: m.PublishTime,
		Attempt:     attempt,
	}
	if attempt > sub.MaxAttempts {
		b.deadLetter(rctx, sub, m, msg, attempt-1, "delivered "+strconv.Itoa(attempt-1)+" times without an ack")
		return
	}
	err := b.call(mctx, h, msg)
	if err == nil {
		m.Ack()
		b.attempts.del(key)
		return
	}
	stopping := rctx.Err() != nil && errors.Is(err, context.Canceled)
	if attempt >= sub.MaxAttempts && !stopping {
		b.deadLetter(rctx, sub, m, msg, attempt, err.Error())
		return
	}
	if b.cfg.ClientBackoff && !stopping {
		retry.Sleep(mctx, sub.Backoff(attempt))
	}
	m.Nack()
}

// call runs h on a copy of msg, turning a panic into an error.
func (b *Broker) call(ctx context.Context, h broker.Handler, msg broker.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("handler panicked", "message_id", msg.ID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h(ctx, &msg)
}

// deadLetter publishes m to the dead-letter topic, with attributes saying
// where it came from, and acks it; if publishing fails it nacks it, so
// that it comes back and is dead-lettered then.
func (b *Broker) deadLetter(rctx context.Context, sub broker.Subscription, m *pubsub.Message, msg broker.Message, attempts int, reason string) {
	attrs := maps.Clone(m.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs[attrSubscription] = sub.Name
	attrs[attrTopic] = sub.Topic
	attrs[attrID] = m.ID
	attrs[attrPublishedAt] = m.PublishTime.UTC().Format(time.RFC3339Nano)
	attrs[attrAttempts] = strconv.Itoa(attempts)
	attrs[attrError] = truncate(reason, 1024) // Pub/Sub's limit for a value
	ctx, cancel := context.WithTimeout(context.WithoutCancel(rctx), 30*time.Second)
	defer cancel()
	if _, err := b.publish(ctx, b.cfg.Prefix+deadLetters, m.Data, attrs); err != nil {
		b.log.Warn("dead-lettering failed; nacking", "subscription", sub.Name, "message_id", m.ID, "err", err)
		m.Nack()
		return
	}
	m.Ack()
	b.attempts.del(sub.Name + "\x00" + m.ID)
	b.log.Warn("message dead-lettered", "subscription", sub.Name, "message_id", m.ID, "attempts", attempts, "err", reason)
}

// attemptCounter counts deliveries per subscription and message in this
// process, for servers that do not count them. It forgets everything past
// maxTracked entries (messages nacked here and acked elsewhere).
type attemptCounter struct {
	mu sync.Mutex
	m  map[string]int
}

const maxTracked = 100_000

func (c *attemptCounter) inc(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxTracked {
		c.m = map[string]int{}
	}
	c.m[key]++
	return c.m[key]
}

func (c *attemptCounter) del(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

// truncate shortens s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(c byte) bool { return c&0xC0 != 0x80 }
