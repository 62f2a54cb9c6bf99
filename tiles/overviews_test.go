package tiles

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/paulmach/orb/geojson"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/grant"
)

// The engine builds an overview of a large polygon table the first time
// it renders it, in the background, and renders the next tiles from it;
// the tiles stay the same features. With overviews off it never does.
func TestOverviewsServeTiles(t *testing.T) {
	for _, off := range []bool{false, true} {
		name := "on"
		if off {
			name = "off"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *Config) {
				c.Overviews = OverviewsConfig{Off: off, MinBytes: 1, Bands: 3}
			}))
			tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.buildings")
			tmpl := e.tileTemplate(e.instantiate("table", tok, "name", "public.buildings", "columns", "building"), tok)
			// Wilmington, Delaware: the first tile comes from the table and
			// starts the build.
			first := e.get(expand(tmpl, 14, 4753, 6218), bearer(tok))
			if first.status != 200 {
				t.Fatalf("first tile: %d %s", first.status, first.body)
			}
			want := len(decodeTile(t, first)[0].Features)
			if off {
				time.Sleep(time.Second)
				if n := e.metric("meridian_tiles_overview_builds_total"); n != 0 {
					t.Fatalf("%v overviews built with overviews off", n)
				}
				return
			}
			e.awaitOverviewBuilds(1)
			// The same area at lower zooms (simplified bands) and deeper.
			for _, c := range [][3]uint32{{1, 0, 0}, {13, 2376, 3109}, {19, 152100, 198990}} {
				r := e.get(expand(tmpl, c[0], c[1], c[2]), bearer(tok))
				if r.status != 200 && r.status != 204 {
					t.Fatalf("tile %v: %d %s", c, r.status, r.body)
				}
			}
			if n := e.metric("meridian_tiles_overview_tiles_total"); n < 3 {
				t.Errorf("%v tiles from the overview, want 3", n)
			}
			// The first tile again, rendered anew from the overview (other
			// columns make another source, so it is not cached): the same
			// buildings.
			tmpl2 := e.tileTemplate(e.instantiate("table", tok, "name", "public.buildings", "columns", "building,name"), tok)
			again := e.get(expand(tmpl2, 14, 4753, 6218), bearer(tok))
			if again.status != 200 {
				t.Fatalf("tile again: %d %s", again.status, again.body)
			}
			if got := len(decodeTile(t, again)[0].Features); got < want*95/100 || got > want*105/100 {
				t.Errorf("tile from the overview has %d features, from the table %d", got, want)
			}
		})
	}
}

// Points: the aggregation grid is precomputed, and the tiles rendered from
// it carry the same cells as those rendered from the table.
func TestOverviewsServePointTiles(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.Overviews = OverviewsConfig{MinBytes: 1} }))
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.places")
	// Instantiating starts the build (the pool's warm-up asks for the
	// source's statements), so a small table's overview may be ready by
	// the first tile: the reference comes from an engine on the same
	// database with overviews off.
	e.instantiate("table", tok, "name", "public.places", "columns", "name")
	ref := startEnv(t, e.db, e.is, withConfig(func(c *Config) { c.Overviews = OverviewsConfig{Off: true} }))
	first := ref.get(expand(ref.tileTemplate(ref.instantiate("table", tok, "name", "public.places", "columns", "name"), tok), 1, 1, 0), bearer(tok))
	if first.status != 200 {
		t.Fatalf("tile from the table: %d %s", first.status, first.body)
	}
	want := decodeTile(t, first)[0].Features
	e.awaitOverviewBuilds(1)
	before := e.metric("meridian_tiles_overview_tiles_total")
	tmpl2 := e.tileTemplate(e.instantiate("table", tok, "name", "public.places", "columns", "name,adm0name"), tok)
	again := e.get(expand(tmpl2, 1, 1, 0), bearer(tok))
	if again.status != 200 {
		t.Fatalf("tile again: %d %s", again.status, again.body)
	}
	if n := e.metric("meridian_tiles_overview_tiles_total") - before; n != 1 {
		t.Errorf("%v tiles from the overview, want 1", n)
	}
	got := decodeTile(t, again)[0].Features
	if len(got) != len(want) {
		t.Fatalf("%d cells from the overview, %d from the table", len(got), len(want))
	}
	cells := func(fs []*geojson.Feature) map[string]int {
		m := map[string]int{}
		for _, f := range fs {
			m[fmt.Sprint(f.Geometry, f.Properties["name"], f.Properties["_carto_point_density"])]++
		}
		return m
	}
	if g, w := cells(got), cells(want); !maps.Equal(g, w) {
		t.Errorf("cells from the overview %v, from the table %v", g, w)
	}
}

// An invalidation published right after a write (before PostgreSQL's
// statistics show it, so before the catalog fingerprint moves) must not
// let a tile render from the overview of the old state: the next tile
// shows the write.
func TestOverviewsHeldAfterInvalidation(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.Overviews = OverviewsConfig{MinBytes: 1, Bands: 3} }))
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.buildings")
	tmpl := e.tileTemplate(e.instantiate("table", tok, "name", "public.buildings", "columns", "building"), tok)
	if r := e.get(expand(tmpl, 14, 4753, 6218), bearer(tok)); r.status != 200 {
		t.Fatalf("first tile: %d %s", r.status, r.body)
	}
	e.awaitOverviewBuilds(1)
	ctx := context.Background()
	// One session writes twice in a row: the first write's statistics are
	// flushed at once, the second's wait (PostgreSQL flushes a session's
	// statistics at most once a second, else when idle 10 s later), so
	// the catalog fingerprint does not show the second write yet. The
	// second moves every building of the tile and its buffer (inside the
	// z12 parent) a degree east, out of the tile (the overview's pieces
	// would still be where they were).
	conn, err := e.db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "UPDATE places SET name = name WHERE name = 'Paris'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE buildings SET geom = ST_Translate(geom, 1, 0)
		WHERE geom && ST_Transform(ST_TileEnvelope(12, 1188, 1554), 4326)`); err != nil {
		t.Fatal(err)
	}
	e.srv.Invalidate(ctx, cachetag.Invalidation{Tags: []string{cachetag.Source("pg", "public.buildings")}}, time.Now())
	tmpl = e.tileTemplate(e.instantiate("table", tok, "name", "public.buildings", "columns", "building"), tok)
	r := e.get(expand(tmpl, 14, 4753, 6218), bearer(tok))
	if r.status == 200 {
		t.Fatalf("tile after the write and its invalidation has %d buildings, want none: rendered from the old state", len(decodeTile(t, r)[0].Features))
	}
	if r.status != 204 {
		t.Fatalf("tile after the write: %d %s", r.status, r.body)
	}
}

// An overview dropped under the engine (another node built a newer one,
// or an operator dropped the schema) costs no failed tile: the tile
// renders from the table, and the overview is looked for, and built,
// again.
func TestOverviewDroppedUnderTheEngine(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.Overviews = OverviewsConfig{MinBytes: 1, Bands: 2} }))
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.buildings")
	tile := func(columns string) resp {
		tmpl := e.tileTemplate(e.instantiate("table", tok, "name", "public.buildings", "columns", columns), tok)
		return e.get(expand(tmpl, 14, 4753, 6218), bearer(tok))
	}
	if r := tile("building"); r.status != 200 {
		t.Fatalf("first tile: %d %s", r.status, r.body)
	}
	e.awaitOverviewBuilds(1)
	if r := tile("building,name"); r.status != 200 || e.metric("meridian_tiles_overview_tiles_total") != 1 {
		t.Fatalf("tile from the overview: %d, %v overview tiles", r.status, e.metric("meridian_tiles_overview_tiles_total"))
	}
	if _, err := e.db.Pool.Exec(context.Background(), "DROP SCHEMA meridian_overviews CASCADE"); err != nil {
		t.Fatal(err)
	}
	r := tile("building,name,id")
	if r.status != 200 || len(decodeTile(t, r)[0].Features) == 0 {
		t.Fatalf("tile after the overview was dropped: %d %s", r.status, r.body)
	}
	if n := e.metric("meridian_tiles_overview_tiles_total"); n != 1 {
		t.Errorf("%v tiles from an overview, want still 1", n)
	}
	// The next tile asks again: the overview is built anew.
	tile("building,id")
	e.awaitOverviewBuilds(2)
}

// A node started on a database that holds overview copies warms its pool
// before it says it is ready: /readyz answers 503 while it warms, then
// 200, with every backend of the pool opened, PostGIS loaded and the
// copies planned. A database without copies is left cold.
func TestWarmUpBeforeReady(t *testing.T) {
	cfg := withConfig(func(c *Config) { c.Overviews = OverviewsConfig{MinBytes: 1, Bands: 2} })
	e := newEnv(t, cfg)
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.buildings")
	tmpl := e.tileTemplate(e.instantiate("table", tok, "name", "public.buildings", "columns", "building"), tok)

	// No copy yet: nothing to warm, ready as soon as listed.
	cold := startEnv(t, e.db, e.is, cfg, withWarm(func(context.Context) ([]string, error) { return []string{"pg"}, nil }))
	cold.awaitReady()
	if n := cold.metric("meridian_tiles_warm_backends_total"); n != 0 {
		t.Errorf("%v backends warmed on a database without overview copies", n)
	}

	if r := e.get(expand(tmpl, 14, 4753, 6218), bearer(tok)); r.status != 200 {
		t.Fatalf("first tile: %d %s", r.status, r.body)
	}
	e.awaitOverviewBuilds(1)

	listed := make(chan struct{})
	warm := startEnv(t, e.db, e.is, cfg, withWarm(func(ctx context.Context) ([]string, error) {
		select {
		case <-listed:
		case <-ctx.Done():
		}
		return []string{"pg", "missing"}, nil
	}))
	r := warm.get(warm.base + "/readyz")
	if r.status != 503 || !strings.Contains(string(r.body), "warming the data connections") {
		t.Fatalf("readyz while warming: %d %s, want 503 naming the warm-up", r.status, r.body)
	}
	close(listed)
	warm.awaitReady()
	if n, want := warm.metric("meridian_tiles_warm_backends_total"), float64(min(e.db.Pool.Config().MaxConns, 32)); n != want {
		t.Errorf("%v backends warmed, want the pool's %v", n, want)
	}
	// Tiles come as before.
	if r := warm.get(expand(warm.tileTemplate(warm.instantiate("table", tok, "name", "public.buildings", "columns", "building"), tok), 1, 0, 0), bearer(tok)); r.status != 200 && r.status != 204 {
		t.Fatalf("tile after warm-up: %d %s", r.status, r.body)
	}

	// A warm-up that cannot finish does not keep the node out for long.
	stuck := startEnv(t, e.db, e.is, cfg, withConfig(func(c *Config) { c.WarmTimeout = config.Duration(300 * time.Millisecond) }),
		withWarm(func(ctx context.Context) ([]string, error) { <-ctx.Done(); return nil, ctx.Err() }))
	stuck.awaitReady()
}

// awaitOverviewBuilds waits until the node has built n overviews.
func (e *env) awaitOverviewBuilds(n float64) {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for e.metric("meridian_tiles_overview_builds_total") < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("%v overviews built after 3 minutes, want %v", e.metric("meridian_tiles_overview_builds_total"), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// withWarm sets Deps.WarmConns.
func withWarm(f func(ctx context.Context) ([]string, error)) envOpt {
	return func(s *envSetup) { s.deps.WarmConns = f }
}

// awaitReady waits until /readyz answers 200.
func (e *env) awaitReady() {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := e.get(e.base + "/readyz")
		if r.status == 200 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("not ready after a minute: %d %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
