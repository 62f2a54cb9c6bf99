// Package invalidate announces that data changed: it bumps the generation
// of the affected sources in the metadata database and publishes a
// cachetag.Invalidation on broker.TopicInvalidations, which every edge node
// (cache purge by tag, URL or prefix) and tiles node (generation bump,
// catalog refresh; tags only) applies.
//
// Both steps are idempotent, so callers that are retried (workers) may
// announce the same change twice: a second purge costs a cache miss, never
// a stale answer.
package invalidate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

// Publisher is the part of broker.Broker this package uses.
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// Notifier bumps generations in the metadata database and publishes
// invalidations.
type Notifier struct {
	meta *pgxpool.Pool
	pub  Publisher
}

// New returns a Notifier. meta may be nil (no generation bump, e.g. for a
// tool without the metadata database); pub is required.
func New(meta *pgxpool.Pool, pub Publisher) *Notifier {
	return &Notifier{meta: meta, pub: pub}
}

// Tables announces that tables ("schema.table") of connection conn
// changed: tags src:<conn>/<table> for each.
func (n *Notifier) Tables(ctx context.Context, conn, reason string, tables ...string) error {
	tags := make([]string, 0, len(tables))
	for _, t := range tables {
		tags = append(tags, cachetag.Source(conn, t))
	}
	return n.Publish(ctx, cachetag.Invalidation{Tags: tags, Reason: reason})
}

// Connection announces that anything on connection conn may have changed:
// tag conn:<conn>.
func (n *Notifier) Connection(ctx context.Context, conn, reason string) error {
	return n.Publish(ctx, cachetag.Invalidation{Tags: []string{cachetag.Conn(conn)}, Reason: reason})
}

// Publish bumps the generation of the sources named by inv's src: and
// conn: tags, then publishes inv. The bump comes first, so that whoever
// reacts to the message reads the new generation. inv must name at least
// one tag, URL or prefix, all valid (see cachetag.Invalidation.Validate).
func (n *Notifier) Publish(ctx context.Context, inv cachetag.Invalidation) error {
	_, err := n.PublishID(ctx, inv)
	return err
}

// PublishID is Publish returning the ID of the published message.
func (n *Notifier) PublishID(ctx context.Context, inv cachetag.Invalidation) (string, error) {
	if err := inv.Validate(); err != nil {
		return "", fmt.Errorf("invalidate: %w", err)
	}
	if err := n.Bump(ctx, inv.Tags...); err != nil {
		return "", err
	}
	data, err := json.Marshal(inv)
	if err != nil {
		return "", fmt.Errorf("encoding invalidation: %w", err)
	}
	id, err := n.pub.Publish(ctx, broker.TopicInvalidations, data, nil)
	if err != nil {
		return "", fmt.Errorf("publishing invalidation of %s: %w", strings.Join(slices.Concat(inv.Tags, inv.URLs, inv.Prefixes), " "), err)
	}
	return id, nil
}

// Bump increments sources.generation for the sources the tags name:
// src:<conn>/<table> one source, conn:<conn> every source of the
// connection. Other tags and sources not in the table are ignored. It does
// nothing without a metadata pool.
func (n *Notifier) Bump(ctx context.Context, tags ...string) error {
	if n.meta == nil {
		return nil
	}
	for _, t := range tags {
		var err error
		if conn, table, ok := cachetag.SourceOf(t); ok {
			_, err = n.meta.Exec(ctx, `UPDATE sources s SET generation = s.generation + 1, updated_at = now()
				FROM connections c WHERE c.id = s.connection_id AND lower(c.name) = $1 AND lower(s.name) = $2`, conn, table)
		} else if conn, ok := cachetag.ConnTagOf(t); ok {
			_, err = n.meta.Exec(ctx, `UPDATE sources s SET generation = s.generation + 1, updated_at = now()
				FROM connections c WHERE c.id = s.connection_id AND lower(c.name) = $1`, conn)
		}
		if err != nil {
			return fmt.Errorf("bumping the generation of %s: %w", t, err)
		}
	}
	return nil
}
