package pgbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/broker"
)

// ErrNoDeadLetter is returned when a dead letter to replay or drop does not
// exist.
var ErrNoDeadLetter = errors.New("pgbroker: no such dead letter")

// SubscriptionStats describes one subscription for operators.
type SubscriptionStats struct {
	Name        string    `json:"name"`
	Topic       string    `json:"topic"`
	CreatedAt   time.Time `json:"created_at"`
	LastSeenAt  time.Time `json:"last_seen_at"`
	Backlog     int64     `json:"backlog"`
	InFlight    int64     `json:"in_flight"`
	OldestAge   float64   `json:"oldest_unacked_seconds"`
	DeadLetters int64     `json:"dead_letters"`
}

// Subscriptions lists every subscription with its backlog (deliveries not
// acked), those leased now, the age of its oldest unacked message and its
// dead letters.
func (b *Broker) Subscriptions(ctx context.Context) ([]SubscriptionStats, error) {
	if b.isClosed() {
		return nil, broker.ErrClosed
	}
	rows, err := b.pool.Query(ctx, `
SELECT s.name, s.topic, s.created_at, s.last_seen_at,
       count(d.message_id),
       count(d.message_id) FILTER (WHERE d.leased_by IS NOT NULL AND d.visible_at > now()),
       COALESCE(EXTRACT(EPOCH FROM now() - min(m.published_at)), 0)::float8,
       (SELECT count(*) FROM broker_dead_letters l WHERE l.subscription = s.name)
FROM broker_subscriptions s
LEFT JOIN broker_deliveries d ON d.subscription = s.name
LEFT JOIN broker_messages m ON m.id = d.message_id
GROUP BY s.name, s.topic, s.created_at, s.last_seen_at
ORDER BY s.topic, s.name`)
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions: %w", err)
	}
	defer rows.Close()
	var out []SubscriptionStats
	for rows.Next() {
		var s SubscriptionStats
		if err := rows.Scan(&s.Name, &s.Topic, &s.CreatedAt, &s.LastSeenAt, &s.Backlog, &s.InFlight, &s.OldestAge, &s.DeadLetters); err != nil {
			return nil, fmt.Errorf("listing subscriptions: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ReplayDeadLetter gives a dead letter back to its subscription: a new
// message with the same topic, data and attributes is delivered to that
// subscription only (not to the topic's other subscriptions), and the dead
// letter is removed. It returns the new message ID.
func (b *Broker) ReplayDeadLetter(ctx context.Context, subscription, id string) (string, error) {
	if b.isClosed() {
		return "", broker.ErrClosed
	}
	mid, err := strconv.ParseInt(id, 10, 64)
	if err != nil || !broker.ValidName(subscription) {
		return "", ErrNoDeadLetter
	}
	var newID int64
	var topic string
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
WITH dead AS (
    DELETE FROM broker_dead_letters WHERE subscription = $1 AND message_id = $2
    RETURNING topic, data, attributes
)
INSERT INTO broker_messages (topic, data, attributes) SELECT topic, data, attributes FROM dead
RETURNING id, topic`, subscription, mid).Scan(&newID, &topic)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoDeadLetter
		}
		if err != nil {
			return err
		}
		// The subscription may have expired meanwhile: then there is no
		// one to deliver to, and the replay fails.
		tag, err := tx.Exec(ctx, `INSERT INTO broker_deliveries (subscription, message_id)
			SELECT name, $2 FROM broker_subscriptions WHERE name = $1`, subscription, newID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: subscription %s no longer exists", broker.ErrBadSubscription, subscription)
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, channel(topic))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("replaying dead letter %s of %s: %w", id, subscription, err)
	}
	return strconv.FormatInt(newID, 10), nil
}

// DropDeadLetter deletes a dead letter.
func (b *Broker) DropDeadLetter(ctx context.Context, subscription, id string) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	mid, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return ErrNoDeadLetter
	}
	tag, err := b.pool.Exec(ctx, `DELETE FROM broker_dead_letters WHERE subscription = $1 AND message_id = $2`, subscription, mid)
	if err != nil {
		return fmt.Errorf("dropping dead letter %s of %s: %w", id, subscription, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNoDeadLetter
	}
	return nil
}
