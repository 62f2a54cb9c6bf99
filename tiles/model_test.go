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
	"time"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/grant"
)

// Europe is a lon/lat box around western Europe, as a GeoJSON polygon.
const europe = `{"type":"Polygon","coordinates":[[[-10,35],[25,35],[25,60],[-10,60],[-10,35]]]}`

// widgetEnv is a server whose places table also has a timestamp column,
// founded (one row in ten NULL), and a copy of places in Web Mercator,
// places3857.
func widgetEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	for _, sql := range []string{
		`ALTER TABLE places ADD COLUMN founded timestamptz`,
		`UPDATE places SET founded = CASE WHEN id % 10 = 0 THEN NULL
			ELSE timestamptz '1990-01-01 00:00:00+00' + (id * 47) * interval '1 day' + (id * 5) * interval '1 hour' END`,
		`CREATE TABLE places3857 AS SELECT id, name, pop_max, ST_Transform(geom, 3857)::geometry(Point, 3857) AS geom FROM places`,
		`ANALYZE places`, `ANALYZE places3857`,
	} {
		if _, err := e.db.Pool.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return e
}

// wreq is a widget request as @carto/api-client sends it.
type wreq struct {
	typ, source string
	queryParams any // nil: "" (none)
	params      any
	filters     any // nil: {}
	or          bool
	spatial     string // a GeoJSON polygon on geom, or ""
	tok         string // "": e.all
	// sdt and sdc are spatialDataType and spatialDataColumn ("": geo,
	// geom); mode is spatialFiltersMode, sent with a spatial filter on a
	// spatial-index source ("": intersects).
	sdt, sdc, mode string
}

// model sends r to /model/{model} by GET (JSON-encoded parameters) and
// returns the answer.
func (e *env) model(model string, r wreq) resp {
	e.t.Helper()
	kv := e.widgetParams(r)
	tok := r.tok
	if tok == "" {
		tok = e.all
	}
	return e.get("/api/v3/sql/pg/model/"+model+"?"+q(kv...), bearer(tok))
}

// modelPost sends r by POST with a JSON body (native objects).
func (e *env) modelPost(model string, r wreq) resp {
	e.t.Helper()
	kv := e.widgetParams(r)
	body := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		body[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(body)
	return e.do(http.MethodPost, "/api/v3/sql/pg/model/"+model, string(b), bearer(e.all), "Content-Type: application/json")
}

func (e *env) widgetParams(r wreq) []any {
	typ, src := r.typ, r.source
	if typ == "" {
		typ, src = "table", "public.places"
	}
	var qp any = ""
	if r.queryParams != nil {
		qp = r.queryParams
	}
	var filters any = map[string]any{}
	if r.filters != nil {
		filters = r.filters
	}
	op := "and"
	if r.or {
		op = "or"
	}
	sdt, sdc := "geo", "geom"
	if r.sdt != "" {
		sdt, sdc = r.sdt, r.sdc
	}
	kv := []any{"type", typ, "client", "deck-gl-carto", "source", src, "params", r.params, "queryParameters", qp,
		"filters", filters, "filtersLogicalOperator", op, "spatialDataType", sdt, "spatialDataColumn", sdc}
	if r.spatial != "" {
		kv = append(kv, "spatialFilters", map[string]json.RawMessage{sdc: json.RawMessage(r.spatial)})
		if sdt != "geo" {
			mode := r.mode
			if mode == "" {
				mode = "intersects"
			}
			kv = append(kv, "spatialFiltersMode", mode)
		}
	}
	return kv
}

// rowsOf decodes a 200 answer's rows and metadata.
func rowsOf(t *testing.T, r resp) ([]map[string]any, map[string]any) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var b struct {
		Rows     []map[string]any `json:"rows"`
		Metadata map[string]any   `json:"metadata"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return b.Rows, b.Metadata
}

// value1 is rows[0][key] of a 200 answer.
func value1(t *testing.T, r resp, key string) any {
	t.Helper()
	rows, _ := rowsOf(t, r)
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1: %s", len(rows), r.body)
	}
	return rows[0][key]
}

// scalar runs SQL on the data database and returns its one value.
func (e *env) scalar(sql string, args ...any) any {
	e.t.Helper()
	var v any
	if err := e.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// num turns a JSON or SQL number into a float64.
func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case int:
		return float64(x)
	}
	return math.NaN()
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func TestModelFormula(t *testing.T) {
	e := widgetEnv(t)
	const inEurope = "ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326))"
	countries := []any{"France", "Germany", "Italy", "Spain"}
	tests := []struct {
		name string
		r    wreq
		sql  string
		args []any
	}{
		{"count", wreq{params: map[string]any{"column": "*", "operation": "count"}}, "SELECT count(*) FROM places", nil},
		{"sum", wreq{params: map[string]any{"column": "pop_max", "operation": "sum"}}, "SELECT sum(pop_max)::float8 FROM places", nil},
		{"avg", wreq{params: map[string]any{"column": "pop_max", "operation": "avg"}}, "SELECT avg(pop_max)::float8 FROM places", nil},
		{"min", wreq{params: map[string]any{"column": "pop_min", "operation": "min"}}, "SELECT min(pop_min)::float8 FROM places", nil},
		{"max", wreq{params: map[string]any{"column": "pop_min", "operation": "max"}}, "SELECT max(pop_min)::float8 FROM places", nil},
		{"count column skips nulls", wreq{params: map[string]any{"column": "founded", "operation": "count"}}, "SELECT count(founded) FROM places", nil},
		{"custom", wreq{params: map[string]any{"operation": "custom", "operationExp": "sum(pop_max) / count(*)"}},
			"SELECT (sum(pop_max)::float8 / count(*))::float8 FROM places", nil},
		{"filter in", wreq{params: map[string]any{"operation": "count"},
			filters: map[string]any{"adm0name": map[string]any{"in": map[string]any{"values": countries, "owner": "w1"}}}},
			"SELECT count(*) FROM places WHERE adm0name = ANY($1)", []any{[]string{"France", "Germany", "Italy", "Spain"}}},
		{"filters and", wreq{params: map[string]any{"column": "pop_max", "operation": "sum"},
			filters: map[string]any{"adm0name": map[string]any{"in": map[string]any{"values": countries}},
				"pop_max": map[string]any{"between": map[string]any{"values": [][]any{{1_000_000, nil}}}}}},
			"SELECT sum(pop_max)::float8 FROM places WHERE adm0name = ANY($1) AND pop_max >= 1000000", []any{[]string{"France", "Germany", "Italy", "Spain"}}},
		{"filters or", wreq{params: map[string]any{"operation": "count"}, or: true,
			filters: map[string]any{"adm0name": map[string]any{"in": map[string]any{"values": countries}},
				"pop_max": map[string]any{"closed_open": map[string]any{"values": [][]any{{10_000_000, 20_000_000}}}}}},
			"SELECT count(*) FROM places WHERE adm0name = ANY($1) OR (pop_max >= 10000000 AND pop_max < 20000000)", []any{[]string{"France", "Germany", "Italy", "Spain"}}},
		{"string search", wreq{params: map[string]any{"operation": "count"},
			filters: map[string]any{"name": map[string]any{"stringSearch": map[string]any{"values": []any{"san"}}}}},
			"SELECT count(*) FROM places WHERE name ILIKE '%san%'", nil},
		{"time filter", wreq{params: map[string]any{"operation": "count"},
			filters: map[string]any{"founded": map[string]any{"time": map[string]any{"values": [][]any{{
				time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()}}}}}},
			"SELECT count(*) FROM places WHERE founded BETWEEN '1995-01-01Z' AND '2000-01-01Z'", nil},
		{"spatial filter", wreq{params: map[string]any{"operation": "count"}, spatial: europe},
			"SELECT count(*) FROM places WHERE " + inEurope, nil},
		{"spatial filter and filters", wreq{params: map[string]any{"column": "pop_max", "operation": "sum"}, spatial: europe,
			filters: map[string]any{"pop_max": map[string]any{"between": map[string]any{"values": [][]any{{nil, 3_000_000}}}}}},
			"SELECT sum(pop_max)::float8 FROM places WHERE pop_max <= 3000000 AND " + inEurope, nil},
		{"spatial filter, polygons", wreq{typ: "table", source: "admin1", params: map[string]any{"operation": "count"}, spatial: europe},
			"SELECT count(*) FROM admin1 WHERE " + inEurope, nil},
		{"spatial filter, other SRID", wreq{typ: "table", source: "places3857", params: map[string]any{"operation": "count"}, spatial: europe},
			"SELECT count(*) FROM places3857 WHERE ST_Intersects(geom, ST_Transform(ST_MakeEnvelope(-10, 35, 25, 60, 4326), 3857))", nil},
		{"query source", wreq{typ: "query", source: "SELECT * FROM places WHERE pop_max > $1", queryParams: []any{5_000_000},
			params: map[string]any{"column": "pop_max", "operation": "sum"}, spatial: europe},
			"SELECT sum(pop_max)::float8 FROM places WHERE pop_max > 5000000 AND " + inEurope, nil},
		{"query source, filters after its parameters", wreq{typ: "query", source: "SELECT * FROM places WHERE pop_max > $1", queryParams: []any{1_000_000},
			params: map[string]any{"operation": "count"}, filters: map[string]any{"adm0name": map[string]any{"in": map[string]any{"values": countries}}}},
			"SELECT count(*) FROM places WHERE pop_max > 1000000 AND adm0name = ANY($1)", []any{[]string{"France", "Germany", "Italy", "Spain"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := value1(t, e.model("formula", tt.r), "value")
			want := num(e.scalar(tt.sql, tt.args...))
			if !near(num(got), want) {
				t.Errorf("value = %v, want %v (%s)", got, want, tt.sql)
			}
			if want == 0 {
				t.Errorf("test data: %s is 0; want a case that could fail", tt.sql)
			}
		})
	}
}

func TestModelCategory(t *testing.T) {
	e := widgetEnv(t)
	type cat struct {
		name  any
		value float64
	}
	query := func(sql string) []cat {
		rows, err := e.db.Pool.Query(t.Context(), sql)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []cat
		for rows.Next() {
			var c cat
			var v any
			if err := rows.Scan(&c.name, &v); err != nil {
				t.Fatal(err)
			}
			c.value = num(v)
			out = append(out, c)
		}
		return out
	}
	check := func(t *testing.T, r resp, want []cat) map[string]any {
		rows, meta := rowsOf(t, r)
		if len(rows) != len(want) {
			t.Fatalf("%d categories, want %d: %s", len(rows), len(want), r.body)
		}
		for i, w := range want {
			if rows[i]["name"] != w.name || !near(num(rows[i]["value"]), w.value) {
				t.Errorf("category %d = %v, want %v", i, rows[i], w)
			}
		}
		return meta
	}

	t.Run("count, others", func(t *testing.T) {
		r := e.model("category", wreq{params: map[string]any{"column": "adm0name", "operation": "count", "operationColumn": "adm0name", "othersThreshold": 5}})
		all := query("SELECT adm0name, count(*) FROM places GROUP BY 1 ORDER BY 2 DESC, 1")
		meta := check(t, r, all[:5])
		var rest float64
		for _, c := range all[5:] {
			rest += c.value
		}
		if num(meta["others"]) != rest || rest == 0 {
			t.Errorf("metadata.others = %v, want %v", meta["others"], rest)
		}
	})
	t.Run("sum, alphabetical, filtered", func(t *testing.T) {
		r := e.model("category", wreq{params: map[string]any{"column": "featurecla", "operation": "sum", "operationColumn": "pop_max", "orderBy": "alphabetical_asc"},
			filters: map[string]any{"pop_max": map[string]any{"between": map[string]any{"values": [][]any{{1_000_000, nil}}}}}})
		check(t, r, query("SELECT featurecla, sum(pop_max)::float8 FROM places WHERE pop_max >= 1000000 GROUP BY 1 ORDER BY 1"))
	})
	t.Run("avg others", func(t *testing.T) {
		r := e.model("category", wreq{params: map[string]any{"column": "adm0name", "operation": "avg", "operationColumn": "pop_max", "othersThreshold": 3, "orderBy": "frequency_asc"}})
		all := query("SELECT adm0name, avg(pop_max)::float8 FROM places GROUP BY 1 ORDER BY 2, 1")
		meta := check(t, r, all[:3])
		names := []string{all[0].name.(string), all[1].name.(string), all[2].name.(string)}
		want := num(e.scalar("SELECT avg(pop_max)::float8 FROM places WHERE adm0name <> ALL($1)", names))
		if !near(num(meta["others"]), want) {
			t.Errorf("metadata.others = %v, want %v (the average over the other rows)", meta["others"], want)
		}
	})
	t.Run("custom, spatial filter", func(t *testing.T) {
		r := e.model("category", wreq{params: map[string]any{"column": "adm0name", "operation": "custom", "operationExp": "max(pop_max) - min(pop_min)"}, spatial: europe})
		check(t, r, query(`SELECT adm0name, (max(pop_max) - min(pop_min))::float8 AS v FROM places
			WHERE ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326)) GROUP BY 1 ORDER BY 2 DESC, 1`))
	})
}

func TestModelHistogram(t *testing.T) {
	e := widgetEnv(t)
	ticks := []float64{100_000, 1_000_000, 5_000_000, 10_000_000}
	bins := func(agg string) map[float64]float64 {
		rows, err := e.db.Pool.Query(t.Context(), `SELECT CASE WHEN pop_max < 100000 THEN 0 WHEN pop_max < 1000000 THEN 1
			WHEN pop_max < 5000000 THEN 2 WHEN pop_max < 10000000 THEN 3 ELSE 4 END, `+agg+`::float8 FROM places
			WHERE pop_max IS NOT NULL AND adm0name <> 'China' GROUP BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[float64]float64{}
		for rows.Next() {
			var b int
			var v float64
			rows.Scan(&b, &v)
			out[float64(b)] = v
		}
		return out
	}
	notChina := map[string]any{"adm0name": map[string]any{"stringSearch": map[string]any{"values": []any{"^(?!China$)"}, "params": map[string]any{"useRegExp": true}}}}
	for _, op := range []string{"count", "sum", "max"} {
		t.Run(op, func(t *testing.T) {
			r := e.model("histogram", wreq{params: map[string]any{"column": "pop_max", "operation": op, "ticks": ticks}, filters: notChina})
			rows, _ := rowsOf(t, r)
			agg := map[string]string{"count": "count(*)", "sum": "sum(pop_max)", "max": "max(pop_max)"}[op]
			want := bins(agg)
			if len(rows) != len(want) || len(want) < 4 {
				t.Fatalf("%d bins, want %d: %s", len(rows), len(want), r.body)
			}
			for _, row := range rows {
				tick := num(row["tick"])
				if w, ok := want[tick]; !ok || !near(num(row["value"]), w) {
					t.Errorf("bin %v = %v, want %v", tick, row["value"], w)
				}
			}
		})
	}
	// The regular expression filter (a negative lookahead) really filtered.
	all := value1(t, e.model("formula", wreq{params: map[string]any{"operation": "count"}, filters: notChina}), "value")
	if n := num(e.scalar("SELECT count(*) FROM places WHERE adm0name <> 'China'")); num(all) != n {
		t.Errorf("count outside China = %v, want %v", all, n)
	}
}

func TestModelRange(t *testing.T) {
	e := widgetEnv(t)
	rows, _ := rowsOf(t, e.model("range", wreq{params: map[string]any{"column": "pop_min"}, spatial: europe}))
	mn, mx := num(e.scalar("SELECT min(pop_min)::float8 FROM places WHERE ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326))")),
		num(e.scalar("SELECT max(pop_min)::float8 FROM places WHERE ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326))"))
	if num(rows[0]["min"]) != mn || num(rows[0]["max"]) != mx {
		t.Errorf("range = %v, want min %v max %v", rows[0], mn, mx)
	}
	rows, _ = rowsOf(t, e.model("range", wreq{params: map[string]any{"column": "founded"}}))
	first := e.scalar("SELECT min(founded) FROM places").(time.Time).UTC().Format("2006-01-02T15:04:05.000Z")
	last := e.scalar("SELECT max(founded) FROM places").(time.Time).UTC().Format("2006-01-02T15:04:05.000Z")
	if rows[0]["min"] != first || rows[0]["max"] != last {
		t.Errorf("timestamp range = %v, want %s, %s", rows[0], first, last)
	}
}

func TestModelScatter(t *testing.T) {
	e := widgetEnv(t)
	rows, _ := rowsOf(t, e.model("scatterplot", wreq{params: map[string]any{"xAxisColumn": "pop_max", "xAxisJoinOperation": "sum",
		"yAxisColumn": "pop_min", "yAxisJoinOperation": "sum", "limit": 500}, spatial: europe}))
	pairs := map[[2]float64]int{}
	dbRows, err := e.db.Pool.Query(t.Context(), "SELECT pop_max::float8, pop_min::float8 FROM places WHERE ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326))")
	if err != nil {
		t.Fatal(err)
	}
	for dbRows.Next() {
		var x, y float64
		dbRows.Scan(&x, &y)
		pairs[[2]float64{x, y}]++
	}
	dbRows.Close()
	n := 0
	for _, c := range pairs {
		n += c
	}
	if len(rows) != n || n < 10 {
		t.Fatalf("%d points, want %d", len(rows), n)
	}
	for _, r := range rows {
		k := [2]float64{num(r["x"]), num(r["y"])}
		if pairs[k] == 0 {
			t.Errorf("point %v is not a row in the polygon", r)
		}
		pairs[k]--
	}
	// At most 500 points.
	rows, _ = rowsOf(t, e.model("scatterplot", wreq{typ: "query", source: "SELECT g AS x, g * 2 AS y, ST_MakePoint(0, 0) AS geom FROM generate_series(1, 800) g",
		params: map[string]any{"xAxisColumn": "x", "yAxisColumn": "y", "limit": 5000}}))
	if len(rows) != 500 {
		t.Errorf("%d points, want the hard limit, 500", len(rows))
	}
}

func TestModelTable(t *testing.T) {
	e := widgetEnv(t)
	type row struct {
		Name string
		Pop  float64
	}
	r := e.model("table", wreq{params: map[string]any{"column": []string{"name", "pop_max", "adm0name"}, "sortBy": "pop_max", "sortDirection": "desc", "limit": 5, "offset": 3},
		filters: map[string]any{"featurecla": map[string]any{"in": map[string]any{"values": []string{"Admin-0 capital"}}}}})
	rows, meta := rowsOf(t, r)
	total := num(e.scalar("SELECT count(*) FROM places WHERE featurecla = 'Admin-0 capital'"))
	if num(meta["total"]) != total || total < 20 {
		t.Errorf("metadata.total = %v, want %v", meta["total"], total)
	}
	dbRows, err := e.db.Pool.Query(t.Context(), "SELECT name, pop_max FROM places WHERE featurecla = 'Admin-0 capital' ORDER BY pop_max DESC NULLS LAST, name, adm0name LIMIT 5 OFFSET 3")
	if err != nil {
		t.Fatal(err)
	}
	var want []row
	for dbRows.Next() {
		var w row
		dbRows.Scan(&w.Name, &w.Pop)
		want = append(want, w)
	}
	dbRows.Close()
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5: %s", len(rows), r.body)
	}
	for i, w := range want {
		if rows[i]["name"] != w.Name || num(rows[i]["pop_max"]) != w.Pop || len(rows[i]) != 3 {
			t.Errorf("row %d = %v, want %+v", i, rows[i], w)
		}
	}
	if !strings.Contains(string(r.body), `{"name":`) || strings.Index(string(r.body), `"pop_max"`) > strings.Index(string(r.body), `"adm0name"`) {
		t.Errorf("columns not in the requested order: %.200s", r.body)
	}

	// Paging walks every row once; columns keep the names as written.
	seen := map[string]bool{}
	for off := 0; off < int(total); off += 7 {
		rows, _ := rowsOf(t, e.model("table", wreq{params: map[string]any{"column": []string{"NAME", "founded"}, "sortBy": "adm0name", "limit": 7, "offset": off},
			filters: map[string]any{"featurecla": map[string]any{"in": map[string]any{"values": []string{"Admin-0 capital"}}}}}))
		for _, r := range rows {
			n, _ := r["NAME"].(string)
			if seen[n] || n == "" {
				t.Errorf("row %v seen twice or without NAME", r)
			}
			seen[n] = true
			if f, ok := r["founded"].(string); ok {
				if _, err := time.Parse(time.RFC3339, f); err != nil {
					t.Errorf("founded = %q, want an ISO time", f)
				}
			}
		}
	}
	if len(seen) != int(total) {
		t.Errorf("paging returned %d rows, want %v", len(seen), total)
	}
}

func TestModelTimeseries(t *testing.T) {
	e := widgetEnv(t)
	series := func(sql string) [][2]any {
		rows, err := e.db.Pool.Query(t.Context(), sql)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out [][2]any
		for rows.Next() {
			var ts time.Time
			var v any
			rows.Scan(&ts, &v)
			out = append(out, [2]any{ts.Format("2006-01-02T15:04:05.000Z"), num(v)})
		}
		return out
	}
	check := func(t *testing.T, r resp, want [][2]any) {
		t.Helper()
		rows, meta := rowsOf(t, r)
		if len(rows) != len(want) || len(want) < 3 {
			t.Fatalf("%d steps, want %d: %.300s", len(rows), len(want), r.body)
		}
		for i, w := range want {
			if rows[i]["name"] != w[0] || !near(num(rows[i]["value"]), w[1].(float64)) {
				t.Errorf("step %d = %v, want %v", i, rows[i], w)
			}
		}
		if cats, ok := meta["categories"].([]any); !ok || len(cats) != 0 {
			t.Errorf("metadata = %v, want categories []", meta)
		}
	}
	t.Run("year count", func(t *testing.T) {
		check(t, e.model("timeseries", wreq{params: map[string]any{"column": "founded", "stepSize": "year", "operation": "count"}}),
			series("SELECT date_trunc('year', founded AT TIME ZONE 'UTC'), count(*) FROM places WHERE founded IS NOT NULL GROUP BY 1 ORDER BY 1"))
	})
	t.Run("3 months sum", func(t *testing.T) {
		check(t, e.model("timeseries", wreq{params: map[string]any{"column": "founded", "stepSize": "month", "stepMultiplier": 3, "operation": "sum", "operationColumn": "pop_max"}}),
			series(`SELECT date_trunc('quarter', founded AT TIME ZONE 'UTC'), sum(pop_max) FROM places WHERE founded IS NOT NULL GROUP BY 1 ORDER BY 1`))
	})
	t.Run("week, filtered", func(t *testing.T) {
		check(t, e.model("timeseries", wreq{params: map[string]any{"column": "founded", "stepSize": "week", "operation": "max", "operationColumn": "pop_max"}, spatial: europe}),
			series(`SELECT date_trunc('week', founded AT TIME ZONE 'UTC'), max(pop_max) FROM places
				WHERE founded IS NOT NULL AND ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326)) GROUP BY 1 ORDER BY 1`))
	})
	t.Run("epoch seconds and milliseconds", func(t *testing.T) {
		src := "SELECT geom, pop_max, extract(epoch FROM founded)::bigint AS founded_s, (extract(epoch FROM founded) * 1000)::bigint AS founded_ms FROM places"
		want := series("SELECT date_trunc('year', founded AT TIME ZONE 'UTC'), count(*) FROM places WHERE founded IS NOT NULL GROUP BY 1 ORDER BY 1")
		check(t, e.model("timeseries", wreq{typ: "query", source: src, params: map[string]any{"column": "founded_s", "epochUnit": "seconds", "stepSize": "year", "operation": "count"}}), want)
		check(t, e.model("timeseries", wreq{typ: "query", source: src, params: map[string]any{"column": "founded_ms", "epochUnit": "milliseconds", "stepSize": "year", "operation": "count"}}), want)
		r := e.model("timeseries", wreq{typ: "query", source: src, params: map[string]any{"column": "founded_ms", "stepSize": "year", "operation": "count"}})
		if r.status != 400 || !strings.Contains(string(r.body), "epochUnit") {
			t.Errorf("epoch column without a unit: %d %s", r.status, r.body)
		}
	})
	t.Run("split by category", func(t *testing.T) {
		r := e.model("timeseries", wreq{params: map[string]any{"column": "founded", "stepSize": "year", "stepMultiplier": 5, "operation": "count",
			"splitByCategory": "featurecla", "splitByCategoryLimit": 2}})
		rows, meta := rowsOf(t, r)
		top := []any{}
		dbRows, _ := e.db.Pool.Query(t.Context(), "SELECT featurecla FROM places WHERE founded IS NOT NULL AND featurecla IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2")
		for dbRows.Next() {
			var s string
			dbRows.Scan(&s)
			top = append(top, s)
		}
		dbRows.Close()
		if cats, _ := meta["categories"].([]any); !slices.Equal(cats, top) {
			t.Fatalf("categories = %v, want %v", meta["categories"], top)
		}
		var total float64
		for _, r := range rows {
			if !slices.Contains(top, r["category"]) {
				t.Errorf("row %v of another category", r)
			}
			name, _ := r["name"].(string)
			ts, err := time.Parse(time.RFC3339, name)
			if err != nil || ts.Year()%5 != 0 || ts.Month() != 1 || ts.Day() != 1 {
				t.Errorf("step %q: want the start of a 5-year step", name)
			}
			total += num(r["value"])
		}
		want := num(e.scalar("SELECT count(*) FROM places WHERE founded IS NOT NULL AND featurecla = ANY($1)", []string{top[0].(string), top[1].(string)}))
		if total != want {
			t.Errorf("the series count %v rows, want %v", total, want)
		}
	})
}

func TestModelAggregations(t *testing.T) {
	e := widgetEnv(t)
	want := map[string]float64{
		"total": num(e.scalar("SELECT sum(pop_max)::float8 FROM places WHERE ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326))")),
		"n":     num(e.scalar("SELECT count(*) FROM places WHERE ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326))")),
		"low":   num(e.scalar("SELECT avg(pop_min)::float8 FROM places WHERE ST_Intersects(geom, ST_MakeEnvelope(-10, 35, 25, 60, 4326))")),
	}
	for name, aggs := range map[string]any{
		"list":   []map[string]any{{"column": "pop_max", "operation": "sum", "alias": "Total"}, {"column": "*", "operation": "count", "alias": "n"}, {"column": "pop_min", "operation": "avg", "alias": "low"}},
		"string": "sum(pop_max) AS Total, count(*) AS n, avg(pop_min) low",
	} {
		t.Run(name, func(t *testing.T) {
			rows, _ := rowsOf(t, e.model("aggregations", wreq{params: map[string]any{"aggregations": aggs}, spatial: europe}))
			got := rows[0]
			if len(got) != 3 || !near(num(got["Total"]), want["total"]) || num(got["n"]) != want["n"] || !near(num(got["low"]), want["low"]) {
				t.Errorf("aggregations = %v, want %v (aliases as written)", got, want)
			}
		})
	}
}

// The client POSTs when the URL is longer than 2048 characters: the same
// parameters as native JSON values (queryParameters "" when none).
func TestModelPost(t *testing.T) {
	e := widgetEnv(t)
	names := []any{"Paris", "Berlin", "Madrid", "Rome"}
	for i := 0; i < 150; i++ {
		names = append(names, fmt.Sprintf("Nowhere %d", i))
	}
	r := wreq{params: map[string]any{"column": "pop_max", "operation": "sum"}, spatial: europe,
		filters: map[string]any{"name": map[string]any{"in": map[string]any{"values": names}}}}
	if u := q(e.widgetParams(r)...); len(u) < 2048 {
		t.Fatalf("the request is only %d characters long", len(u))
	}
	want := num(e.scalar("SELECT sum(pop_max)::float8 FROM places WHERE name IN ('Paris', 'Berlin', 'Madrid', 'Rome')"))
	if got := value1(t, e.modelPost("formula", r), "value"); num(got) != want || want == 0 {
		t.Errorf("POST formula = %v, want %v", got, want)
	}
	r.typ, r.source, r.queryParams = "query", "SELECT * FROM places WHERE pop_max > $1", []any{0}
	if got := value1(t, e.modelPost("formula", r), "value"); num(got) != want {
		t.Errorf("POST formula on a query = %v, want %v", got, want)
	}
}

// Widget answers are cacheable by the edge and purged with their source.
func TestModelCacheHeaders(t *testing.T) {
	e := widgetEnv(t)
	r := e.model("formula", wreq{params: map[string]any{"operation": "count"}})
	if sk := r.header.Get(cachetag.Header); sk != "src:pg/public.places conn:pg" {
		t.Errorf("table Surrogate-Key = %q", sk)
	}
	if cc := r.header.Get("Cache-Control"); !strings.HasPrefix(cc, "max-age=") {
		t.Errorf("Cache-Control = %q, want a max-age", cc)
	}
	r = e.model("formula", wreq{typ: "query", source: "SELECT * FROM places", params: map[string]any{"operation": "count"}})
	if sk := r.header.Get(cachetag.Header); !strings.Contains(sk, "src:pg/public.places") || !strings.Contains(sk, cachetag.Query("pg")) {
		t.Errorf("query Surrogate-Key = %q, want the table it reads and the query marker", sk)
	}
}

func TestModelErrors(t *testing.T) {
	e := widgetEnv(t)
	count := map[string]any{"operation": "count"}
	tableTok := e.is.token(t, []grant.API{grant.APIMaps}, "public.places")
	queryTok := e.is.token(t, []grant.API{grant.APISQL}, "SELECT * FROM places")
	tests := []struct {
		name   string
		model  string
		r      wreq
		raw    string // a raw query string instead of r
		status int
		code   string
		column string // column_name of an unknown column
	}{
		{name: "unknown model", model: "pie", r: wreq{params: count}, status: 404, code: "NOT_FOUND"},
		{name: "unknown column", model: "formula", r: wreq{params: map[string]any{"column": "nope", "operation": "sum"}}, status: 400, code: "COLUMN_NOT_FOUND", column: "nope"},
		{name: "unknown filter column", model: "formula", r: wreq{params: count, filters: map[string]any{"nope": map[string]any{"in": map[string]any{"values": []any{1}}}}},
			status: 400, code: "COLUMN_NOT_FOUND", column: "nope"},
		{name: "unknown column in operationExp", model: "formula", r: wreq{params: map[string]any{"operation": "custom", "operationExp": "sum(nope)"}}, status: 400, code: "COLUMN_NOT_FOUND", column: "nope"},
		{name: "unknown table column", model: "table", r: wreq{params: map[string]any{"column": []string{"name", "nope"}}}, status: 400, code: "COLUMN_NOT_FOUND", column: "nope"},
		{name: "bad operation", model: "formula", r: wreq{params: map[string]any{"column": "pop_max", "operation": "median"}}, status: 400, code: "BAD_REQUEST"},
		{name: "sum of text", model: "formula", r: wreq{params: map[string]any{"column": "name", "operation": "sum"}}, status: 400, code: "BAD_REQUEST"},
		{name: "custom without expression", model: "formula", r: wreq{params: map[string]any{"operation": "custom"}}, status: 400, code: "BAD_REQUEST"},
		{name: "operationExp injection", model: "formula", r: wreq{params: map[string]any{"operation": "custom", "operationExp": "count(*) FROM pg_user --"}}, status: 400, code: "BAD_REQUEST"},
		{name: "operationExp function", model: "formula", r: wreq{params: map[string]any{"operation": "custom", "operationExp": "max(pg_read_file('/etc/passwd'))"}}, status: 400, code: "BAD_REQUEST"},
		{name: "bad params JSON", model: "formula", raw: q("type", "table", "source", "public.places", "params", "{column:"), status: 400, code: "BAD_REQUEST"},
		{name: "params not an object", model: "formula", raw: q("type", "table", "source", "public.places", "params", "[1]"), status: 400, code: "BAD_REQUEST"},
		{name: "no params", model: "formula", raw: q("type", "table", "source", "public.places"), status: 400, code: "BAD_REQUEST"},
		{name: "bad filters JSON", model: "formula", raw: q("type", "table", "source", "public.places", "params", count, "filters", "{"), status: 400, code: "BAD_REQUEST"},
		{name: "bad filter type", model: "formula", r: wreq{params: count, filters: map[string]any{"name": map[string]any{"like": map[string]any{"values": []any{"a"}}}}}, status: 400, code: "BAD_REQUEST"},
		{name: "bad logical operator", model: "formula", raw: q("type", "table", "source", "public.places", "params", count, "filtersLogicalOperator", "xor"), status: 400, code: "BAD_REQUEST"},
		{name: "spatial filter not a polygon", model: "formula", r: wreq{params: count, spatial: `{"type":"Point","coordinates":[0,0]}`}, status: 400, code: "BAD_REQUEST"},
		{name: "spatial filter not GeoJSON", model: "formula", r: wreq{params: count, spatial: `{"type":"Polygon","coordinates":"x"}`}, status: 400, code: "BAD_REQUEST"},
		{name: "spatial filter on a non-geometry", model: "formula", raw: q("type", "table", "source", "public.places", "params", count,
			"spatialFilters", map[string]any{"name": json.RawMessage(europe)}), status: 400, code: "BAD_REQUEST"},
		{name: "spatial index filter", model: "formula", raw: q("type", "table", "source", "public.places", "params", count,
			"spatialFilters", map[string]any{"geom": map[string]any{"indexes": []string{"8a2a1072b59ffff"}, "type": "h3"}}), status: 501, code: "NOT_SUPPORTED"},
		{name: "unsorted ticks", model: "histogram", r: wreq{params: map[string]any{"column": "pop_max", "ticks": []float64{5, 1}}}, status: 400, code: "BAD_REQUEST"},
		{name: "timeseries on a number", model: "timeseries", r: wreq{params: map[string]any{"column": "pop_max", "stepSize": "year"}}, status: 400, code: "BAD_REQUEST"},
		{name: "bad step", model: "timeseries", r: wreq{params: map[string]any{"column": "founded", "stepSize": "fortnight"}}, status: 400, code: "BAD_REQUEST"},
		{name: "bad sort direction", model: "table", r: wreq{params: map[string]any{"column": []string{"name"}, "sortBy": "name", "sortDirection": "up"}}, status: 400, code: "BAD_REQUEST"},
		{name: "limit too large", model: "table", r: wreq{params: map[string]any{"column": []string{"name"}, "limit": 1e9}}, status: 400, code: "BAD_REQUEST"},
		{name: "featureIds not ids", model: "formula", r: wreq{params: map[string]any{"operation": "count", "featureIds": []string{"a"}, "geometryType": "points"}}, status: 400, code: "BAD_REQUEST"},
		{name: "featureIds without geometryType", model: "formula", r: wreq{params: map[string]any{"operation": "count", "featureIds": []string{"0123456789abcdef"}}}, status: 400, code: "BAD_REQUEST"},
		{name: "pick without featureIds", model: "pick", r: wreq{params: map[string]any{"columns": []string{"name"}, "dataType": "points"}}, status: 400, code: "BAD_REQUEST"},
		{name: "pick bad dataType", model: "pick", r: wreq{params: map[string]any{"columns": []string{"name"}, "dataType": "cells", "featureIds": []string{"0123456789abcdef"}}}, status: 400, code: "BAD_REQUEST"},
		{name: "unknown table", model: "formula", r: wreq{typ: "table", source: "public.nope", params: count}, status: 404, code: "NOT_FOUND"},
		{name: "bad type", model: "formula", r: wreq{typ: "tileset", source: "x", params: count}, status: 400, code: "BAD_REQUEST"},
		{name: "h3 source without its cell column", model: "formula", raw: q("type", "table", "source", "public.places", "params", count, "spatialDataType", "h3"), status: 400, code: "COLUMN_NOT_FOUND"},
		{name: "h3 source on a non-cell column", model: "formula", raw: q("type", "table", "source", "public.places", "params", count, "spatialDataType", "h3", "spatialDataColumn", "name"), status: 400, code: "BAD_REQUEST"},
		{name: "query error", model: "formula", r: wreq{typ: "query", source: "SELECT * FROM places WHERE nope", params: count}, status: 400, code: "QUERY_ERROR"},
		{name: "query writes", model: "formula", r: wreq{typ: "query", source: "SELECT *, nextval('places_id_seq') FROM places", params: count}, status: 400, code: "QUERY_ERROR"},
		{name: "query parameter missing", model: "formula", r: wreq{typ: "query", source: "SELECT * FROM places WHERE pop_max > $1", params: count}, status: 400, code: "BAD_REQUEST"},
		{name: "no token", model: "formula", r: wreq{params: count, tok: "-"}, status: 401, code: "UNAUTHORIZED"},
		{name: "table not granted", model: "formula", r: wreq{typ: "table", source: "admin1", params: count, tok: tableTok}, status: 403, code: "FORBIDDEN"},
		{name: "table granted", model: "formula", r: wreq{params: count, tok: tableTok}, status: 200},
		{name: "query with a table grant", model: "formula", r: wreq{typ: "query", source: "SELECT * FROM places", params: count, tok: tableTok}, status: 403, code: "FORBIDDEN"},
		{name: "query granted by its text", model: "formula", r: wreq{typ: "query", source: "SELECT *  FROM places", params: count, tok: queryTok}, status: 200},
		{name: "other query", model: "formula", r: wreq{typ: "query", source: "SELECT * FROM admin1", params: count, tok: queryTok}, status: 403, code: "FORBIDDEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r resp
			switch {
			case tt.raw != "":
				r = e.get("/api/v3/sql/pg/model/"+tt.model+"?"+tt.raw, bearer(e.all))
			case tt.r.tok == "-":
				r = e.get("/api/v3/sql/pg/model/" + tt.model + "?" + q(e.widgetParams(tt.r)...))
			default:
				r = e.model(tt.model, tt.r)
			}
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 200 {
				return
			}
			m := r.json(t)
			if m["code"] != tt.code || m["error"] == "" || num(m["status"]) != float64(tt.status) {
				t.Errorf("body = %s, want code %s, an error and the status", r.body, tt.code)
			}
			if tt.column != "" && (m["error"] != "Column not found" || m["column_name"] != tt.column) {
				t.Errorf("body = %s, want the client's Column not found with column_name %q", r.body, tt.column)
			}
			if r.header.Get(cachetag.Header) != "" || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("error headers: Surrogate-Key %q, Cache-Control %q", r.header.Get(cachetag.Header), r.header.Get("Cache-Control"))
			}
		})
	}
	if n := num(e.scalar("SELECT last_value FROM places_id_seq")); n != 243 {
		t.Errorf("places_id_seq moved to %v", n)
	}
}
