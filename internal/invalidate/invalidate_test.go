package invalidate_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/invalidate"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

// Tables and Connection bump the generations of the sources they name
// (and only those) and publish the invalidation.
func TestNotifier(t *testing.T) {
	db := pgtest.Meta(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO connections (id, name, config_enc, key_id) VALUES ('c1', 'Local', '\x00', 'k'), ('c2', 'other', '\x00', 'k');
		INSERT INTO sources (connection_id, name) VALUES ('c1', 'public.places'), ('c1', 'public.roads'), ('c2', 'public.places')`); err != nil {
		t.Fatal(err)
	}
	b := pgbroker.New(db.Pool, pgbroker.Config{}, slog.New(slog.DiscardHandler))
	defer b.Close()
	sub := broker.Subscription{Topic: broker.TopicInvalidations, Name: "test"}
	if err := b.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	msgs := make(chan cachetag.Invalidation, 10)
	go b.Receive(rctx, sub, func(_ context.Context, m *broker.Message) error {
		var inv cachetag.Invalidation
		json.Unmarshal(m.Data, &inv)
		msgs <- inv
		return nil
	})
	defer cancel()
	gens := func() map[string]int64 {
		rows, _ := db.Pool.Query(ctx, "SELECT connection_id || '/' || name, generation FROM sources")
		m := map[string]int64{}
		for rows.Next() {
			var k string
			var g int64
			rows.Scan(&k, &g)
			m[k] = g
		}
		return m
	}
	next := func() cachetag.Invalidation {
		select {
		case inv := <-msgs:
			return inv
		case <-time.After(10 * time.Second):
			t.Fatal("no invalidation published")
			return cachetag.Invalidation{}
		}
	}

	n := invalidate.New(db.Pool, b)
	if err := n.Tables(ctx, "local", "import 1", "Public.Places"); err != nil {
		t.Fatal(err)
	}
	if inv := next(); len(inv.Tags) != 1 || inv.Tags[0] != "src:local/public.places" || inv.Reason != "import 1" {
		t.Errorf("published %+v, want src:local/public.places", inv)
	}
	if g := gens(); g["c1/public.places"] != 2 || g["c1/public.roads"] != 1 || g["c2/public.places"] != 1 {
		t.Errorf("generations after Tables = %v, want only c1/public.places bumped", g)
	}
	if err := n.Connection(ctx, "local", "sql job"); err != nil {
		t.Fatal(err)
	}
	if inv := next(); len(inv.Tags) != 1 || inv.Tags[0] != "conn:local" {
		t.Errorf("published %+v, want conn:local", inv)
	}
	if g := gens(); g["c1/public.places"] != 3 || g["c1/public.roads"] != 2 || g["c2/public.places"] != 1 {
		t.Errorf("generations after Connection = %v, want every source of local bumped", g)
	}
	if err := n.Publish(ctx, cachetag.Invalidation{}); err == nil {
		t.Error("Publish without tags succeeded")
	}
	if err := n.Publish(ctx, cachetag.Invalidation{Tags: []string{"bad tag"}}); err == nil {
		t.Error("Publish with an invalid tag succeeded")
	}
	// Without a metadata pool it only publishes.
	if err := invalidate.New(nil, b).Tables(ctx, "local", "", "public.roads"); err != nil {
		t.Fatal(err)
	}
	next()
	if g := gens(); g["c1/public.roads"] != 2 {
		t.Errorf("a Notifier without pool bumped generations: %v", g)
	}
}
