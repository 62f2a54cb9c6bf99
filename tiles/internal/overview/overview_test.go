package overview_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/paulmach/orb/encoding/mvt"
	"github.com/paulmach/orb/planar"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/geotest"
	tilemvt "github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/overview"
)

func tableOf(t *testing.T, ctx context.Context, pool *pgxpool.Pool, name string) overview.Table {
	t.Helper()
	cat, err := catalog.Load(ctx, pool, "geo")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := cat.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	g := tb.Geoms[0]
	return overview.Table{Conn: "geo", Schema: tb.Schema, Name: tb.Name, OID: tb.OID, Fingerprint: tb.Fingerprint,
		Geom: g.Name, SRID: g.SRID, Shape: g.Shape()}
}

func newManager(t *testing.T, pool *pgxpool.Pool, cfg overview.Config) *overview.Manager {
	m := overview.NewManager(cfg, func(context.Context, string) (*pgxpool.Pool, error) { return pool, nil }, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// await asks m for tb until its status settles.
func await(t *testing.T, m *overview.Manager, tb overview.Table) (tilemvt.Overview, overview.Status) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if ov, ok := m.Get(tb); ok {
			return ov, overview.Ready
		}
		if st := m.Status(tb); st == overview.Skipped || st == overview.Failed {
			return tilemvt.Overview{}, st
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("overview of %s not settled after 5 minutes", tb.Name)
	return tilemvt.Overview{}, overview.Unknown
}

// tileOf renders tile z/x/y of layer l with sql.
func tileOf(t *testing.T, pool *pgxpool.Pool, sql string, z, x, y int) mvt.Layers {
	t.Helper()
	var b []byte
	var kept, total int64
	if err := pool.QueryRow(context.Background(), sql, int32(z), int32(x), int32(y), int32(0)).Scan(&b, &kept, &total); err != nil {
		t.Fatalf("tile %d/%d/%d: %v", z, x, y, err)
	}
	layers, err := mvt.Unmarshal(b)
	if err != nil {
		t.Fatalf("tile %d/%d/%d: decoding: %v", z, x, y, err)
	}
	return layers
}

type summary struct {
	names map[string]bool
	area  float64 // polygons, tile units²
	len   float64 // lines, tile units
}

func summarize(layers mvt.Layers, prop string) summary {
	s := summary{names: map[string]bool{}}
	for _, l := range layers {
		for _, f := range l.Features {
			s.names[fmt.Sprint(f.Properties[prop])] = true
			s.area += planar.Area(f.Geometry)
			s.len += planar.Length(f.Geometry)
		}
	}
	return s
}

// The overview renders the same tiles as the table: the same features
// (compared by name) with the same area or length within a few percent,
// at every band, on polygons (NE admin-1) and lines (NE rivers), and on
// polygons kept as a pixel when under one (KeepSmall: the same provinces,
// many more of them at z0-2 than culled).
func TestOverviewRendersTheSameTiles(t *testing.T) {
	db := geotest.New(t)
	ctx := context.Background()
	m := newManager(t, db.Pool, overview.Config{MinBytes: 1, Bands: 6})
	type tileAt struct{ z, x, y int }
	// z0, z2 over Europe, z4 over the US, z6 Québec, z9 Paris, z12 Ottawa.
	tiles := []tileAt{{0, 0, 0}, {2, 2, 1}, {4, 4, 6}, {6, 19, 21}, {9, 259, 176}, {12, 1186, 1466}}
	culled := map[tileAt]int{} // names at each tile of admin-1 without KeepSmall
	for _, c := range []struct {
		table, prop string
		shape       catalog.Shape
		props       []tilemvt.Prop
		keepSmall   bool
	}{
		{geotest.Admin1, "name", catalog.ShapePolygon, []tilemvt.Prop{{Name: "name"}, {Name: "iso_3166_2"}}, false},
		{geotest.Admin1, "name", catalog.ShapePolygon, []tilemvt.Prop{{Name: "name"}, {Name: "iso_3166_2"}}, true},
		{geotest.Rivers, "name", catalog.ShapeLine, []tilemvt.Prop{{Name: "name"}, {Name: "scalerank", Kind: tilemvt.PropInt}}, false},
	} {
		t.Run(fmt.Sprintf("%s keepSmall=%v", c.table, c.keepSmall), func(t *testing.T) {
			tb := tableOf(t, ctx, db.Pool, c.table)
			ov, st := await(t, m, tb)
			if st != overview.Ready {
				t.Fatalf("status %v, want ready", st)
			}
			l := tilemvt.Layer{Schema: "public", Table: c.table, Geom: tb.Geom, SRID: tb.SRID, Shape: c.shape,
				Props: c.props, Extent: 512, Buffer: 8, MaxFeatures: 5000, KeepSmall: c.keepSmall}
			base, err := tilemvt.Build(l)
			if err != nil {
				t.Fatal(err)
			}
			for _, at := range tiles {
				band := ov.Band(at.z, l.Extent)
				fromOv, err := tilemvt.BuildOverview(l, ov, band)
				if err != nil {
					t.Fatal(err)
				}
				want := summarize(tileOf(t, db.Pool, base, at.z, at.x, at.y), c.prop)
				got := summarize(tileOf(t, db.Pool, fromOv, at.z, at.x, at.y), c.prop)
				if len(want.names) == 0 {
					t.Fatalf("tile %v: empty from the table; pick another tile", at)
				}
				if c.shape == catalog.ShapePolygon && !c.keepSmall {
					culled[at] = len(got.names)
				} else if c.keepSmall && at.z <= 2 && len(got.names) <= culled[at] {
					t.Errorf("tile %v: %d provinces kept as pixels from the overview, %d culled: want more", at, len(got.names), culled[at])
				} else if c.keepSmall {
					t.Logf("tile %v band %d: %d provinces from the overview keeping small ones, %d culling them", at, band, len(got.names), culled[at])
				}
				missing, extra := 0, 0
				for n := range want.names {
					if !got.names[n] {
						missing++
					}
				}
				for n := range got.names {
					if !want.names[n] {
						extra++
					}
				}
				// Features of about a pixel survive the snap to the tile grid
				// or not depending on the vertices left by simplification,
				// which differ (the overview simplifies in Web-Mercator,
				// the table's statement in degrees): a few percent at z0.
				if float64(missing+extra) > 0.06*float64(len(want.names))+1 {
					t.Errorf("tile %v band %d: %d names from the table, %d missing and %d extra from the overview", at, band, len(want.names), missing, extra)
				}
				if d := relDiff(got.area, want.area); c.shape == catalog.ShapePolygon && d > 0.03 {
					t.Errorf("tile %v band %d: area %.0f from the overview, %.0f from the table (%.1f%% apart)", at, band, got.area, want.area, 100*d)
				}
				if d := relDiff(got.len, want.len); c.shape == catalog.ShapeLine && d > 0.05 {
					t.Errorf("tile %v band %d: length %.0f from the overview, %.0f from the table (%.1f%% apart)", at, band, got.len, want.len, 100*d)
				}
			}
		})
	}
}

func relDiff(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

// A copy serves one state of its table: after a change the old copy is
// not used, a new one is built for the new state and the old one dropped.
// Tables without a primary key, or too small, get none.
func TestOverviewFollowsTheTable(t *testing.T) {
	db := geotest.New(t)
	ctx := context.Background()
	m := newManager(t, db.Pool, overview.Config{MinBytes: 1, Bands: 2})
	before := tableOf(t, ctx, db.Pool, geotest.Buildings)
	ov1, st := await(t, m, before)
	if st != overview.Ready {
		t.Fatalf("status %v, want ready", st)
	}
	if _, err := db.Pool.Exec(ctx, "UPDATE buildings SET geom = ST_Translate(geom, 0.001, 0) WHERE ctid = (SELECT min(ctid) FROM buildings)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		t.Fatal(err)
	}
	var after overview.Table
	for deadline := time.Now().Add(30 * time.Second); ; {
		after = tableOf(t, ctx, db.Pool, geotest.Buildings)
		if after.Fingerprint != before.Fingerprint {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the catalog fingerprint did not change after an UPDATE")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if overview.Name(after) == overview.Name(before) {
		t.Fatal("the copy's name does not follow the table's state")
	}
	ov2, st := await(t, m, after)
	if st != overview.Ready {
		t.Fatalf("status %v after the change, want ready", st)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = $1", ov1.BandTable(ov1.Bands)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the copy of the old state (%s) is still there", ov1.Table)
	}
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+overview.Schema+"."+ov2.BandTable(ov2.Bands)).Scan(&n); err != nil || n == 0 {
		t.Errorf("the new copy has %d pieces (%v)", n, err)
	}

	// A table dropped (as an import replaces one) leaves no copy behind
	// once another copy is built.
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE gone AS SELECT * FROM buildings; ALTER TABLE gone ADD PRIMARY KEY (id); ANALYZE gone"); err != nil {
		t.Fatal(err)
	}
	gone := tableOf(t, ctx, db.Pool, "gone")
	ovGone, st := await(t, m, gone)
	if st != overview.Ready {
		t.Fatalf("status %v for the table to drop, want ready", st)
	}
	if _, err := db.Pool.Exec(ctx, "DROP TABLE gone"); err != nil {
		t.Fatal(err)
	}
	if _, st := await(t, m, tableOf(t, ctx, db.Pool, geotest.Admin1)); st != overview.Ready {
		t.Fatalf("status %v for admin1, want ready", st)
	}
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = $1", ovGone.BandTable(0)).Scan(&n); err != nil || n != 0 {
		t.Errorf("the copy of a dropped table is still there (%d, %v)", n, err)
	}

	// No primary key: rendered from the table.
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE nokey AS SELECT name, geom FROM admin1; ANALYZE nokey"); err != nil {
		t.Fatal(err)
	}
	if _, st := await(t, m, tableOf(t, ctx, db.Pool, "nokey")); st != overview.Skipped {
		t.Errorf("table without a key: status %v, want skipped", st)
	}
	// Too small.
	small := newManager(t, db.Pool, overview.Config{MinBytes: 1 << 40})
	if _, st := await(t, small, tableOf(t, ctx, db.Pool, geotest.Rivers)); st != overview.Skipped {
		t.Errorf("small table: status %v, want skipped", st)
	}
	// A role that may read the table but not create the schema: skipped.
	if _, err := db.Pool.Exec(ctx, `CREATE ROLE ov_reader LOGIN PASSWORD 'ov-reader';
		GRANT SELECT ON rivers TO ov_reader`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Pool.Exec(context.Background(), "DROP OWNED BY ov_reader; DROP ROLE IF EXISTS ov_reader")
	})
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User, cfg.ConnConfig.Password = "ov_reader", "ov-reader"
	reader, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, st := await(t, newManager(t, reader, overview.Config{MinBytes: 1}), tableOf(t, ctx, db.Pool, geotest.Rivers)); st != overview.Skipped {
		t.Errorf("no right to create the schema: status %v, want skipped", st)
	}
	// A read-only connection: skipped as well.
	roCfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	roCfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	ro, err := pgxpool.NewWithConfig(ctx, roCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, st := await(t, newManager(t, ro, overview.Config{MinBytes: 1}), tableOf(t, ctx, db.Pool, geotest.Places)); st != overview.Skipped {
		t.Errorf("read-only connection: status %v, want skipped", st)
	}
	// Views are not eligible.
	if _, err := db.Pool.Exec(ctx, "CREATE VIEW admin1_view AS SELECT * FROM admin1"); err != nil {
		t.Fatal(err)
	}
	if overview.Eligible(tableOf(t, ctx, db.Pool, "admin1_view")) {
		t.Error("a view is eligible")
	}
}

// A point overview answers what the table answers: the same cells, with
// the same counts, positions and representatives, at every level it has.
func TestPointOverviewRendersTheSameTiles(t *testing.T) {
	db := geotest.New(t)
	ctx := context.Background()
	m := newManager(t, db.Pool, overview.Config{MinBytes: 1, PointLevels: 14})
	tb := tableOf(t, ctx, db.Pool, geotest.Postal)
	ov, st := await(t, m, tb)
	if st != overview.Ready || !ov.Points {
		t.Fatalf("status %v (%+v), want a ready point overview", st, ov)
	}
	l := tilemvt.Layer{Schema: "public", Table: geotest.Postal, Geom: tb.Geom, SRID: tb.SRID, Shape: catalog.ShapePoint,
		Props: []tilemvt.Prop{{Name: "zipcode"}, {Name: "place"}}, Extent: 512, Buffer: 8, AggLevel: 8, Key: "id"}
	base, err := tilemvt.Build(l)
	if err != nil {
		t.Fatal(err)
	}
	fromOv, err := tilemvt.BuildPointOverview(l, ov)
	if err != nil {
		t.Fatal(err)
	}
	// z0, Europe at z3, Paris at z6 (the finest level: 6+8 = 14).
	for _, at := range [][3]int{{0, 0, 0}, {3, 4, 2}, {6, 32, 22}} {
		for _, lod := range []int32{0, 2} {
			cells := func(sql string) map[string]bool {
				var b []byte
				var kept, total int64
				if err := db.Pool.QueryRow(ctx, sql, int32(at[0]), int32(at[1]), int32(at[2]), lod).Scan(&b, &kept, &total); err != nil {
					t.Fatalf("tile %v lod %d: %v", at, lod, err)
				}
				layers, err := mvt.Unmarshal(b)
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]bool{}
				for _, f := range layers[0].Features {
					out[fmt.Sprint(f.Geometry, f.Properties["zipcode"], f.Properties["place"], f.Properties[tilemvt.DensityProp])] = true
				}
				return out
			}
			want, got := cells(base), cells(fromOv)
			if len(want) == 0 {
				t.Fatalf("tile %v: empty", at)
			}
			diff := 0
			for c := range want {
				if !got[c] {
					diff++
				}
			}
			// Sums of coordinates in another order may round a centroid
			// to the next tile unit, rarely.
			if diff > len(want)/1000+1 || len(got) != len(want) {
				t.Errorf("tile %v lod %d: %d cells from the table, %d from the overview, %d differ", at, lod, len(want), len(got), diff)
			}
		}
	}
}

// WarmStatements plans a read of every copy and of its table, and nothing
// when the database holds no copy.
func TestWarmStatements(t *testing.T) {
	db := geotest.New(t)
	ctx := context.Background()
	if stmts, err := overview.WarmStatements(ctx, db.Pool); err != nil || len(stmts) != 0 {
		t.Fatalf("before any copy: %q, %v; want none", stmts, err)
	}
	m := newManager(t, db.Pool, overview.Config{MinBytes: 1, Bands: 2})
	tb := tableOf(t, ctx, db.Pool, geotest.Rivers)
	ov, st := await(t, m, tb)
	if st != overview.Ready {
		t.Fatalf("status %v, want ready", st)
	}
	stmts, err := overview.WarmStatements(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"public." + geotest.Rivers: false}
	for band := 0; band <= ov.Bands; band++ {
		want[overview.Schema+"."+ov.BandTable(band)] = false
	}
	for _, sql := range stmts {
		for name := range want {
			if strings.Contains(sql, " "+name+" ") || strings.HasSuffix(sql, " "+name) {
				want[name] = true
			}
		}
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("no statement reads %s in %q", name, stmts)
		}
	}
	if len(stmts) != len(want) {
		t.Errorf("%d statements, want %d: %q", len(stmts), len(want), stmts)
	}
}
