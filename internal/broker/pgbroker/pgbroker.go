// Package pgbroker is the default broker driver: durable messages in the
// metadata PostgreSQL database (tables from migration 0003_broker.sql).
//
// Publish inserts the message and one delivery row per subscription of the
// topic in one statement (fan-out at publish time, so a subscription keeps
// what is published while nobody receives) and NOTIFYs the topic's channel,
// which PostgreSQL sends at commit. Receive LISTENs on a dedicated
// connection for wake-ups, polls every PollInterval as a fallback (a lost
// notification or a listener reconnecting never stalls delivery), and
// claims deliveries with FOR UPDATE SKIP LOCKED, so subscribers sharing a
// subscription compete for messages. A claim is a lease of AckDeadline that
// Receive renews while the handler runs; a subscriber that dies stops
// renewing, the lease runs out and the message is claimed again with the
// next Attempt.
//
// The notification carries the message (JSON: id, published_at, data in
// base64, attributes) when it fits: data of at most broker.MaxEarlySize
// bytes, and small attributes. A subscription with EarlyDelivery calls its
// handler on it at once (Attempt 0), saving the claim's round trip; the
// claim that follows acks the message without calling the handler again
// when that call succeeded.
//
// Each running Receive holds one connection of its own (outside the pool,
// application_name "<pool's> broker listener") for LISTEN, and uses the
// pool for short statements: claim, ack, nack, lease renewal. An idle
// Receive runs two small queries per PollInterval.
//
// When the database is unreachable, Publish returns a wrapped error and
// Receive logs, retries with backoff and resumes once it is back.
package pgbroker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/config"
)

// Config tunes the driver. Zero fields take the defaults given.
type Config struct {
	// PollInterval is the longest Receive waits before looking for
	// messages when no notification arrives. Notifications make delivery
	// immediate; polling covers lost ones. Default: 1s.
	PollInterval config.Duration `json:"poll_interval,omitempty"`
	// CleanupInterval is how often each Receive runs Cleanup (at most one
	// runs at a time across all processes). Default: 1m. Negative: never;
	// call Cleanup yourself.
	CleanupInterval config.Duration `json:"cleanup_interval,omitempty"`
	// DeadLetterRetention is how long Cleanup keeps dead letters.
	// Default: 336h (14 days).
	DeadLetterRetention config.Duration `json:"dead_letter_retention,omitempty"`
	// ConsumerID names this process in broker_deliveries.leased_by, for
	// operators. Default: "<hostname>:<pid>".
	ConsumerID string `json:"consumer_id,omitempty"`
}

func (c *Config) setDefaults() {
	if c.PollInterval <= 0 {
		c.PollInterval = config.Duration(time.Second)
	}
	if c.CleanupInterval == 0 {
		c.CleanupInterval = config.Duration(time.Minute)
	}
	if c.DeadLetterRetention <= 0 {
		c.DeadLetterRetention = config.Duration(14 * 24 * time.Hour)
	}
	if c.ConsumerID == "" {
		h, _ := os.Hostname()
		c.ConsumerID = h + ":" + strconv.Itoa(os.Getpid())
	}
}

// Broker is the PostgreSQL driver. It does not own the pool.
type Broker struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	receives sync.WaitGroup
}

// New returns a broker on pool, which must hold the metadata schema
// (pgdb.Migrate). log may be nil.
func New(pool *pgxpool.Pool, cfg Config, log *slog.Logger) *Broker {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Broker{pool: pool, cfg: cfg, log: log.With("broker", "postgres"), ctx: ctx, cancel: cancel}
}

// channel returns the NOTIFY channel of topic. Names are at most
// broker.MaxNameLen bytes, so the channel fits PostgreSQL's 63.
func channel(topic string) string { return "mb." + topic }

// Publish stores the message for every subscription of topic and wakes
// their receivers.
func (b *Broker) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	if b.isClosed() {
		return "", broker.ErrClosed
	}
	if err := broker.CheckTopic(topic); err != nil {
		return "", err
	}
	if data == nil {
		data = []byte{}
	}
	if attrs == nil {
		attrs = map[string]string{}
	}
	// One statement, so one implicit transaction: the NOTIFY is sent at
	// commit, when the deliveries are visible to the woken receivers. Its
	// payload carries the message (when small) for subscriptions with
	// EarlyDelivery.
	var id int64
	if err := b.pool.QueryRow(ctx, `WITH m AS (
			INSERT INTO broker_messages (topic, data, attributes) VALUES ($1, $2, $3) RETURNING id, published_at),
		d AS (
			INSERT INTO broker_deliveries (subscription, message_id)
			SELECT s.name, m.id FROM broker_subscriptions s, m WHERE s.topic = $1)
		SELECT id, pg_notify($4, json_build_object('id', id, 'published_at', published_at, 'data', $5::text,
			'attributes', CASE WHEN $5::text IS NULL THEN NULL ELSE $3::jsonb END)::text)
		FROM m`, topic, data, attrs, channel(topic), earlyData(data, attrs)).Scan(&id, nil); err != nil {
		return "", fmt.Errorf("publishing to %s: %w", topic, err)
	}
	return strconv.FormatInt(id, 10), nil
}

// maxPayload is the longest NOTIFY payload PostgreSQL takes, less room for
// the message's ID and publish time.
const maxPayload = 8000 - 200

// earlyData returns data in base64 for the NOTIFY payload, or nil when
// the message does not fit in it (more than broker.MaxEarlySize bytes of
// data, or large attributes).
func earlyData(data []byte, attrs map[string]string) *string {
	if len(data) > broker.MaxEarlySize {
		return nil
	}
	a, err := json.Marshal(attrs)
	// jsonb's text adds a space after each colon and comma; Go escapes
	// at least as much as PostgreSQL does.
	if err != nil || base64.StdEncoding.EncodedLen(len(data))+len(a)+2*len(attrs) > maxPayload {
		return nil
	}
	e := base64.StdEncoding.EncodeToString(data)
	return &e
}

// CreateSubscription creates sub or refreshes its settings and last-seen
// time. It fails with broker.ErrBadSubscription when the name exists on
// another topic.
func (b *Broker) CreateSubscription(ctx context.Context, sub broker.Subscription) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	if err := sub.Validate(); err != nil {
		return err
	}
	return b.createSubscription(ctx, sub.WithDefaults())
}

func (b *Broker) createSubscription(ctx context.Context, sub broker.Subscription) error {
	var expire *int64
	if sub.ExpireAfter > 0 {
		us := sub.ExpireAfter.Microseconds()
		expire = &us
	}
	var topic string
	err := b.pool.QueryRow(ctx, `
		INSERT INTO broker_subscriptions AS s (name, topic, expire_after, ack_deadline, max_attempts, min_backoff, max_backoff)
		VALUES ($1, $2, $3 * interval '1 microsecond', $4 * interval '1 microsecond', $5,
			$6 * interval '1 microsecond', $7 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET
			last_seen_at = now(), expire_after = EXCLUDED.expire_after, ack_deadline = EXCLUDED.ack_deadline,
			max_attempts = EXCLUDED.max_attempts, min_backoff = EXCLUDED.min_backoff, max_backoff = EXCLUDED.max_backoff
		WHERE s.topic = EXCLUDED.topic
		RETURNING topic`,
		sub.Name, sub.Topic, expire, sub.AckDeadline.Microseconds(), sub.MaxAttempts,
		sub.MinBackoff.Microseconds(), sub.MaxBackoff.Microseconds()).Scan(&topic)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s already exists on another topic than %s", broker.ErrBadSubscription, sub.Name, sub.Topic)
	}
	if err != nil {
		return fmt.Errorf("creating subscription %s: %w", sub.Name, err)
	}
	return nil
}

// DeadLetters lists up to limit (default 100) dead letters of
// subscription, in the order they died.
func (b *Broker) DeadLetters(ctx context.Context, subscription string, limit int) ([]broker.Message, error) {
	if b.isClosed() {
		return nil, broker.ErrClosed
	}
	if !broker.ValidName(subscription) {
		return nil, fmt.Errorf("%w: bad name %q", broker.ErrBadSubscription, subscription)
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := b.pool.Query(ctx, `
		SELECT message_id, topic, data, attributes, published_at, attempts, last_error
		FROM broker_dead_letters WHERE subscription = $1
		ORDER BY dead_at, message_id LIMIT $2`, subscription, limit)
	if err != nil {
		return nil, fmt.Errorf("listing dead letters of %s: %w", subscription, err)
	}
	defer rows.Close()
	var out []broker.Message
	for rows.Next() {
		var (
			m  broker.Message
			id int64
		)
		if err := rows.Scan(&id, &m.Topic, &m.Data, &m.Attributes, &m.PublishedAt, &m.Attempt, &m.LastError); err != nil {
			return nil, fmt.Errorf("listing dead letters of %s: %w", subscription, err)
		}
		m.ID = strconv.FormatInt(id, 10)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing dead letters of %s: %w", subscription, err)
	}
	return out, nil
}

// cleanupLock is the advisory lock key that keeps Cleanup to one process
// at a time ("mbroker" in ASCII).
const cleanupLock int64 = 0x6d62726f6b6572

// Cleanup deletes subscriptions idle longer than their ExpireAfter (with
// their pending deliveries), dead letters older than DeadLetterRetention,
// and messages no delivery references anymore. Receive runs it every
// CleanupInterval; when another process is cleaning up, it returns nil at
// once.
func (b *Broker) Cleanup(ctx context.Context) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("cleaning up broker tables: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", cleanupLock).Scan(&got); err != nil {
		return fmt.Errorf("cleaning up broker tables: %w", err)
	}
	if !got {
		return nil
	}
	defer func() {
		// A session lock left on a pooled connection would block every
		// later Cleanup: drop the connection when unlocking fails.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", cleanupLock); err != nil {
			conn.Conn().Close(uctx)
		}
	}()

	tag, err := conn.Exec(ctx, `DELETE FROM broker_subscriptions
		WHERE expire_after IS NOT NULL AND last_seen_at + expire_after < now()`)
	if err != nil {
		return fmt.Errorf("deleting expired subscriptions: %w", err)
	}
	if n := tag.RowsAffected(); n > 0 {
		b.log.Info("deleted idle subscriptions", "count", n)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM broker_dead_letters WHERE dead_at < now() - $1 * interval '1 microsecond'`,
		b.cfg.DeadLetterRetention.D().Microseconds()); err != nil {
		return fmt.Errorf("deleting old dead letters: %w", err)
	}
	// In batches, so that no statement holds many row locks for long.
	const batch = 5000
	for {
		tag, err := conn.Exec(ctx, `DELETE FROM broker_messages WHERE id IN (
			SELECT m.id FROM broker_messages m
			WHERE NOT EXISTS (SELECT 1 FROM broker_deliveries d WHERE d.message_id = m.id)
			LIMIT $1)`, batch)
		if err != nil {
			return fmt.Errorf("deleting delivered messages: %w", err)
		}
		if tag.RowsAffected() < batch {
			return nil
		}
	}
}

// Close stops every running Receive (waiting for their handlers) and makes
// further calls fail with broker.ErrClosed. It does not close the pool.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.receives.Wait()
	return nil
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// begin registers a running Receive, so that Close waits for it.
func (b *Broker) begin() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.receives.Add(1)
	return true
}

var _ broker.Broker = (*Broker)(nil)
