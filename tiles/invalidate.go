package tiles

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

// HandleInvalidation is a broker.Handler for the invalidations topic:
// each node subscribes under its own name (fan-out) and applies every
// cachetag.Invalidation with the message's publish time, so that all
// nodes move to the same generations. A malformed message is acked and
// logged: redelivering it would not help.
//
//	b.Receive(ctx, broker.Subscription{Topic: broker.TopicInvalidations,
//		Name: "tiles-" + node}, srv.HandleInvalidation)
func (s *Server) HandleInvalidation(ctx context.Context, m *broker.Message) error {
	var inv cachetag.Invalidation
	if err := json.Unmarshal(m.Data, &inv); err != nil {
		s.log.Warn("ignoring malformed invalidation", "id", m.ID, "err", err)
		return nil
	}
	if m.PublishedAt.IsZero() {
		return fmt.Errorf("invalidation %s has no publish time", m.ID)
	}
	s.Invalidate(ctx, inv, m.PublishedAt)
	return nil
}

var _ broker.Handler = (*Server)(nil).HandleInvalidation
