// Package brokertest holds what every broker driver is tested with: the
// contract suite (Run), a crash test that kills a subscriber process with
// SIGKILL (RunCrash and CrashChild), and MeasureLatency, which the bench
// harness uses too.
//
// Timeouts here are generous upper bounds for slow shared machines; no test
// asserts that anything is fast.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
)

// patience bounds every wait for something that should happen.
const patience = 90 * time.Second

// Run runs the contract suite. newBroker must return a broker on a fresh,
// empty backend each time and close it at the test's cleanup; Close must
// be safe to call twice, as some subtests close the broker themselves.
// Subtests run in parallel.
func Run(t *testing.T, newBroker func(t *testing.T) broker.Broker) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b broker.Broker)
	}{
		{"Validation", testValidation},
		{"RoundTrip", testRoundTrip},
		{"FanOut", testFanOut},
		{"CompetingConsumers", testCompetingConsumers},
		{"Backlog", testBacklog},
		{"ReceiveCreatesSubscription", testReceiveCreates},
		{"NackRedelivers", testNack},
		{"PanicIsNack", testPanic},
		{"DeadLetter", testDeadLetter},
		{"ConcurrencyLimit", testConcurrencyLimit},
		{"KillAndRestart", testKillAndRestart},
		{"GracefulStop", testGracefulStop},
		{"PromptCancel", testPromptCancel},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newBroker(t))
		})
	}
}

// delivery is one handler call, as recorded by a recorder.
type delivery struct {
	who string // which receiver
	msg broker.Message
	at  time.Time
}

// recorder records handler calls and acks.
type recorder struct {
	mu    sync.Mutex
	all   []delivery
	acked map[string]bool
}

func newRecorder() *recorder { return &recorder{acked: map[string]bool{}} }

func (r *recorder) add(who string, m *broker.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, delivery{who: who, msg: *m, at: time.Now()})
	return len(r.all)
}

func (r *recorder) ack(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acked[id] = true
}

func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

func (r *recorder) of(id string) []delivery {
	var out []delivery
	for _, d := range r.deliveries() {
		if d.msg.ID == id {
			out = append(out, d)
		}
	}
	return out
}

func (r *recorder) ackedIDs() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.acked)
}

// handler records each call as who and acks.
func (r *recorder) handler(who string) broker.Handler {
	return func(ctx context.Context, m *broker.Message) error {
		r.add(who, m)
		r.ack(m.ID)
		return nil
	}
}

// eventually polls cond until it holds, failing t after patience.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// receive runs b.Receive in the background. The returned stop cancels it
// and waits for it to return; it also runs at cleanup.
func receive(t *testing.T, b broker.Broker, sub broker.Subscription, h broker.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := b.Receive(ctx, sub, h)
		if err != nil && ctx.Err() == nil {
			t.Errorf("Receive(%s) returned early: %v", sub.Name, err)
		}
		done <- err
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Receive(%s) = %v after cancel, want nil", sub.Name, err)
				}
			case <-time.After(patience):
				t.Errorf("Receive(%s) still running %v after cancel", sub.Name, patience)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func publish(t *testing.T, b broker.Broker, topic, data string, attrs map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	id, err := b.Publish(ctx, topic, []byte(data), attrs)
	if err != nil {
		t.Fatalf("Publish(%s, %q): %v", topic, data, err)
	}
	if id == "" {
		t.Fatalf("Publish(%s, %q) returned an empty ID", topic, data)
	}
	return id
}

func publishN(t *testing.T, b broker.Broker, topic string, n int) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for i := range n {
		ids[publish(t, b, topic, "m"+strconv.Itoa(i), nil)] = true
	}
	if len(ids) != n {
		t.Fatalf("%d publishes returned %d distinct IDs", n, len(ids))
	}
	return ids
}

func create(t *testing.T, b broker.Broker, sub broker.Subscription) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.CreateSubscription(ctx, sub); err != nil {
		t.Fatalf("CreateSubscription(%s): %v", sub.Name, err)
	}
}

// quiet waits d and fails t if ch receives meanwhile.
func quiet(t *testing.T, ch <-chan broker.Message, d time.Duration, what string) {
	t.Helper()
	select {
	case m := <-ch:
		t.Errorf("%s: got message %s (data %q, attempt %d), want none", what, m.ID, m.Data, m.Attempt)
	case <-time.After(d):
	}
}

func next(t *testing.T, ch <-chan broker.Message) broker.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(patience):
		t.Fatalf("no message after %v", patience)
		return broker.Message{}
	}
}

func testValidation(t *testing.T, b broker.Broker) {
	ctx := context.Background()
	nop := func(context.Context, *broker.Message) error { return nil }
	for _, topic := range []string{"", "has space", "-dash", strings.Repeat("x", broker.MaxNameLen+1)} {
		if _, err := b.Publish(ctx, topic, nil, nil); !errors.Is(err, broker.ErrUnknownTopic) {
			t.Errorf("Publish(%q) = %v, want ErrUnknownTopic", topic, err)
		}
	}
	bad := []broker.Subscription{
		{Topic: "t"},
		{Name: "s"},
		{Name: "s/x", Topic: "t"},
		{Name: "s", Topic: "t x"},
	}
	for _, sub := range bad {
		if err := b.CreateSubscription(ctx, sub); !errors.Is(err, broker.ErrBadSubscription) {
			t.Errorf("CreateSubscription(%+v) = %v, want ErrBadSubscription", sub, err)
		}
		if err := b.Receive(ctx, sub, nop); !errors.Is(err, broker.ErrBadSubscription) {
			t.Errorf("Receive(%+v) = %v, want ErrBadSubscription", sub, err)
		}
	}
	sub := broker.Subscription{Name: "valid", Topic: "valid"}
	if err := b.Receive(ctx, sub, nil); !errors.Is(err, broker.ErrBadSubscription) {
		t.Errorf("Receive with a nil handler = %v, want ErrBadSubscription", err)
	}
	create(t, b, sub)
	create(t, b, sub) // twice is fine
	other := broker.Subscription{Name: "valid", Topic: "other"}
	if err := b.CreateSubscription(ctx, other); !errors.Is(err, broker.ErrBadSubscription) {
		t.Errorf("CreateSubscription of an existing name on another topic = %v, want ErrBadSubscription", err)
	}
	if got, err := b.DeadLetters(ctx, "valid", 10); err != nil || len(got) != 0 {
		t.Errorf("DeadLetters of a new subscription = %v, %v; want none", got, err)
	}
}

func testRoundTrip(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "roundtrip", Name: "roundtrip-1"}
	publish(t, b, sub.Topic, "before the subscription", nil)
	create(t, b, sub)
	before := time.Now()
	attrs := map[string]string{"kind": "purge", "tag": "src:pg/public.roads", "unicode": "Zürich ✓"}
	data := `{"tags":["src:pg/public.roads"]}`
	id := publish(t, b, sub.Topic, data, attrs)
	got := make(chan broker.Message, 10)
	receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		got <- *m
		return nil
	})
	m := next(t, got)
	if m.ID != id {
		t.Errorf("ID = %q, want %q (from Publish); data %q", m.ID, id, m.Data)
	}
	if m.Topic != sub.Topic {
		t.Errorf("Topic = %q, want %q", m.Topic, sub.Topic)
	}
	if string(m.Data) != data {
		t.Errorf("Data = %q, want %q", m.Data, data)
	}
	if !maps.Equal(m.Attributes, attrs) {
		t.Errorf("Attributes = %v, want %v", m.Attributes, attrs)
	}
	if m.Attempt != 1 || m.Redelivered() {
		t.Errorf("Attempt = %d (Redelivered %v), want 1 (false)", m.Attempt, m.Redelivered())
	}
	if m.PublishedAt.Before(before.Add(-time.Minute)) || m.PublishedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("PublishedAt = %v, want about %v", m.PublishedAt, before)
	}
	if m.LastError != "" {
		t.Errorf("LastError = %q, want empty", m.LastError)
	}
	// Nothing else: not the message published before the subscription
	// existed, not a redelivery of the acked one.
	quiet(t, got, 500*time.Millisecond, "after the round trip")

	// Empty data and no attributes work too.
	id = publish(t, b, sub.Topic, "", nil)
	m = next(t, got)
	if m.ID != id || len(m.Data) != 0 || len(m.Attributes) != 0 {
		t.Errorf("empty message arrived as ID %q data %q attributes %v, want ID %q and nothing else", m.ID, m.Data, m.Attributes, id)
	}
}

func testFanOut(t *testing.T, b broker.Broker) {
	subs := []broker.Subscription{{Topic: "fanout", Name: "node-a"}, {Topic: "fanout", Name: "node-b"}}
	rec := newRecorder()
	for _, s := range subs {
		create(t, b, s)
		receive(t, b, s, rec.handler(s.Name))
	}
	ids := publishN(t, b, "fanout", 20)
	got := func(who string) map[string]bool {
		m := map[string]bool{}
		for _, d := range rec.deliveries() {
			if d.who == who {
				m[d.msg.ID] = true
			}
		}
		return m
	}
	for _, s := range subs {
		eventually(t, s.Name+" to get every message", func() bool { return len(got(s.Name)) == len(ids) })
		if g := got(s.Name); !maps.Equal(g, ids) {
			t.Errorf("%s got IDs %v, want %v", s.Name, slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(ids)))
		}
	}
}

func testCompetingConsumers(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "jobs", Name: "workers", Concurrency: 2}
	create(t, b, sub)
	rec := newRecorder()
	slow := func(who string) broker.Handler {
		return func(ctx context.Context, m *broker.Message) error {
			rec.add(who, m)
			time.Sleep(50 * time.Millisecond)
			rec.ack(m.ID)
			return nil
		}
	}
	receive(t, b, sub, slow("w1"))
	receive(t, b, sub, slow("w2"))
	time.Sleep(500 * time.Millisecond) // let both connect
	ids := publishN(t, b, sub.Topic, 40)
	eventually(t, "every message acked", func() bool { return len(rec.ackedIDs()) == len(ids) })
	per := map[string]int{}
	count := map[string]int{}
	for _, d := range rec.deliveries() {
		per[d.who]++
		count[d.msg.ID]++
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("message %s handled %d times, want once", id, n)
		}
	}
	if per["w1"] == 0 || per["w2"] == 0 {
		t.Errorf("split between receivers = %v, want both to get some", per)
	}
}

func testBacklog(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "backlog", Name: "late-node"}
	create(t, b, sub)
	ids := publishN(t, b, sub.Topic, 10)
	time.Sleep(200 * time.Millisecond)
	rec := newRecorder()
	receive(t, b, sub, rec.handler("late"))
	eventually(t, "the backlog delivered", func() bool { return len(rec.ackedIDs()) == len(ids) })
	if got := rec.ackedIDs(); !maps.Equal(got, ids) {
		t.Errorf("got IDs %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(ids)))
	}
	for _, d := range rec.deliveries() {
		if d.msg.Attempt != 1 {
			t.Errorf("message %s: Attempt = %d, want 1", d.msg.ID, d.msg.Attempt)
		}
	}
}

func testNack(t *testing.T, b broker.Broker) {
	const backoff = 50 * time.Millisecond
	sub := broker.Subscription{Topic: "nack", Name: "nack", MinBackoff: backoff, MaxBackoff: backoff}
	create(t, b, sub)
	rec := newRecorder()
	receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		if rec.add("r", m) == 1 {
			return errors.New("not yet")
		}
		rec.ack(m.ID)
		return nil
	})
	id := publish(t, b, sub.Topic, "retry me", nil)
	eventually(t, "the redelivery", func() bool { return len(rec.ackedIDs()) == 1 })
	time.Sleep(300 * time.Millisecond)
	ds := rec.of(id)
	if len(ds) != 2 {
		t.Fatalf("message delivered %d times, want 2 (nack, then ack)", len(ds))
	}
	if ds[0].msg.Attempt != 1 || ds[1].msg.Attempt != 2 || !ds[1].msg.Redelivered() {
		t.Errorf("attempts = %d, %d (redelivered %v), want 1, 2 (true)", ds[0].msg.Attempt, ds[1].msg.Attempt, ds[1].msg.Redelivered())
	}
	if gap := ds[1].at.Sub(ds[0].at); gap < backoff/2 {
		t.Errorf("redelivered %v after the nack, want no sooner than the %v backoff", gap, backoff)
	}
}

func testPanic(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "panic", Name: "panic", MinBackoff: 50 * time.Millisecond}
	rec := newRecorder()
	create(t, b, sub)
	receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		if rec.add("r", m) == 1 {
			panic("handler bug")
		}
		rec.ack(m.ID)
		return nil
	})
	id := publish(t, b, sub.Topic, "x", nil)
	eventually(t, "the redelivery after the panic", func() bool { return len(rec.ackedIDs()) == 1 })
	if ds := rec.of(id); len(ds) != 2 || ds[1].msg.Attempt != 2 {
		t.Errorf("deliveries after a panic = %d, want 2 with the second at Attempt 2", len(ds))
	}
}

// testReceiveCreates checks that Receive creates its subscription: probes
// published after it started are delivered.
func testReceiveCreates(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "implicit", Name: "implicit"}
	got := make(chan broker.Message, 100)
	receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		got <- *m
		return nil
	})
	deadline := time.After(patience)
	for {
		publish(t, b, sub.Topic, "probe", nil)
		select {
		case <-got:
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("Receive without CreateSubscription never got a message")
		}
	}
}

func testDeadLetter(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "poison", Name: "poison", MaxAttempts: 3, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	create(t, b, sub)
	rec := newRecorder()
	receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		rec.add("r", m)
		if string(m.Data) == "bad" {
			return errors.New("boom: cannot parse")
		}
		rec.ack(m.ID)
		return nil
	})
	attrs := map[string]string{"job": "42"}
	good := publish(t, b, sub.Topic, "good", nil)
	bad := publish(t, b, sub.Topic, "bad", attrs)

	ctx := context.Background()
	var dl []broker.Message
	eventually(t, "the dead letter", func() bool {
		var err error
		dl, err = b.DeadLetters(ctx, sub.Name, 10)
		if err != nil {
			t.Fatalf("DeadLetters: %v", err)
		}
		return len(dl) > 0
	})
	time.Sleep(500 * time.Millisecond) // no further delivery of bad
	if len(dl) != 1 {
		t.Fatalf("DeadLetters = %d messages, want 1", len(dl))
	}
	m := dl[0]
	if m.ID != bad || string(m.Data) != "bad" || m.Topic != sub.Topic || !maps.Equal(m.Attributes, attrs) {
		t.Errorf("dead letter = ID %q topic %q data %q attributes %v; want %q %q %q %v",
			m.ID, m.Topic, m.Data, m.Attributes, bad, sub.Topic, "bad", attrs)
	}
	if m.Attempt != sub.MaxAttempts {
		t.Errorf("dead letter Attempt = %d, want %d", m.Attempt, sub.MaxAttempts)
	}
	if !strings.Contains(m.LastError, "boom") {
		t.Errorf("dead letter LastError = %q, want the handler's error", m.LastError)
	}
	if m.PublishedAt.IsZero() {
		t.Error("dead letter PublishedAt is zero")
	}
	var attempts []int
	for _, d := range rec.of(bad) {
		attempts = append(attempts, d.msg.Attempt)
	}
	if want := []int{1, 2, 3}; !slices.Equal(attempts, want) {
		t.Errorf("bad message delivered with attempts %v, want %v", attempts, want)
	}
	if n := len(rec.of(good)); n != 1 {
		t.Errorf("good message delivered %d times, want 1", n)
	}
	if got, _ := b.DeadLetters(ctx, sub.Name, 10); len(got) != 1 {
		t.Errorf("DeadLetters listed twice: second time %d messages, want 1 (listing must not consume)", len(got))
	}
	if got, err := b.DeadLetters(ctx, "other", 10); err != nil || len(got) != 0 {
		t.Errorf("DeadLetters of another subscription = %d, %v; want none", len(got), err)
	}
}

func testConcurrencyLimit(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "conc", Name: "conc", Concurrency: 3}
	create(t, b, sub)
	var running, peak atomic.Int32
	rec := newRecorder()
	receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		rec.add("r", m)
		time.Sleep(50 * time.Millisecond)
		rec.ack(m.ID)
		return nil
	})
	ids := publishN(t, b, sub.Topic, 12)
	eventually(t, "every message acked", func() bool { return len(rec.ackedIDs()) == len(ids) })
	if p := peak.Load(); p > int32(sub.Concurrency) {
		t.Errorf("%d handlers ran at once, want at most Concurrency %d", p, sub.Concurrency)
	}
}

// testKillAndRestart stops a subscriber while handlers are in the middle
// of messages (they see ctx cancelled and fail), then starts another: every
// message must be acked in the end, and a message handled twice must come
// the second time as a redelivery.
func testKillAndRestart(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "kill", Name: "kill", AckDeadline: 2 * time.Second, MaxAttempts: 20,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Concurrency: 4}
	create(t, b, sub)
	ids := publishN(t, b, sub.Topic, 30)
	rec := newRecorder()
	var blocked atomic.Int32
	stop1 := receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		if rec.add("first", m)%3 == 0 {
			blocked.Add(1)
			<-ctx.Done() // stuck mid-message until the subscriber stops
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
		rec.ack(m.ID)
		return nil
	})
	eventually(t, "the first subscriber to be mid-stream", func() bool { return len(rec.deliveries()) >= 8 && blocked.Load() >= 2 })
	stop1()
	receive(t, b, sub, rec.handler("second"))
	eventually(t, "every message acked", func() bool { return len(rec.ackedIDs()) == len(ids) })
	checkRedeliveries(t, rec.deliveries(), ids, rec.ackedIDs())
}

// checkRedeliveries asserts the at-least-once contract over recorded
// deliveries: every published ID acked, at most one first delivery
// (Attempt 1) per ID, and every later delivery marked Redelivered.
func checkRedeliveries(t *testing.T, ds []delivery, published, acked map[string]bool) {
	t.Helper()
	if !maps.Equal(acked, published) {
		t.Errorf("acked IDs %v, want %v", slices.Sorted(maps.Keys(acked)), slices.Sorted(maps.Keys(published)))
	}
	byID := map[string][]delivery{}
	for _, d := range ds {
		byID[d.msg.ID] = append(byID[d.msg.ID], d)
	}
	for id, ds := range byID {
		firsts := 0
		for i, d := range ds {
			if d.msg.Attempt < 1 {
				t.Errorf("message %s delivery %d: Attempt = %d, want >= 1", id, i+1, d.msg.Attempt)
			}
			if d.msg.Attempt == 1 {
				firsts++
			}
			if i > 0 && !d.msg.Redelivered() {
				t.Errorf("message %s delivered %d times; delivery %d (to %s) has Attempt %d, want Redelivered",
					id, len(ds), i+1, d.who, d.msg.Attempt)
			}
		}
		if firsts > 1 {
			t.Errorf("message %s delivered %d times with Attempt 1, want at most once", id, firsts)
		}
	}
}

func testGracefulStop(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "graceful", Name: "graceful"}
	create(t, b, sub)
	started := make(chan struct{})
	var finished atomic.Bool
	var calls atomic.Int32
	stop := receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		if calls.Add(1) == 1 {
			close(started)
		}
		time.Sleep(300 * time.Millisecond) // ignores ctx: a handler finishing its work
		finished.Store(true)
		return nil
	})
	publish(t, b, sub.Topic, "x", nil)
	select {
	case <-started:
	case <-time.After(patience):
		t.Fatal("handler never called")
	}
	stop()
	if !finished.Load() {
		t.Error("Receive returned before its running handler finished")
	}
	got := make(chan broker.Message, 1)
	receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		got <- *m
		return nil
	})
	quiet(t, got, time.Second, "after a handler acked during shutdown")
}

func testPromptCancel(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "cancel", Name: "cancel"}
	nop := func(context.Context, *broker.Message) error { return nil }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- b.Receive(ctx, sub, nop) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Receive with a cancelled ctx = %v, want nil", err)
		}
	case <-time.After(patience):
		t.Fatal("Receive with a cancelled ctx did not return")
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- b.Receive(ctx, sub, nop) }()
	time.Sleep(500 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Receive after cancel = %v, want nil", err)
		}
	case <-time.After(patience):
		t.Fatal("Receive did not return after cancel")
	}
}

func testClosed(t *testing.T, b broker.Broker) {
	sub := broker.Subscription{Topic: "closed", Name: "closed"}
	nop := func(context.Context, *broker.Message) error { return nil }
	done := make(chan error, 1)
	go func() { done <- b.Receive(context.Background(), sub, nop) }()
	time.Sleep(500 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, broker.ErrClosed) {
			t.Errorf("running Receive after Close = %v, want nil or ErrClosed", err)
		}
	case <-time.After(patience):
		t.Fatal("running Receive did not return after Close")
	}
	ctx := context.Background()
	if _, err := b.Publish(ctx, sub.Topic, []byte("x"), nil); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := b.Receive(ctx, sub, nop); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Receive after Close = %v, want ErrClosed", err)
	}
	if err := b.CreateSubscription(ctx, sub); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("CreateSubscription after Close = %v, want ErrClosed", err)
	}
	if _, err := b.DeadLetters(ctx, sub.Name, 1); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("DeadLetters after Close = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}
