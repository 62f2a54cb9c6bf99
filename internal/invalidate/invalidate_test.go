package invalidate_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
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
	if err := n.Publish(ctx, cachetag.Invalidation{}); !errors.Is(err, cachetag.ErrEmpty) {
		t.Errorf("Publish without tags, URLs or prefixes = %v, want ErrEmpty", err)
	}
	if err := n.Publish(ctx, cachetag.Invalidation{Tags: []string{"bad tag"}}); !errors.Is(err, cachetag.ErrInvalid) {
		t.Errorf("Publish with an invalid tag = %v, want ErrInvalid", err)
	}
	if err := n.Publish(ctx, cachetag.Invalidation{URLs: []string{"relative/url"}}); !errors.Is(err, cachetag.ErrInvalidURL) {
		t.Errorf("Publish with an invalid URL = %v, want ErrInvalidURL", err)
	}
	// URLs and prefixes travel as they are and bump nothing.
	before := gens()
	id, err := n.PublishID(ctx, cachetag.Invalidation{URLs: []string{"https://tiles.example/api/v3/maps/x?y=1"}, Prefixes: []string{"/api/v3/maps/c1/"}, Reason: "admin"})
	if err != nil || id == "" {
		t.Fatalf("PublishID(urls, prefixes) = %q, %v", id, err)
	}
	if inv := next(); len(inv.Tags) != 0 || len(inv.URLs) != 1 || inv.URLs[0] != "https://tiles.example/api/v3/maps/x?y=1" ||
		len(inv.Prefixes) != 1 || inv.Prefixes[0] != "/api/v3/maps/c1/" {
		t.Errorf("published %+v, want the URL and the prefix", inv)
	}
	if g := gens(); !maps.Equal(g, before) {
		t.Errorf("generations after a URL purge = %v, want unchanged %v", g, before)
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
