package tiles

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// indexPlace is one NE populated place with its quadbin at level qbLevel.
type indexPlace struct {
	name string
	pop  float64
	cell uint64
}

const qbLevel = 10

// loadIndexTables builds, from NE populated places, public.places_qb
// (quadbin bigint at level 10, computed here in Go) and public.cells_h3
// (H3 cells at resolution 8 under two resolution-5 cells, as hex text and
// bigint), both loaded with COPY and indexed with a btree on the cells.
func loadIndexTables(t *testing.T, e *env) ([]indexPlace, map[uint64]float64) {
	t.Helper()
	ctx := context.Background()
	rows, err := e.db.Pool.Query(ctx, "SELECT name, pop_max::float8, ST_X(geom), ST_Y(geom) FROM places")
	if err != nil {
		t.Fatal(err)
	}
	var places []indexPlace
	for rows.Next() {
		var p indexPlace
		var lon, lat float64
		if err := rows.Scan(&p.name, &p.pop, &lon, &lat); err != nil {
			t.Fatal(err)
		}
		c := tile.At(lon, lat, qbLevel)
		p.cell = spatialindex.QuadbinFromTile(c.Z, c.X, c.Y)
		places = append(places, p)
	}
	if err := rows.Err(); err != nil || len(places) < 200 {
		t.Fatalf("places: %d rows, %v", len(places), err)
	}
	for _, sql := range []string{
		"CREATE TABLE places_qb (quadbin bigint NOT NULL, name text, pop float8)",
		"CREATE TABLE cells_h3 (h3 text NOT NULL, h3int bigint NOT NULL, val float8, kind text)",
	} {
		if _, err := e.db.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	qrows := make([][]any, len(places))
	for i, p := range places {
		qrows[i] = []any{int64(p.cell), p.name, p.pop}
	}
	if _, err := e.db.Pool.CopyFrom(ctx, pgx.Identifier{"places_qb"}, []string{"quadbin", "name", "pop"}, pgx.CopyFromRows(qrows)); err != nil {
		t.Fatal(err)
	}
	// H3: every resolution-8 descendant of two resolution-5 cells.
	h3vals := map[uint64]float64{}
	var hrows [][]any
	for _, parent := range []string{"85283083fffffff", "8528308bfffffff"} {
		p, err := spatialindex.H3.Parse(parent)
		if err != nil {
			t.Fatal(err)
		}
		for d := 0; d < 343; d++ {
			c := p&^(0xf<<52) | 8<<52
			c &^= 0x1ff << (3 * (15 - 8))
			c |= uint64(d/49)<<(3*(15-6)) | uint64(d/7%7)<<(3*(15-7)) | uint64(d%7)<<(3*(15-8))
			if spatialindex.H3.Check(c) != nil {
				t.Fatalf("bad generated cell %x", c)
			}
			v := float64(d%11) + 0.5
			h3vals[c] = v
			hrows = append(hrows, []any{spatialindex.Hex(c), int64(c), v, []string{"a", "b"}[d%2]})
		}
	}
	if _, err := e.db.Pool.CopyFrom(ctx, pgx.Identifier{"cells_h3"}, []string{"h3", "h3int", "val", "kind"}, pgx.CopyFromRows(hrows)); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"CREATE INDEX ON places_qb (quadbin)", "CREATE INDEX ON cells_h3 (h3)", "CREATE INDEX ON cells_h3 (h3int)",
		"ANALYZE places_qb", "ANALYZE cells_h3",
	} {
		if _, err := e.db.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	return places, h3vals
}

// cellAgg is a tile cell's expected aggregate.
type cellAgg struct {
	sum, n float64
}

func expandCell(tmpl, cell string) string { return strings.ReplaceAll(tmpl, "{i}", cell) }

// decodeTile reads a binary spatial-index tile into cell → column → value.
func decodeIndexTile(t *testing.T, r resp) map[uint64]map[string]float64 {
	t.Helper()
	if r.status != 200 || r.header.Get("Content-Type") != spatialindex.ContentType {
		t.Fatalf("tile: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	tl, err := spatialindex.DecodeBinary(r.body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]map[string]float64{}
	for i, c := range tl.Cells {
		m := map[string]float64{}
		for _, col := range tl.Cols {
			if col.Numeric {
				m[col.Name] = col.Num[i]
			}
		}
		out[c] = m
	}
	return out
}

func TestQuadbinTableSource(t *testing.T) {
	e := newEnv(t)
	places, _ := loadIndexTables(t, e)
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.places_qb")

	// Instantiation as @carto/api-client quadbinTableSource sends it.
	r := e.get("/api/v3/maps/pg/table?"+q("v", "3.4", "client", "deck-gl-carto", "name", "public.places_qb",
		"spatialDataColumn", "quadbin", "spatialDataType", "quadbin", "aggregationExp", "sum(pop) AS pop_sum, count(*) AS n",
		"aggregationResLevel", "4"), bearer(tok))
	if r.status != 200 {
		t.Fatalf("instantiate: %d %s", r.status, r.body)
	}
	inst := r.json(t)
	schema, _ := json.Marshal(inst["schema"])
	if string(schema) != `[{"name":"quadbin","type":"bigint"},{"name":"pop_sum","type":"number"},{"name":"n","type":"number"}]` {
		t.Errorf("schema %s", schema)
	}
	tjURL := inst["tilejson"].(map[string]any)["url"].([]any)[0].(string)
	r = e.get(tjURL, bearer(tok))
	if r.status != 200 {
		t.Fatalf("TileJSON: %d %s", r.status, r.body)
	}
	tj := r.json(t)
	tmpl := tj["tiles"].([]any)[0].(string)
	if !strings.Contains(tmpl, "/v3/maps/pg/table/{i}?") || !strings.Contains(tmpl, "formatTiles=binary") ||
		!strings.Contains(tmpl, "spatialIndex=quadbin") {
		t.Errorf("tiles template %s", tmpl)
	}
	if tj["scheme"] != "quadbin" || tj["maxresolution"] != float64(qbLevel-4) || tj["dataresolution"] != float64(qbLevel) ||
		tj["minresolution"] != 0.0 {
		t.Errorf("TileJSON %v", tj)
	}
	if r.header.Get("Surrogate-Key") == "" || !strings.Contains(r.header.Get("Cache-Control"), "max-age") {
		t.Errorf("TileJSON cache headers %v", r.header)
	}

	// The busiest level-2 tile, and its expected cells at level 6.
	count := map[uint64]int{}
	for _, p := range places {
		count[spatialindex.Quadbin.Parent(p.cell, 2)]++
	}
	var T uint64
	for c, n := range count {
		if n > count[T] {
			T = c
		}
	}
	want := map[uint64]cellAgg{}
	for _, p := range places {
		if spatialindex.Quadbin.Parent(p.cell, 2) == T {
			a := want[spatialindex.Quadbin.Parent(p.cell, 6)]
			a.sum += p.pop
			a.n++
			want[spatialindex.Quadbin.Parent(p.cell, 6)] = a
		}
	}
	r = e.get(expandCell(tmpl, spatialindex.Hex(T)), bearer(tok))
	got := decodeIndexTile(t, r)
	if len(got) != len(want) || len(want) < 3 {
		t.Fatalf("tile %x: %d cells, want %d", T, len(got), len(want))
	}
	for c, w := range want {
		g, ok := got[c]
		if !ok || math.Abs(g["pop_sum"]-w.sum) > 1e-6 || g["n"] != w.n {
			t.Errorf("cell %x: got %v, want %+v", c, g, w)
		}
		if spatialindex.Quadbin.Res(c) != 6 {
			t.Errorf("cell %x at level %d", c, spatialindex.Quadbin.Res(c))
		}
	}
	if r.header.Get("ETag") == "" || r.header.Get("Surrogate-Key") == "" {
		t.Errorf("tile headers %v", r.header)
	}
	// A second fetch is served from the cache: no render.
	renders := e.metric("meridian_tiles_render_seconds")
	if r2 := e.get(expandCell(tmpl, spatialindex.Hex(T)), bearer(tok)); string(r2.body) != string(r.body) {
		t.Error("second fetch differs")
	}
	if n := e.metric("meridian_tiles_render_seconds"); n != renders || renders == 0 {
		t.Errorf("renders %v -> %v: the second fetch was not a cache hit", renders, n)
	}

	// The same tile as JSON (deck's formatTiles=json): hex ids.
	ju := strings.Replace(expandCell(tmpl, spatialindex.Hex(T)), "formatTiles=binary", "formatTiles=json", 1)
	r = e.get(ju, bearer(tok))
	var cells []struct {
		ID         string             `json:"id"`
		Properties map[string]float64 `json:"properties"`
	}
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" || json.Unmarshal(r.body, &cells) != nil {
		t.Fatalf("json tile: %d %s", r.status, r.body)
	}
	if len(cells) != len(want) {
		t.Fatalf("json tile: %d cells, want %d", len(cells), len(want))
	}
	for _, c := range cells {
		id, err := spatialindex.Quadbin.Parse(c.ID)
		if err != nil || want[id].n != c.Properties["n"] {
			t.Errorf("json cell %v: %v", c, err)
		}
	}

	// A level-2 cell with no place: 204.
	var empty uint64
	for x := uint32(0); x < 4 && empty == 0; x++ {
		for y := uint32(0); y < 4; y++ {
			if c := spatialindex.QuadbinFromTile(2, x, y); count[c] == 0 {
				empty = c
				break
			}
		}
	}
	if r := e.get(expandCell(tmpl, spatialindex.Hex(empty)), bearer(tok)); r.status != 204 || len(r.body) != 0 {
		t.Errorf("empty tile %x: %d %s", empty, r.status, r.body)
	}

	// Errors: bad cells, formats and addresses, grants.
	other := e.is.token(t, []grant.API{grant.APIMaps}, "public.places")
	for _, tc := range []struct {
		name, u string
		tok     string
		status  int
	}{
		{"not hex", expandCell(tmpl, "zz"), tok, 400},
		{"h3 id on quadbin", expandCell(tmpl, "8928308280fffff"), tok, 400},
		{"bad fill bits", expandCell(tmpl, "4820000000000000"), tok, 400},
		{"mvt format", strings.Replace(expandCell(tmpl, spatialindex.Hex(T)), "formatTiles=binary", "formatTiles=mvt", 1), tok, 400},
		{"z/x/y on index source", strings.Replace(tmpl, "{i}", "2/1/1", 1), tok, 400},
		{"no grant", expandCell(tmpl, spatialindex.Hex(T)), other, 403},
		{"no grant tilejson", tjURL, other, 403},
	} {
		r := e.get(tc.u, bearer(tc.tok))
		if r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		if m := r.json(t); m["status"] != float64(tc.status) || m["error"] == "" || m["code"] == "" {
			t.Errorf("%s: error body %s", tc.name, r.body)
		}
	}
	// An {i} tile asked of a geometry source.
	geoTmpl := e.tileTemplate(e.instantiate("table", e.all, "name", "places"), e.all)
	geoI := strings.Replace(strings.Split(geoTmpl, "{z}")[0]+"480fffffffffffff?"+strings.SplitN(geoTmpl, "?", 2)[1], "formatTiles=mvt", "formatTiles=binary", 1)
	if r := e.get(geoI, bearer(e.all)); r.status != 400 {
		t.Errorf("{i} on a geometry source: %d %s", r.status, r.body)
	}

	// The tile statement selects by a key range a btree serves.
	var plan string
	tx, err := e.db.Pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	tx.Exec(context.Background(), "SET LOCAL enable_seqscan = off")
	sq := spatialindex.Query{Kind: spatialindex.Quadbin, From: `"public"."places_qb"`, Column: "quadbin",
		Aggs: []spatialindex.Agg{{SQL: "count(*)", Alias: "n"}}}
	rows, err := tx.Query(context.Background(), "EXPLAIN "+spatialindex.Build(sq), sq.Args(T, 6, qbLevel)...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		rows.Scan(&line)
		plan += line + "\n"
	}
	rows.Close()
	if !strings.Contains(plan, "Index") || !strings.Contains(plan, "places_qb_quadbin_idx") {
		t.Errorf("plan does not use the btree:\n%s", plan)
	}
}

func TestQuadbinQuerySource(t *testing.T) {
	e := newEnv(t)
	places, _ := loadIndexTables(t, e)
	sql := "SELECT quadbin, pop, name FROM places_qb WHERE pop > $1"
	params := []any{1000000}
	inst := func(tok string) resp {
		return e.get("/api/v3/maps/pg/query?"+q("v", "3.4", "client", "deck-gl-carto", "q", sql, "queryParameters", params,
			"spatialDataColumn", "quadbin", "spatialDataType", "quadbin", "aggregationExp", "sum(pop) AS pop_sum, max(name) AS top",
			"aggregationResLevel", "3", "filters", map[string]any{"pop": map[string]any{"between": map[string]any{"values": [][]float64{{0, 5e6}}}}}),
			bearer(tok))
	}
	if r := inst(e.is.token(t, []grant.API{grant.APIMaps}, "public.places_qb")); r.status != 403 {
		t.Errorf("query with a table grant: %d %s, want 403", r.status, r.body)
	}
	tok := e.is.token(t, []grant.API{grant.APIMaps}, sql)
	r := inst(tok)
	if r.status != 200 {
		t.Fatalf("instantiate: %d %s", r.status, r.body)
	}
	tjURL := r.json(t)["tilejson"].(map[string]any)["url"].([]any)[0].(string)
	tmpl := e.tileTemplate(tjURL, tok)
	// Level-0 tile: every place with 1M < pop <= 5M, grouped at level 3.
	want := map[uint64]float64{}
	for _, p := range places {
		if p.pop > 1e6 && p.pop <= 5e6 {
			want[spatialindex.Quadbin.Parent(p.cell, 3)] += p.pop
		}
	}
	root := spatialindex.QuadbinFromTile(0, 0, 0)
	got := decodeIndexTile(t, e.get(expandCell(tmpl, spatialindex.Hex(root)), bearer(tok)))
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("root tile: %d cells, want %d", len(got), len(want))
	}
	for c, w := range want {
		if math.Abs(got[c]["pop_sum"]-w) > 1e-6 {
			t.Errorf("cell %x: %v, want %v", c, got[c], w)
		}
	}
	// Text aggregations travel as properties: check them in JSON.
	r = e.get(strings.Replace(expandCell(tmpl, spatialindex.Hex(root)), "formatTiles=binary", "formatTiles=json", 1), bearer(tok))
	var cells []struct {
		ID         string         `json:"id"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(r.body, &cells); err != nil || len(cells) != len(want) {
		t.Fatalf("json: %v %s", err, r.body)
	}
	for _, c := range cells {
		if s, _ := c.Properties["top"].(string); s == "" {
			t.Errorf("cell %s: no top name: %v", c.ID, c.Properties)
		}
	}
	if r := e.get(expandCell(tmpl, spatialindex.Hex(root)), bearer(e.is.token(t, []grant.API{grant.APIMaps}, "public.places_qb"))); r.status != 403 {
		t.Errorf("tile with a table grant: %d, want 403", r.status)
	}
}

func TestH3TableSource(t *testing.T) {
	e := newEnv(t)
	_, vals := loadIndexTables(t, e)
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.cells_h3")
	for _, col := range []string{"h3", "h3int"} {
		t.Run(col, func(t *testing.T) {
			tj := e.instantiate("table", tok, "name", "cells_h3", "spatialDataColumn", col, "spatialDataType", "h3",
				"aggregationExp", "sum(val) AS total, count(*) AS n", "aggregationResLevel", "2",
				"filters", map[string]any{"kind": map[string]any{"in": map[string]any{"values": []string{"a"}}}})
			r := e.get(tj, bearer(tok))
			m := r.json(t)
			if m["scheme"] != "h3" || m["maxresolution"] != 6.0 || m["dataresolution"] != 8.0 {
				t.Fatalf("TileJSON %s", r.body)
			}
			tmpl := m["tiles"].([]any)[0].(string)
			if !strings.Contains(tmpl, "spatialIndex=h3") {
				t.Errorf("template %s", tmpl)
			}
			// Tile 85283083fffffff (res 5): children at res 7, from res-8
			// data with kind "a" (the even-numbered cells).
			T, _ := spatialindex.H3.Parse("85283083fffffff")
			want := map[uint64]cellAgg{}
			for c, v := range vals {
				if spatialindex.H3.Parent(c, 5) != T {
					continue
				}
				d := c >> (3 * (15 - 6)) & 7 * 49
				d += c>>(3*(15-7))&7*7 + c>>(3*(15-8))&7
				if d%2 != 0 {
					continue
				}
				a := want[spatialindex.H3.Parent(c, 7)]
				a.sum += v
				a.n++
				want[spatialindex.H3.Parent(c, 7)] = a
			}
			got := decodeIndexTile(t, e.get(expandCell(tmpl, "85283083fffffff"), bearer(tok)))
			if len(got) != 49 || len(want) != 49 {
				t.Fatalf("%d cells, want %d", len(got), len(want))
			}
			for c, w := range want {
				if got[c]["total"] != w.sum || got[c]["n"] != w.n {
					t.Errorf("cell %x: %v, want %+v", c, got[c], w)
				}
			}
			// A res-7 tile holds its res-8 data cells (res capped by the data).
			c7 := spatialindex.H3.Parent(func() uint64 {
				for c := range vals {
					return c
				}
				return 0
			}(), 7)
			got = decodeIndexTile(t, e.get(expandCell(tmpl, spatialindex.Hex(c7)), bearer(tok)))
			for c := range got {
				if spatialindex.H3.Res(c) != 8 || spatialindex.H3.Parent(c, 7) != c7 {
					t.Errorf("res-7 tile %x holds %x", c7, c)
				}
			}
			if len(got) == 0 || len(got) > 7 {
				t.Errorf("res-7 tile: %d cells", len(got))
			}
			// Outside the data, and a finer tile than the data: 204.
			for _, c := range []string{"8001fffffffffff", "8928308280fffff"} {
				if r := e.get(expandCell(tmpl, c), bearer(tok)); r.status != 204 {
					t.Errorf("tile %s: %d %s", c, r.status, r.body)
				}
			}
			if r := e.get(expandCell(tmpl, "484c1fffffffffff"), bearer(tok)); r.status != 400 {
				t.Errorf("quadbin on h3: %d", r.status)
			}
		})
	}
	// Bad sources: a text column as quadbin, an unknown aggregate column.
	for _, kv := range [][]any{
		{"name", "cells_h3", "spatialDataColumn", "h3", "spatialDataType", "quadbin"},
		{"name", "cells_h3", "spatialDataColumn", "h3", "spatialDataType", "h3", "aggregationExp", "sum(nope) AS x"},
		{"name", "cells_h3", "spatialDataColumn", "h3", "spatialDataType", "h3", "aggregationExp", "pg_sleep(1) AS x"},
		{"name", "cells_h3", "spatialDataColumn", "h3", "spatialDataType", "h3", "aggregationResLevel", "99"},
	} {
		r := e.get("/api/v3/maps/pg/table?"+q(kv...), bearer(tok))
		if r.status != 400 {
			t.Errorf("%v: %d %s, want 400", kv, r.status, r.body)
		}
	}
}

// BenchmarkQuadbinTileRender renders, uncached, a level-4 tile of a
// 1.2 M-row quadbin table (GeoNames postal codes at level 14, indexed)
// aggregated 6 levels down, through the HTTP API.
func BenchmarkQuadbinTileRender(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	rows, err := e.db.Pool.Query(ctx, "SELECT ST_X(geom), ST_Y(geom) FROM postal")
	if err != nil {
		b.Fatal(err)
	}
	var data [][]any
	busiest := map[uint64]int{}
	for rows.Next() {
		var lon, lat float64
		if err := rows.Scan(&lon, &lat); err != nil {
			b.Fatal(err)
		}
		c := tile.At(lon, lat, 14)
		q := spatialindex.QuadbinFromTile(c.Z, c.X, c.Y)
		busiest[spatialindex.Quadbin.Parent(q, 4)]++
		data = append(data, []any{int64(q), 1.0})
	}
	for _, sql := range []string{"CREATE TABLE postal_qb (quadbin bigint NOT NULL, v float8)"} {
		if _, err := e.db.Pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.db.Pool.CopyFrom(ctx, pgx.Identifier{"postal_qb"}, []string{"quadbin", "v"}, pgx.CopyFromRows(data)); err != nil {
		b.Fatal(err)
	}
	for _, sql := range []string{"CREATE INDEX ON postal_qb (quadbin)", "ANALYZE postal_qb"} {
		if _, err := e.db.Pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	var T uint64
	for c, n := range busiest {
		if n > busiest[T] {
			T = c
		}
	}
	tmpl := e.tileTemplate(e.instantiate("table", e.all, "name", "postal_qb", "spatialDataType", "quadbin",
		"aggregationExp", "sum(v) AS s", "aggregationResLevel", "6"), e.all)
	b.Logf("tile %x: %d of %d rows", T, busiest[T], len(data))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Every fetch renders: the in-process cache is emptied first.
		e.srv.engine.PurgeCache()
		r := e.get(expandCell(tmpl, spatialindex.Hex(T)), bearer(e.all))
		if r.status != 200 {
			b.Fatalf("tile: %d %s", r.status, r.body)
		}
		if i == 0 {
			b.ReportMetric(float64(len(r.body)), "bytes/tile")
		}
	}
}
