package tagcache

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-gis/meridian/caddy-modules/edgeapp"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

// subscribe starts this node's invalidation subscription through the
// meridian app: one subscription per edge node ("edge-<node>-
// invalidations"), durable, so a node that was paused, partitioned or
// reloading receives what was published meanwhile and purges it then. A
// restarted process starts with an empty store, so it has nothing stale.
func (a *App) subscribe(edge *edgeapp.App) {
	sub := broker.Subscription{
		Topic:       broker.TopicInvalidations,
		Name:        edge.SubscriptionName("invalidations"),
		Concurrency: 4,
		ExpireAfter: 7 * 24 * time.Hour,
	}
	edge.Go("cache invalidations", func(ctx context.Context) error {
		return edge.Messages().Receive(ctx, sub, a.handleInvalidation)
	})
}

// handleInvalidation purges the tags of one invalidation message. A
// message that does not decode is logged and dropped (acked): retrying it
// would never succeed.
func (a *App) handleInvalidation(_ context.Context, m *broker.Message) error {
	var inv cachetag.Invalidation
	if err := json.Unmarshal(m.Data, &inv); err != nil {
		a.logger.Error("dropping malformed invalidation", zap.String("id", m.ID), zap.Error(err))
		return nil
	}
	a.Purge(inv.Tags, inv.Soft)
	if c := a.logger.Check(zap.DebugLevel, "invalidated"); c != nil {
		c.Write(zap.Strings("tags", inv.Tags), zap.Bool("soft", inv.Soft), zap.String("reason", inv.Reason),
			zap.Duration("delay", time.Since(m.PublishedAt)))
	}
	return nil
}
