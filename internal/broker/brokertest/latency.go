package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
)

// LatencyTopic is the topic MeasureLatency publishes to.
const LatencyTopic = "latency-probe"

// MeasureLatency publishes n messages to LatencyTopic one at a time, each
// after the previous one reached its handler, on a new subscription
// ("latency-<random>", expiring after an hour idle), and returns the 50th
// and 99th percentiles of the time from calling Publish to the handler
// being called. It measures an idle broker's latency, not throughput.
func MeasureLatency(ctx context.Context, b broker.Broker, n int) (p50, p99 time.Duration, err error) {
	if n <= 0 {
		return 0, 0, errors.New("measuring latency: n must be positive")
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	sub := broker.Subscription{Topic: LatencyTopic, Name: "latency-" + hex.EncodeToString(rnd[:]), ExpireAfter: time.Hour}
	if err := b.CreateSubscription(ctx, sub); err != nil {
		return 0, 0, fmt.Errorf("measuring latency: %w", err)
	}
	type arrival struct {
		id string
		at time.Time
	}
	arrivals := make(chan arrival, 2*n+10)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Receive(rctx, sub, func(ctx context.Context, m *broker.Message) error {
			at := time.Now()
			select {
			case arrivals <- arrival{m.ID, at}:
			default:
			}
			return nil
		})
	}()
	defer func() {
		cancel()
		if rerr := <-done; rerr != nil && err == nil {
			err = fmt.Errorf("measuring latency: receiving: %w", rerr)
		}
	}()
	// once publishes a message and waits for its arrival.
	once := func(i int) (time.Duration, error) {
		start := time.Now()
		id, err := b.Publish(ctx, sub.Topic, []byte(fmt.Sprintf(`{"probe":%d}`, i)), nil)
		if err != nil {
			return 0, err
		}
		timeout := time.After(time.Minute)
		for {
			select {
			case a := <-arrivals:
				if a.id == id {
					return a.at.Sub(start), nil
				}
			case err := <-done:
				done <- err
				return 0, fmt.Errorf("receive stopped: %v", err)
			case <-timeout:
				return 0, fmt.Errorf("message %s not delivered within a minute", id)
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	// Warm up: the first message also waits for the subscriber to connect.
	if _, err := once(-1); err != nil {
		return 0, 0, fmt.Errorf("measuring latency: warming up: %w", err)
	}
	lat := make([]time.Duration, 0, n)
	for i := range n {
		d, err := once(i)
		if err != nil {
			return 0, 0, fmt.Errorf("measuring latency: message %d: %w", i, err)
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	return lat[(n-1)*50/100], lat[(n-1)*99/100], nil
}
