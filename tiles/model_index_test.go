//go:build cgo

package tiles

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/uber/h3-go/v4"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// Resolutions of the widget spatial-index fixture: coarse, so that many
// places sit in cells the spatial filter's edges cross.
const (
	idxQuadbinLevel = 8
	idxH3Res        = 4
)

// idxFilter is the spatial filter of the spatial-index widget tests: a
// polygon over France, Benelux and western Germany with a hole around
// Paris, and a triangle over northern Italy.
const idxFilter = `{"type":"MultiPolygon","coordinates":[
 [[[-4.8,43.2],[3.1,42.3],[8.3,46.9],[11.7,52.4],[6.1,54.1],[-1.3,49.9],[-4.8,43.2]],
  [[1.3,48.3],[3.4,48.2],[3.6,49.4],[1.6,49.2],[1.3,48.3]]],
 [[[7.1,44.1],[13.9,45.2],[10.4,47.1],[7.1,44.1]]]]}`

// loadWidgetIndexTables builds, from NE populated places (widgetEnv's,
// with founded), public.idx_places: each place with its quadbin at level
// 8 (bigint) and its H3 cell at resolution 4 (hex text h3 and bigint
// h3int), computed in Go. It also builds, independently of the server's
// cover, idx_qb_cells and idx_h3_cells: each cell's polygon (quadbin: the
// tile envelope, by ST_TileEnvelope of the place's tile; H3: h3-go's
// boundary) and centre, for the expected answers.
func loadWidgetIndexTables(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	rows, err := e.db.Pool.Query(ctx, "SELECT id, ST_X(geom), ST_Y(geom) FROM places")
	if err != nil {
		t.Fatal(err)
	}
	var ids, qbs, q18s, h3s []int64
	var hexes []string
	qbTiles := map[int64]tile.Coord{}
	for rows.Next() {
		var id int64
		var lon, lat float64
		if err := rows.Scan(&id, &lon, &lat); err != nil {
			t.Fatal(err)
		}
		c := tile.At(lon, lat, idxQuadbinLevel)
		q := int64(spatialindex.QuadbinFromTile(c.Z, c.X, c.Y))
		qbTiles[q] = c
		c18 := tile.At(lon, lat, 18)
		q18s = append(q18s, int64(spatialindex.QuadbinFromTile(c18.Z, c18.X, c18.Y)))
		h := h3.LatLngToCell(h3.NewLatLng(lat, lon), idxH3Res)
		ids, qbs, h3s, hexes = append(ids, id), append(qbs, q), append(h3s, int64(h)), append(hexes, h.String())
	}
	if err := rows.Err(); err != nil || len(ids) < 200 {
		t.Fatalf("places: %d rows, %v", len(ids), err)
	}
	var qcells, qz, qx, qy []int64
	for q, c := range qbTiles {
		qcells, qz, qx, qy = append(qcells, q), append(qz, int64(c.Z)), append(qx, int64(c.X)), append(qy, int64(c.Y))
	}
	var hcells []int64
	var hwkt, hcentre []string
	seen := map[int64]bool{}
	for _, c := range h3s {
		if seen[c] {
			continue
		}
		seen[c] = true
		cell := h3.Cell(c)
		var pts []string
		minLon, maxLon := 180.0, -180.0
		for _, ll := range cell.Boundary() {
			pts = append(pts, fmt.Sprintf("%.15g %.15g", ll.Lng, ll.Lat))
			minLon, maxLon = math.Min(minLon, ll.Lng), math.Max(maxLon, ll.Lng)
		}
		if maxLon-minLon > 180 {
			continue // across the antimeridian: far from the filter, left out
		}
		ll := cell.LatLng()
		hcells = append(hcells, c)
		hwkt = append(hwkt, "POLYGON(("+strings.Join(append(pts, pts[0]), ",")+"))")
		hcentre = append(hcentre, fmt.Sprintf("POINT(%.15g %.15g)", ll.Lng, ll.Lat))
	}
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`CREATE TABLE idx_places AS SELECT p.id, p.name, p.adm0name, p.pop_max::float8 AS pop_max, p.pop_min::float8 AS pop_min,
			p.founded, c.quadbin, c.h3, c.h3int, c.quadbin18
			FROM places p JOIN unnest($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::int8[]) AS c(id, quadbin, h3, h3int, quadbin18)
			ON c.id = p.id`, []any{ids, qbs, hexes, h3s, q18s}},
		{`CREATE TABLE idx_qb_cells AS SELECT cell, ST_Transform(ST_TileEnvelope(z::int, x::int, y::int), 4326) AS env,
			ST_Transform(ST_Centroid(ST_TileEnvelope(z::int, x::int, y::int)), 4326) AS centre
			FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[]) AS c(cell, z, x, y)`, []any{qcells, qz, qx, qy}},
		{`CREATE TABLE idx_h3_cells AS SELECT cell, ST_GeomFromText(wkt, 4326) AS env, ST_GeomFromText(centre, 4326) AS centre
			FROM unnest($1::int8[], $2::text[], $3::text[]) AS c(cell, wkt, centre)`, []any{hcells, hwkt, hcentre}},
		{"CREATE INDEX ON idx_places (quadbin)", nil}, {"CREATE INDEX ON idx_places (h3int)", nil},
		{"ANALYZE idx_places", nil}, {"ANALYZE idx_qb_cells", nil}, {"ANALYZE idx_h3_cells", nil},
	} {
		if _, err := e.db.Pool.Exec(ctx, st.sql, st.args...); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}
}

// idxSource is one spatial-index widget source of the tests, and how to
// say, in SQL over idx_places, which rows a spatial filter keeps.
type idxSource struct {
	name     string
	typ, src string
	qp       any
	sdt, sdc string
	// where restricts idx_places to the source's rows.
	where string
	// cellSQL is the row's cell as bigint, cells the table of cell
	// polygons.
	cellSQL, cells string
}

func idxSources() []idxSource {
	return []idxSource{
		{"quadbin table", "table", "idx_places", nil, "quadbin", "quadbin", "TRUE", "quadbin", "idx_qb_cells"},
		{"quadbin query", "query", "SELECT * FROM idx_places WHERE pop_max > $1", []any{20000}, "quadbin", "quadbin",
			"pop_max > 20000", "quadbin", "idx_qb_cells"},
		{"h3 text table", "table", "idx_places", nil, "h3", "h3", "TRUE", "h3int", "idx_h3_cells"},
		{"h3 bigint table", "table", "idx_places", nil, "h3", "h3int", "TRUE", "h3int", "idx_h3_cells"},
		{"h3 query", "query", "SELECT id, name, adm0name, pop_max, pop_min, founded, h3 FROM idx_places WHERE pop_max > $1",
			[]any{20000}, "h3", "h3", "pop_max > 20000", "h3int", "idx_h3_cells"},
	}
}

// spatialWhere is the SQL condition of idxFilter in mode over s's cells,
// computed from the cell polygons.
func (s idxSource) spatialWhere(mode string) string {
	poly := "ST_SetSRID(ST_GeomFromGeoJSON('" + idxFilter + "'), 4326)"
	pred := map[string]string{
		"intersects": "ST_Intersects(env, " + poly + ")",
		"contains":   "ST_CoveredBy(env, " + poly + ")",
		"center":     "ST_Intersects(centre, " + poly + ")",
	}[mode]
	return s.cellSQL + " IN (SELECT cell FROM " + s.cells + " WHERE " + pred + ")"
}

// idxScope is one restriction of the rows: none, filters, a spatial
// filter, or both.
type idxScope struct {
	name    string
	filters any
	spatial bool
	where   string // the filters' SQL
}

var idxCountries = []any{"France", "Germany", "Italy", "Belgium", "Netherlands", "Switzerland", "Spain"}

func idxScopes() []idxScope {
	in := map[string]any{"adm0name": map[string]any{"in": map[string]any{"values": idxCountries, "owner": "w"}}}
	inSQL := "adm0name IN ('France', 'Germany', 'Italy', 'Belgium', 'Netherlands', 'Switzerland', 'Spain')"
	return []idxScope{
		{"all", nil, false, "TRUE"},
		{"filter", in, false, inSQL},
		{"spatial filter", nil, true, "TRUE"},
		{"filter and spatial filter", in, true, inSQL},
	}
}

// TestModelSpatialIndex: widgets on quadbin and H3 sources (one server
// and fixture for the three parts).
func TestModelSpatialIndex(t *testing.T) {
	e := widgetEnv(t)
	loadWidgetIndexTables(t, e)
	t.Run("widgets", func(t *testing.T) { testIndexWidgets(t, e) })
	t.Run("modes", func(t *testing.T) { testIndexModes(t, e) })
	t.Run("errors", func(t *testing.T) { testIndexErrors(t, e) })
	t.Run("picked cells", func(t *testing.T) { testIndexPicked(t, e) })
	t.Run("stats", func(t *testing.T) { testIndexStats(t, e) })
	t.Run("pick", func(t *testing.T) { testIndexPick(t, e) }) // pick_index_test.go
}

// testIndexStats: the Stats API on an h3 table source (as the client
// calls it for the tilestats of a spatial-index layer) answers as on
// geometry sources.
func testIndexStats(t *testing.T, e *env) {
	for _, sdc := range []string{"h3", "h3int"} {
		r := e.get("/api/v3/stats/pg/public.idx_places/pop_max?"+q("spatialDataType", "h3", "spatialDataColumn", sdc), bearer(e.all))
		if r.status != 200 {
			t.Fatalf("%s: %d %s", sdc, r.status, r.body)
		}
		body := r.json(t)
		for k, sql := range map[string]string{"min": "min(pop_max)", "max": "max(pop_max)", "sum": "sum(pop_max)", "count": "count(pop_max)"} {
			if w := num(e.scalar("SELECT " + sql + "::float8 FROM idx_places")); !near(num(body[k]), w) {
				t.Errorf("%s: %s = %v, want %v", sdc, k, body[k], w)
			}
		}
	}
}

// testIndexPicked: a spatial filter of picked cells ({indexes, type})
// keeps the rows in those cells or, for coarser cells, in their
// descendants (h3-go's Parent, the tiles' quadtree), as hex, h3int and
// decimal quadbin ids.
func testIndexPicked(t *testing.T, e *env) {
	ctx := context.Background()
	rows, err := e.db.Pool.Query(ctx, "SELECT id, quadbin, h3int FROM idx_places WHERE id % 4 = 0 ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var h3Picked, qbPicked []string
	var h3IDs, qbIDs []int64
	h3Parents, qbParents := map[h3.Cell]bool{}, map[uint64]bool{}
	type row struct{ id, qb, h3 int64 }
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.qb, &r.h3); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil || len(all) < 10 {
		t.Fatalf("%d rows, %v", len(all), err)
	}
	// Every third row's cell itself, every fifth one's parents (h3 res 2,
	// quadbin level 5).
	for i, r := range all {
		switch {
		case i%5 == 0:
			p := h3.Cell(r.h3).Parent(2)
			h3Parents[p] = true
			q := spatialindex.Quadbin.Parent(uint64(r.qb), 5)
			qbParents[q] = true
			h3Picked, qbPicked = append(h3Picked, p.String()), append(qbPicked, fmt.Sprint(q))
		case i%3 == 0:
			h3Picked, qbPicked = append(h3Picked, h3.Cell(r.h3).String()), append(qbPicked, spatialindex.Hex(uint64(r.qb)))
		}
	}
	rows, err = e.db.Pool.Query(ctx, "SELECT id, quadbin, h3int FROM idx_places")
	if err != nil {
		t.Fatal(err)
	}
	picked := func(list []string, s string) bool { return slices.Contains(list, s) }
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.qb, &r.h3); err != nil {
			t.Fatal(err)
		}
		if h3Parents[h3.Cell(r.h3).Parent(2)] || picked(h3Picked, h3.Cell(r.h3).String()) {
			h3IDs = append(h3IDs, r.id)
		}
		if qbParents[spatialindex.Quadbin.Parent(uint64(r.qb), 5)] || picked(qbPicked, spatialindex.Hex(uint64(r.qb))) {
			qbIDs = append(qbIDs, r.id)
		}
	}
	for _, s := range idxSources() {
		t.Run(s.name, func(t *testing.T) {
			ids, typ, list := h3IDs, "h3", h3Picked
			if s.sdt == "quadbin" {
				ids, typ, list = qbIDs, "quadbin", qbPicked
			} else if s.sdc == "h3int" {
				typ, list = "h3int", nil
				for _, h := range h3Picked {
					c, _ := spatialindex.H3.Parse(h)
					list = append(list, fmt.Sprint(c))
				}
			}
			r := wreq{typ: s.typ, source: s.src, queryParams: s.qp, sdt: s.sdt, sdc: s.sdc,
				params: map[string]any{"column": "pop_max", "operation": "sum"}}
			kv := e.widgetParams(r)
			kv = append(kv, "spatialFilters", map[string]any{s.sdc: map[string]any{"indexes": list, "type": typ}})
			got := num(value1(t, e.get("/api/v3/sql/pg/model/formula?"+q(kv...), bearer(e.all)), "value"))
			want := num(e.scalar("SELECT sum(pop_max)::float8 FROM idx_places WHERE "+s.where+" AND id = ANY($1)", ids))
			if !near(got, want) || want == 0 {
				t.Errorf("picked cells: sum %v, want %v", got, want)
			}
		})
	}
}

// testIndexWidgets runs every widget model on quadbin and H3 (hex text
// and bigint) table and query sources built from NE populated places,
// without scope, with a filter, with a spatial filter and with both, and
// checks each answer against plain SQL over idx_places, the spatial
// filter's rows being those whose cell polygon (tile envelope, H3
// boundary) intersects the filter.
func testIndexWidgets(t *testing.T, e *env) {
	for _, s := range idxSources() {
		for _, sc := range idxScopes() {
			t.Run(s.name+"/"+sc.name, func(t *testing.T) {
				r := wreq{typ: s.typ, source: s.src, queryParams: s.qp, filters: sc.filters, sdt: s.sdt, sdc: s.sdc}
				where := s.where + " AND " + sc.where
				if sc.spatial {
					r.spatial = idxFilter
					where += " AND " + s.spatialWhere("intersects")
				}
				checkIndexWidgets(t, e, r, where, sc.spatial)
			})
		}
	}
}

// checkIndexWidgets calls each model with r and compares it with SQL over
// idx_places WHERE where.
func checkIndexWidgets(t *testing.T, e *env, r wreq, where string, spatial bool) {
	t.Helper()
	from := " FROM idx_places WHERE " + where
	n := num(e.scalar("SELECT count(*)" + from))
	if n == 0 || spatial && n == num(e.scalar("SELECT count(*) FROM idx_places")) {
		t.Fatalf("test data: %v rows for %s", n, where)
	}
	call := func(model string, params map[string]any) resp {
		t.Helper()
		r.params = params
		return e.model(model, r)
	}
	// formula
	for _, op := range []string{"count", "sum", "avg", "min", "max"} {
		got := value1(t, call("formula", map[string]any{"column": "pop_max", "operation": op}), "value")
		agg := op + "(pop_max)::float8"
		if op == "count" {
			agg = "count(pop_max)"
		}
		if want := num(e.scalar("SELECT " + agg + from)); !near(num(got), want) {
			t.Errorf("formula %s = %v, want %v", op, got, want)
		}
	}
	// category, with others
	rows, meta := rowsOf(t, call("category", map[string]any{"column": "adm0name", "operation": "sum",
		"operationColumn": "pop_max", "othersThreshold": 5}))
	want := sqlPairs(t, e, "SELECT adm0name, sum(pop_max)::float8"+from+" GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1 LIMIT 5")
	if got := jsonPairs(rows, "name", "value"); !samePairs(got, want) {
		t.Errorf("category = %v, want %v", got, want)
	}
	others := e.scalar("SELECT sum(v)::float8 FROM (SELECT adm0name, sum(pop_max) AS v" + from +
		" GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1 OFFSET 5) o")
	if o, _ := meta["others"]; !(o == nil && others == nil || near(num(o), num(others))) {
		t.Errorf("category others = %v, want %v", o, others)
	}
	// histogram
	rows, _ = rowsOf(t, call("histogram", map[string]any{"column": "pop_max", "operation": "count",
		"ticks": []float64{50_000, 200_000, 1_000_000, 5_000_000}}))
	want = sqlPairs(t, e, "SELECT width_bucket(pop_max, '{50000,200000,1000000,5000000}'::float8[])::text, count(*)::float8"+
		from+" AND pop_max IS NOT NULL GROUP BY 1")
	if got := jsonPairs(rows, "tick", "value"); !samePairs(got, want) {
		t.Errorf("histogram = %v, want %v", got, want)
	}
	// range
	rows, _ = rowsOf(t, call("range", map[string]any{"column": "pop_min"}))
	if mn, mx := num(e.scalar("SELECT min(pop_min)::float8"+from)), num(e.scalar("SELECT max(pop_min)::float8"+from)); len(rows) != 1 ||
		!near(num(rows[0]["min"]), mn) || !near(num(rows[0]["max"]), mx) {
		t.Errorf("range = %v, want %v..%v", rows, mn, mx)
	}
	// timeseries
	rows, _ = rowsOf(t, call("timeseries", map[string]any{"column": "founded", "stepSize": "year", "operation": "count"}))
	want = sqlPairs(t, e, `SELECT to_char(date_trunc('year', founded AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), count(*)::float8`+
		from+" AND founded IS NOT NULL GROUP BY 1")
	if got := jsonPairs(rows, "name", "value"); !samePairs(got, want) || len(got) < 2 {
		t.Errorf("timeseries = %v, want %v", got, want)
	}
	// table
	rows, meta = rowsOf(t, call("table", map[string]any{"column": []string{"name", "pop_max"}, "sortBy": "pop_max",
		"sortDirection": "desc", "limit": 7, "offset": 1}))
	if num(meta["total"]) != n {
		t.Errorf("table total = %v, want %v", meta["total"], n)
	}
	top := sqlPairs(t, e, "SELECT name, pop_max"+from+" ORDER BY pop_max DESC NULLS LAST, name LIMIT 7 OFFSET 1")
	if got := jsonPairs(rows, "name", "pop_max"); !samePairs(got, top) {
		t.Errorf("table = %v, want %v", got, top)
	}
	// The cell ids, exact: quadbin and h3int ids exceed what a JavaScript
	// number holds, so they come as decimal strings.
	rows, _ = rowsOf(t, call("table", map[string]any{"column": []string{r.sdc, "name"}, "sortBy": "pop_max",
		"sortDirection": "desc", "limit": 7, "offset": 1}))
	cells := sqlPairs(t, e, "SELECT "+r.sdc+"::text, 1"+from+" ORDER BY pop_max DESC NULLS LAST, name LIMIT 7 OFFSET 1")
	for _, row := range rows {
		id, ok := row[r.sdc].(string)
		if _, want := cells[id]; !ok || !want {
			t.Errorf("table: cell %#v, want one of %v as a string", row[r.sdc], cells)
		}
	}
	// scatterplot
	rows, _ = rowsOf(t, call("scatterplot", map[string]any{"xAxisColumn": "pop_max", "yAxisColumn": "pop_min"}))
	if want := math.Min(500, num(e.scalar("SELECT count(*)"+from+" AND pop_max IS NOT NULL AND pop_min IS NOT NULL"))); float64(len(rows)) != want {
		t.Errorf("scatterplot: %d points, want %v", len(rows), want)
	}
	// aggregations
	rows, _ = rowsOf(t, call("aggregations", map[string]any{"aggregations": "sum(pop_max) AS s, count(*) AS n"}))
	if s := num(e.scalar("SELECT sum(pop_max)::float8" + from)); len(rows) != 1 || !near(num(rows[0]["s"]), s) || num(rows[0]["n"]) != n {
		t.Errorf("aggregations = %v, want s %v n %v", rows, s, n)
	}
}

// sqlPairs runs a two-column statement: first column as text → second as
// float8.
func sqlPairs(t *testing.T, e *env, sql string) map[string]float64 {
	t.Helper()
	rows, err := e.db.Pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var k *string
		var v *float64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		key, val := "<null>", math.NaN()
		if k != nil {
			key = *k
		}
		if v != nil {
			val = *v
		}
		out[key] = val
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// jsonPairs reads rows' key → value.
func jsonPairs(rows []map[string]any, key, val string) map[string]float64 {
	out := map[string]float64{}
	for _, r := range rows {
		k := "<null>"
		switch x := r[key].(type) {
		case string:
			k = x
		case float64:
			k = fmt.Sprint(x)
		}
		out[k] = num(r[val])
	}
	return out
}

func samePairs(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !(near(v, w) || math.IsNaN(v) && math.IsNaN(w)) {
			return false
		}
	}
	return true
}

// testIndexModes checks spatialFiltersMode contains and center (and
// intersects, the default) on each source: the rows kept are those whose
// cell is covered by the filter, whose centre is in it, or which
// intersects it.
func testIndexModes(t *testing.T, e *env) {
	for _, s := range idxSources() {
		counts := map[string]float64{}
		for _, mode := range []string{"intersects", "contains", "center"} {
			t.Run(s.name+"/"+mode, func(t *testing.T) {
				r := wreq{typ: s.typ, source: s.src, queryParams: s.qp, sdt: s.sdt, sdc: s.sdc, spatial: idxFilter, mode: mode,
					params: map[string]any{"column": "pop_max", "operation": "sum"}}
				got := num(value1(t, e.model("formula", r), "value"))
				want := num(e.scalar("SELECT sum(pop_max)::float8 FROM idx_places WHERE " + s.where + " AND " + s.spatialWhere(mode)))
				if !near(got, want) || want == 0 {
					t.Errorf("sum = %v, want %v", got, want)
				}
				counts[mode] = want
			})
		}
		if !(counts["contains"] < counts["intersects"] && counts["contains"] <= counts["center"] && counts["center"] <= counts["intersects"]) {
			t.Errorf("%s: want contains ≤ center ≤ intersects, contains < intersects: %v", s.name, counts)
		}
	}
	r := wreq{typ: "table", source: "idx_places", sdt: "h3", sdc: "h3", spatial: idxFilter, mode: "nearby",
		params: map[string]any{"operation": "count"}}
	if got := e.model("formula", r); got.status != http.StatusBadRequest || !strings.Contains(string(got.body), "spatialFiltersMode") {
		t.Errorf("mode nearby: %d %s", got.status, got.body)
	}
}

// combFilter is a polygon of many long teeth across the world: its edges
// meet more cells than a spatial filter may cover at the fixture's
// resolutions.
func combFilter(teeth int) string {
	var ring [][2]float64
	w := 340.0 / float64(teeth)
	for i := range teeth {
		x := -170.3 + float64(i)*w
		ring = append(ring, [2]float64{x, -60}, [2]float64{x, 60}, [2]float64{x + w/2, 60}, [2]float64{x + w/2, -59})
	}
	ring = append(ring, [2]float64{169.7, -60}, [2]float64{169.7, -70}, [2]float64{-170.3, -70}, [2]float64{-170.3, -60})
	b, _ := json.Marshal(map[string]any{"type": "Polygon", "coordinates": [][][2]float64{ring}})
	return string(b)
}

// testIndexErrors: a spatial filter too large for the cover is a 400
// naming the limit (the same comb, coarser, is answered right); spatial
// filters on another column are 400; widgets on index sources keep their
// grants.
func testIndexErrors(t *testing.T, e *env) {
	comb := combFilter(1500)
	for _, s := range idxSources() {
		if s.sdt == "quadbin" {
			s.sdc = "quadbin18" // level 8 tiles are too large for the comb's teeth to add up
		}
		t.Run(s.name, func(t *testing.T) {
			r := wreq{typ: s.typ, source: s.src, queryParams: s.qp, sdt: s.sdt, sdc: s.sdc, spatial: comb,
				params: map[string]any{"operation": "count"}}
			got := e.modelPost("formula", r)
			if got.status != http.StatusBadRequest || !strings.Contains(string(got.body), "spatial filter too large") ||
				!strings.Contains(string(got.body), "100000") {
				t.Errorf("comb filter: %d %s", got.status, got.body)
			}
		})
	}
	// The same comb, coarser, is fine and right.
	s := idxSources()[0]
	r := wreq{typ: s.typ, source: s.src, sdt: s.sdt, sdc: s.sdc, spatial: combFilter(40), params: map[string]any{"operation": "count"}}
	got := num(value1(t, e.modelPost("formula", r), "value"))
	want := num(e.scalar("SELECT count(*) FROM idx_places WHERE quadbin IN (SELECT cell FROM idx_qb_cells WHERE ST_Intersects(env, ST_SetSRID(ST_GeomFromGeoJSON($1), 4326)))", combFilter(40)))
	if got != want || want == 0 {
		t.Errorf("comb(40) count = %v, want %v", got, want)
	}
	// A spatial filter on another column than the cells.
	r = wreq{typ: "table", source: "idx_places", sdt: "h3", sdc: "h3", params: map[string]any{"operation": "count"}}
	kv := e.widgetParams(r)
	kv = append(kv, "spatialFilters", map[string]json.RawMessage{"h3int": json.RawMessage(idxFilter)})
	if got := e.get("/api/v3/sql/pg/model/formula?"+q(kv...), bearer(e.all)); got.status != http.StatusBadRequest ||
		!strings.Contains(string(got.body), `neither the source's h3 column \"h3\" nor a geometry column`) {
		t.Errorf("filter on h3int: %d %s", got.status, got.body)
	}
	// Grants: a token for another table is refused, as for geometries.
	tok := e.is.token(t, mapsSQL, "public.places")
	r = wreq{typ: "table", source: "idx_places", sdt: "quadbin", sdc: "quadbin", params: map[string]any{"operation": "count"}, tok: tok}
	if got := e.model("formula", r); got.status != http.StatusForbidden {
		t.Errorf("other table's token: %d %s", got.status, got.body)
	}
	r.tok = e.is.token(t, mapsSQL, "public.idx_places")
	if got := value1(t, e.model("formula", r), "value"); num(got) != num(e.scalar("SELECT count(*) FROM idx_places")) {
		t.Errorf("own token: %v", got)
	}
}
