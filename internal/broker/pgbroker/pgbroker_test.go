package pgbroker_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokertest"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newBroker(t *testing.T, pool *pgxpool.Pool, cfg pgbroker.Config) *pgbroker.Broker {
	b := pgbroker.New(pool, cfg, logger(t))
	t.Cleanup(func() { b.Close() })
	return b
}

func TestContract(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return newBroker(t, pgtest.Meta(t).Pool, pgbroker.Config{})
	})
}

// crashDBEnv passes the database URL to the subscriber process of
// TestCrashedSubscriber.
const crashDBEnv = "PGBROKER_CRASH_DB"

func TestCrashedSubscriber(t *testing.T) {
	db := pgtest.Meta(t)
	b := newBroker(t, db.Pool, pgbroker.Config{})
	brokertest.RunCrash(t, b, func(env []string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(append(os.Environ(), crashDBEnv+"="+db.URL), env...)
		return cmd
	})
}

// TestCrashChild is the subscriber process TestCrashedSubscriber kills.
func TestCrashChild(t *testing.T) {
	url := os.Getenv(crashDBEnv)
	if url == "" || os.Getenv(brokertest.CrashEnv) == "" {
		t.Skip("subscriber process of TestCrashedSubscriber")
	}
	pool, err := pgdb.NewPool(context.Background(), url, pgdb.PoolConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	brokertest.CrashChild(t, pgbroker.New(pool, pgbroker.Config{}, logger(t)))
}

func TestLatency(t *testing.T) {
	b := newBroker(t, pgtest.Meta(t).Pool, pgbroker.Config{})
	p50, p99, err := brokertest.MeasureLatency(context.Background(), b, 500)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("postgres broker publish-to-handler latency over 500 messages: p50 %v, p99 %v", p50, p99)
}

// counter is a handler counting deliveries per data.
type counter struct{ n, acked atomic.Int32 }

func (c *counter) handle(ctx context.Context, m *broker.Message) error {
	c.n.Add(1)
	c.acked.Add(1)
	return nil
}

// receive creates sub and receives from it until the test ends.
func receive(t *testing.T, b broker.Broker, sub broker.Subscription, h broker.Handler) {
	t.Helper()
	eventually(t, "the subscription to be created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return b.CreateSubscription(ctx, sub) == nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Receive(ctx, sub, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Receive = %v, want nil", err)
		}
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publish retries Publish until it succeeds (the database may be coming
// back), failing t after a while.
func publish(t *testing.T, b broker.Broker, topic string) string {
	t.Helper()
	var id string
	eventually(t, "a publish to succeed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		id, err = b.Publish(ctx, topic, []byte("x"), nil)
		return err == nil
	})
	return id
}

// TestListenerReconnects kills the LISTEN connection: with polling
// effectively off, delivery must resume through a new one.
func TestListenerReconnects(t *testing.T) {
	db := pgtest.Meta(t)
	b := newBroker(t, db.Pool, pgbroker.Config{PollInterval: config.Duration(time.Hour)})
	sub := broker.Subscription{Topic: "t", Name: "s"}
	var c counter
	receive(t, b, sub, c.handle)
	publish(t, b, sub.Topic)
	eventually(t, "the first delivery", func() bool { return c.n.Load() >= 1 })
	base := c.n.Load()

	ctx := context.Background()
	var killed int
	eventually(t, "the listener to be terminated", func() bool {
		err := db.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name LIKE '% broker listener'`).Scan(&killed)
		return err == nil && killed > 0
	})
	// Each message must come through notifications.
	for i := range 3 {
		publish(t, b, sub.Topic)
		eventually(t, "delivery after the listener was killed", func() bool { return c.n.Load() >= base+int32(i)+1 })
	}
}

// TestConnectionsTerminated kills every connection of the database while
// a subscriber waits: Receive must keep going.
func TestConnectionsTerminated(t *testing.T) {
	db := pgtest.Meta(t)
	b := newBroker(t, db.Pool, pgbroker.Config{})
	sub := broker.Subscription{Topic: "t", Name: "s"}
	var c counter
	receive(t, b, sub, c.handle)
	publish(t, b, sub.Topic)
	eventually(t, "the first delivery", func() bool { return c.n.Load() == 1 })

	admin, err := pgdb.NewPool(context.Background(), pgtest.AdminURL(t), pgdb.PoolConfig{MaxConns: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, db.Name); err != nil {
		t.Fatal(err)
	}
	publish(t, b, sub.Topic)
	eventually(t, "delivery after every connection was killed", func() bool { return c.n.Load() == 2 })
}

// TestDatabaseRestart stops and restarts a private cluster under a running
// subscriber: Publish fails meanwhile, Receive retries and resumes.
func TestDatabaseRestart(t *testing.T) {
	pgtest.AdminURL(t) // skip unless integration tests run
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pgbroker-restart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	c, err := pgcluster.Open(ctx, dir, pgcluster.Options{Fast: true})
	if errors.Is(err, pgcluster.ErrNoBinaries) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	pool, err := pgdb.NewPool(ctx, c.SuperuserURL("postgres"), pgdb.PoolConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pgdb.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, pool, pgbroker.Config{})
	sub := broker.Subscription{Topic: "t", Name: "s"}
	var cnt counter
	receive(t, b, sub, cnt.handle)
	publish(t, b, sub.Topic)
	eventually(t, "the first delivery", func() bool { return cnt.n.Load() == 1 })

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = b.Publish(pctx, sub.Topic, []byte("x"), nil)
	cancel()
	if err == nil {
		t.Error("Publish with the database down = nil error, want an error")
	}
	time.Sleep(time.Second) // Receive retrying meanwhile
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, b, sub.Topic)
	eventually(t, "delivery after the restart", func() bool { return cnt.n.Load() == 2 })
}

// TestLeaseRenewed runs a handler for several ack deadlines: its lease is
// renewed, so the message is not delivered again meanwhile.
func TestLeaseRenewed(t *testing.T) {
	b := newBroker(t, pgtest.Meta(t).Pool, pgbroker.Config{})
	sub := broker.Subscription{Topic: "t", Name: "s", AckDeadline: 300 * time.Millisecond, Concurrency: 2}
	if err := b.CreateSubscription(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	var calls, done atomic.Int32
	receive(t, b, sub, func(ctx context.Context, m *broker.Message) error {
		calls.Add(1)
		select {
		case <-time.After(1500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		done.Add(1)
		return nil
	})
	publish(t, b, sub.Topic)
	eventually(t, "the slow handler to finish", func() bool { return done.Load() == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1 (lease renewed while it ran)", n)
	}
}

func TestCleanup(t *testing.T) {
	db := pgtest.Meta(t)
	b := newBroker(t, db.Pool, pgbroker.Config{CleanupInterval: -1})
	ctx := context.Background()
	count := func(q string) int {
		var n int
		if err := db.Pool.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	gone := broker.Subscription{Topic: "t", Name: "gone", ExpireAfter: 100 * time.Millisecond}
	kept := broker.Subscription{Topic: "t", Name: "kept", ExpireAfter: 400 * time.Millisecond}
	forever := broker.Subscription{Topic: "u", Name: "forever"}
	for _, s := range []broker.Subscription{gone, kept, forever} {
		if err := b.CreateSubscription(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var c counter
	receive(t, b, kept, c.handle) // keeps "kept" alive and acks its copies
	publish(t, b, "t")
	publish(t, b, "u")
	publish(t, b, "nobody-listens")
	eventually(t, "kept's delivery", func() bool { return c.acked.Load() == 1 })
	if _, err := db.Pool.Exec(ctx, `INSERT INTO broker_dead_letters
		(subscription, message_id, topic, data, published_at, attempts, dead_at)
		VALUES ('forever', 999, 'u', '', now(), 5, now() - interval '30 days'),
		       ('forever', 998, 'u', '', now(), 5, now())`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := b.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	tests := []struct {
		name, q string
		want    int
	}{
		{"idle subscription deleted", `SELECT count(*) FROM broker_subscriptions WHERE name = 'gone'`, 0},
		{"received subscription kept", `SELECT count(*) FROM broker_subscriptions WHERE name = 'kept'`, 1},
		{"subscription without ExpireAfter kept", `SELECT count(*) FROM broker_subscriptions WHERE name = 'forever'`, 1},
		{"deliveries left: forever's", `SELECT count(*) FROM broker_deliveries`, 1},
		{"messages left: forever's", `SELECT count(*) FROM broker_messages`, 1},
		{"old dead letters deleted", `SELECT count(*) FROM broker_dead_letters`, 1},
	}
	for _, tt := range tests {
		if got := count(tt.q); got != tt.want {
			t.Errorf("%s: %s = %d, want %d", tt.name, tt.q, got, tt.want)
		}
	}
}

// TestLeaseExpiredTooOften dead-letters, without calling the handler, a
// message whose subscribers died on it MaxAttempts times.
func TestLeaseExpiredTooOften(t *testing.T) {
	db := pgtest.Meta(t)
	b := newBroker(t, db.Pool, pgbroker.Config{})
	ctx := context.Background()
	sub := broker.Subscription{Topic: "t", Name: "s", MaxAttempts: 3}
	if err := b.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	id := publish(t, b, sub.Topic)
	// As if three subscribers had claimed it and died.
	if _, err := db.Pool.Exec(ctx, `UPDATE broker_deliveries SET attempt = 3, last_error = 'lease lost'`); err != nil {
		t.Fatal(err)
	}
	var c counter
	receive(t, b, sub, c.handle)
	var dl []broker.Message
	eventually(t, "the dead letter", func() bool {
		var err error
		dl, err = b.DeadLetters(ctx, sub.Name, 10)
		return err == nil && len(dl) == 1
	})
	if dl[0].ID != id || dl[0].Attempt != 3 {
		t.Errorf("dead letter = ID %s attempt %d, want %s and 3", dl[0].ID, dl[0].Attempt, id)
	}
	if n := c.n.Load(); n != 0 {
		t.Errorf("handler called %d times, want 0", n)
	}
}

// recorded is a handler keeping every delivery; fail makes it return an
// error for some.
type recorded struct {
	mu   sync.Mutex
	got  []broker.Message
	fail func(m *broker.Message) bool
}

func (r *recorded) handle(_ context.Context, m *broker.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, *m)
	if r.fail != nil && r.fail(m) {
		return errors.New("failing on purpose")
	}
	return nil
}

func (r *recorded) of(id string) []broker.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []broker.Message
	for _, m := range r.got {
		if m.ID == id {
			out = append(out, m)
		}
	}
	return out
}

func pending(t *testing.T, db *pgtest.DB, sub string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM broker_deliveries WHERE subscription = $1`, sub).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEarlyDelivery: with EarlyDelivery, a message is handled from its
// notification (Attempt 0) and its claim acks it without a second call;
// an early call that fails leaves the message to its durable delivery
// (Attempt 1), which carries the same message; a message too large for
// the notification, or a subscription without EarlyDelivery, gets only
// the durable delivery. Polling is off: every delivery here comes from a
// notification.
func TestEarlyDelivery(t *testing.T) {
	db := pgtest.Meta(t)
	b := newBroker(t, db.Pool, pgbroker.Config{PollInterval: config.Duration(time.Hour)})
	ctx := context.Background()
	early := broker.Subscription{Topic: "early", Name: "early-node", EarlyDelivery: true, Concurrency: 2}
	plain := broker.Subscription{Topic: "early", Name: "plain-node"}
	re := &recorded{fail: func(m *broker.Message) bool { return m.Attempt == 0 && string(m.Data) == "fail early" }}
	var rp recorded
	receive(t, b, early, re.handle)
	receive(t, b, plain, rp.handle)

	// Until the listener listens, messages come with its first claim.
	eventually(t, "an early delivery", func() bool {
		id := publish(t, b, early.Topic)
		eventually(t, "the message acked", func() bool { return pending(t, db, early.Name)+pending(t, db, plain.Name) == 0 })
		got := re.of(id)
		return len(got) > 0 && got[0].Attempt == 0
	})

	attrs := map[string]string{"k": "v"}
	ids := map[string]string{}
	for _, data := range []string{"one", "two", "fail early", strings.Repeat("x", broker.MaxEarlySize+1),
		strings.Repeat("y", broker.MaxEarlySize), "big attributes"} {
		a := attrs
		if data == "big attributes" { // too large for a NOTIFY payload: Publish must still work
			a = map[string]string{"k": strings.Repeat("a", 7900)}
		}
		id, err := b.Publish(ctx, early.Topic, []byte(data), a)
		if err != nil {
			t.Fatal(err)
		}
		ids[data[:min(len(data), 10)]] = id
		// One at a time: a claim that finds a message before the
		// listener has read its notification would deliver it twice,
		// durably and then early (allowed, but not what is tested here).
		eventually(t, "the message acked", func() bool { return pending(t, db, early.Name)+pending(t, db, plain.Name) == 0 })
	}
	time.Sleep(100 * time.Millisecond) // a second call would come now

	attempts := func(ms []broker.Message) []int {
		var out []int
		for _, m := range ms {
			out = append(out, m.Attempt)
		}
		return out
	}
	for key, want := range map[string][]int{"one": {0}, "two": {0}, "fail early": {0, 1}, "xxxxxxxxxx": {1}, "yyyyyyyyyy": {0},
		"big attrib": {1}} {
		got := re.of(ids[key])
		if !slices.Equal(attempts(got), want) {
			t.Errorf("early subscription: %q delivered with attempts %v, want %v", key, attempts(got), want)
		}
		if g := rp.of(ids[key]); !slices.Equal(attempts(g), []int{1}) {
			t.Errorf("plain subscription: %q delivered with attempts %v, want [1]", key, attempts(g))
		}
	}
	// The early message is the durable one.
	if got := re.of(ids["fail early"]); len(got) == 2 {
		e, d := got[0], got[1]
		if e.ID != d.ID || e.Topic != d.Topic || string(e.Data) != string(d.Data) || !maps.Equal(e.Attributes, d.Attributes) ||
			!e.PublishedAt.Equal(d.PublishedAt) {
			t.Errorf("early delivery %+v differs from the durable one %+v", e, d)
		}
	}
}
