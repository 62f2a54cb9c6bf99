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
//
// The subscription is created before Start returns, so that nothing this
// node caches from then on can miss an invalidation published while the
// receiver is still starting. If the broker cannot be reached the
// receiver creates it as soon as it can (and logs the gap).
func (a *App) subscribe(edge *edgeapp.App) {
	sub := broker.Subscription{
		Topic:       broker.TopicInvalidations,
		Name:        edge.SubscriptionName("invalidations"),
		Concurrency: 4,
		ExpireAfter: 7 * 24 * time.Hour,
		// Purging is cheap and idempotent: purge from the publish
		// notification, without waiting for the claim's round trip.
		EarlyDelivery: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := edge.Messages().CreateSubscription(ctx, sub); err != nil {
		a.logger.Error("creating the invalidation subscription; retrying in the background", zap.Error(err))
	}
	edge.Go("cache invalidations", func(ctx context.Context) error {
		return edge.Messages().Receive(ctx, sub, a.handleInvalidation)
	})
}

// handleInvalidation purges what one invalidation message names (tags,
// URLs, prefixes). A
// message that does not decode is logged and dropped (acked): retrying it
// would never succeed.
func (a *App) handleInvalidation(_ context.Context, m *broker.Message) error {
	var inv cachetag.Invalidation
	if err := json.Unmarshal(m.Data, &inv); err != nil {
		a.logger.Error("dropping malformed invalidation", zap.String("id", m.ID), zap.Error(err))
		return nil
	}
	a.Apply(inv)
	if c := a.logger.Check(zap.DebugLevel, "invalidated"); c != nil {
		c.Write(zap.Strings("tags", inv.Tags), zap.Strings("urls", inv.URLs), zap.Strings("prefixes", inv.Prefixes),
			zap.Bool("soft", inv.Soft), zap.String("reason", inv.Reason),
			zap.Duration("delay", time.Since(m.PublishedAt)))
	}
	return nil
}
