package widget

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
)

// stores is a table source: points in SRID 4326 and a second geometry in
// 3857.
func stores() *Source {
	return &Source{
		Schema: "public", Table: "Stores",
		Columns: []catalog.Column{
			{Name: "geom", Type: catalog.TypeGeometry, PGType: "geometry(Point,4326)"},
			{Name: "name", Type: catalog.TypeString, PGType: "text"},
			{Name: "storetype", Type: catalog.TypeString, PGType: "character varying(20)"},
			{Name: "revenue", Type: catalog.TypeNumber, PGType: "numeric"},
			{Name: "size_m2", Type: catalog.TypeNumber, PGType: "integer"},
			{Name: "visits", Type: catalog.TypeBigint, PGType: "bigint"},
			{Name: "opened", Type: catalog.TypeTimestamp, PGType: "timestamp with time zone"},
			{Name: "open", Type: catalog.TypeBoolean, PGType: "boolean"},
			{Name: "tags", Type: catalog.TypeObject, PGType: "jsonb"},
			{Name: "Area", Type: catalog.TypeGeometry, PGType: "geometry"},
		},
		Geoms:  []catalog.GeomColumn{{Name: "geom", SRID: 4326, GeomType: "POINT"}, {Name: "Area", SRID: 3857, GeomType: "POLYGON"}},
		RowIDs: true,
	}
}

// query is a query source with one queryParameter.
func query() *Source {
	s := stores()
	s.Schema, s.Table, s.RowIDs = "", "", false
	s.Query = "SELECT * FROM stores WHERE revenue > $1"
	s.Args = []any{int64(1000)}
	return s
}

func build(t *testing.T, model, params string, src *Source, scope Scope) *Plan {
	t.Helper()
	p, err := Build(model, json.RawMessage(params), src, scope, Limits{MaxRows: 1000})
	if err != nil {
		t.Fatalf("Build(%s, %s): %v", model, params, err)
	}
	return p
}

func TestBuildSQL(t *testing.T) {
	sc, err := ParseScope(json.RawMessage(`{"storetype":{"in":{"values":["Supermarket","Convenience"],"owner":"w"}}}`), "and", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, model, params string
		src                 *Source
		scope               Scope
		sql                 []string
		args                [][]any
	}{
		{
			name: "formula count", model: "formula", params: `{"column":"*","operation":"count"}`, src: stores(),
			sql:  []string{`SELECT count(*) AS value FROM "public"."Stores" g`},
			args: [][]any{nil},
		},
		{
			name: "formula sum, filtered", model: "formula", params: `{"column":"revenue","operation":"sum"}`, src: stores(), scope: sc,
			sql:  []string{`SELECT sum(g."revenue")::float8 AS value FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[]))`},
			args: [][]any{{[]string{"Supermarket", "Convenience"}}},
		},
		{
			name: "formula on a query: its parameters first", model: "formula", params: `{"column":"size_m2","operation":"max"}`, src: query(), scope: sc,
			sql:  []string{"SELECT max(g.\"size_m2\")::float8 AS value FROM (\nSELECT * FROM stores WHERE revenue > $1\n) g WHERE (g.\"storetype\" = ANY($2::text[]))"},
			args: [][]any{{int64(1000), []string{"Supermarket", "Convenience"}}},
		},
		{
			name: "formula custom", model: "formula", params: `{"operation":"custom","operationExp":"sum(revenue) / sum(size_m2)"}`, src: stores(),
			sql:  []string{`SELECT (sum(g."revenue") / nullif(sum(g."size_m2"), 0)::float8)::float8 AS value FROM "public"."Stores" g`},
			args: [][]any{nil},
		},
		{
			name: "formula min of a timestamp", model: "formula", params: `{"column":"opened","operation":"min"}`, src: stores(),
			sql:  []string{`SELECT min(g."opened") AS value FROM "public"."Stores" g`},
			args: [][]any{nil},
		},
		{
			name: "category", model: "category", params: `{"column":"storetype","operation":"sum","operationColumn":"revenue","orderBy":"alphabetical_desc"}`, src: stores(),
			sql: []string{`WITH c AS (SELECT g."storetype"::text AS name, sum(g."revenue")::float8 AS value FROM "public"."Stores" g GROUP BY 1)` +
				` SELECT name, value FROM c ORDER BY name DESC NULLS LAST, value DESC NULLS LAST LIMIT $1`},
			args: [][]any{{int64(1001)}},
		},
		{
			name: "category others", model: "category", params: `{"column":"storetype","operation":"count","othersThreshold":3}`, src: stores(), scope: sc,
			sql: []string{`WITH c AS (SELECT g."storetype"::text AS name, count(*) AS value FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[])) GROUP BY 1),` +
				` r AS (SELECT name, value, row_number() OVER (ORDER BY value DESC NULLS LAST, name ASC NULLS LAST) AS rn FROM c)` +
				` SELECT name, value, rn FROM r WHERE rn <= $2` +
				` UNION ALL SELECT NULL, (SELECT count(*) FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[])) AND` +
				` CASE WHEN g."storetype"::text IS NULL THEN NOT EXISTS (SELECT 1 FROM r WHERE rn <= $2 AND name IS NULL)` +
				` ELSE g."storetype"::text <> ALL (ARRAY(SELECT name FROM r WHERE rn <= $2 AND name IS NOT NULL)) END), 0 ORDER BY 3`},
			args: [][]any{{[]string{"Supermarket", "Convenience"}, int64(3)}},
		},
		{
			name: "histogram", model: "histogram", params: `{"column":"revenue","operation":"avg","ticks":[10,20,30]}`, src: stores(),
			sql: []string{`SELECT width_bucket(g."revenue"::float8, $1::float8[]) AS tick, avg(g."revenue")::float8 AS value FROM "public"."Stores" g` +
				` WHERE g."revenue" IS NOT NULL GROUP BY 1 ORDER BY 1`},
			args: [][]any{{[]float64{10, 20, 30}}},
		},
		{
			name: "range", model: "range", params: `{"column":"visits"}`, src: stores(),
			sql:  []string{`SELECT min(g."visits")::float8 AS min, max(g."visits")::float8 AS max FROM "public"."Stores" g`},
			args: [][]any{nil},
		},
		{
			name: "scatterplot", model: "scatterplot", params: `{"xAxisColumn":"revenue","yAxisColumn":"size_m2","limit":900}`, src: stores(),
			sql: []string{`SELECT g."revenue"::float8 AS x, g."size_m2"::float8 AS y FROM "public"."Stores" g` +
				` WHERE g."revenue" IS NOT NULL AND g."size_m2" IS NOT NULL LIMIT $1`},
			args: [][]any{{int64(500)}},
		},
		{
			name: "timeseries week", model: "timeseries", params: `{"column":"opened","stepSize":"week","stepMultiplier":2,"operation":"count","operationColumn":"opened"}`, src: stores(),
			sql: []string{`SELECT date_bin(make_interval(weeks => $1::int), (g."opened" AT TIME ZONE 'UTC'), $2::timestamp) AS name, count(g."opened") AS value` +
				` FROM "public"."Stores" g WHERE g."opened" IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT $3`},
			args: [][]any{{int32(2), "1970-01-05", int64(1001)}},
		},
		{
			name: "timeseries month", model: "timeseries", params: `{"column":"opened","stepSize":"month","operation":"sum","operationColumn":"revenue"}`, src: stores(),
			sql: []string{`SELECT make_timestamp(floor((floor((extract(year FROM (g."opened" AT TIME ZONE 'UTC')) * 12 + extract(month FROM (g."opened" AT TIME ZONE 'UTC')) - 1) / $1::int8) * $1::int8) / 12)::int,` +
				` ((floor((extract(year FROM (g."opened" AT TIME ZONE 'UTC')) * 12 + extract(month FROM (g."opened" AT TIME ZONE 'UTC')) - 1) / $1::int8) * $1::int8) % 12 + 1)::int, 1, 0, 0, 0) AS name,` +
				` sum(g."revenue")::float8 AS value FROM "public"."Stores" g WHERE g."opened" IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT $2`},
			args: [][]any{{int64(1), int64(1001)}},
		},
		{
			name: "timeseries split", model: "timeseries", params: `{"column":"opened","stepSize":"year","operation":"count","splitByCategory":"storetype","splitByCategoryValues":["a","b"]}`, src: stores(),
			sql: []string{
				`WITH cats AS (SELECT g."storetype"::text AS category, count(*) AS n FROM "public"."Stores" g WHERE g."opened" IS NOT NULL AND g."storetype" IS NOT NULL` +
					` AND g."storetype"::text = ANY($1::text[]) GROUP BY 1 ORDER BY 2 DESC, 1) SELECT category FROM cats ORDER BY n DESC, category`,
				`WITH cats AS (SELECT g."storetype"::text AS category, count(*) AS n FROM "public"."Stores" g WHERE g."opened" IS NOT NULL AND g."storetype" IS NOT NULL` +
					` AND g."storetype"::text = ANY($1::text[]) GROUP BY 1 ORDER BY 2 DESC, 1)` +
					` SELECT make_timestamp((floor(extract(year FROM (g."opened" AT TIME ZONE 'UTC')) / $2::int8) * $2::int8)::int, 1, 1, 0, 0, 0) AS name,` +
					` g."storetype"::text AS category, count(g."opened") AS value FROM "public"."Stores" g JOIN cats ON cats.category = g."storetype"::text` +
					` WHERE g."opened" IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $3`,
			},
			args: [][]any{{[]string{"a", "b"}}, {[]string{"a", "b"}, int64(1), int64(1001)}},
		},
		{
			name: "table", model: "table", params: `{"column":["NAME","revenue","geom","tags"],"sortBy":"revenue","sortDirection":"desc","limit":5,"offset":10}`, src: stores(), scope: sc,
			sql: []string{
				`SELECT count(*) AS total FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[]))`,
				`SELECT g."name"::text AS "NAME", g."revenue"::float8 AS "revenue", ST_AsGeoJSON(g."geom") AS "geom", to_jsonb(g."tags") AS "tags"` +
					` FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[]))` +
					` ORDER BY g."revenue" DESC NULLS LAST, g."name" ASC NULLS LAST, g.ctid LIMIT $2 OFFSET $3`,
			},
			args: [][]any{{[]string{"Supermarket", "Convenience"}}, {[]string{"Supermarket", "Convenience"}, int64(5), int64(10)}},
		},
		{
			name: "table of a query: no ctid", model: "table", params: `{"column":["name"]}`, src: query(),
			sql: []string{
				"SELECT count(*) AS total FROM (\nSELECT * FROM stores WHERE revenue > $1\n) g",
				"SELECT g.\"name\"::text AS \"name\" FROM (\nSELECT * FROM stores WHERE revenue > $1\n) g ORDER BY g.\"name\" ASC NULLS LAST LIMIT $2 OFFSET $3",
			},
			args: [][]any{{int64(1000)}, {int64(1000), int64(10), int64(0)}},
		},
		{
			name: "aggregations list", model: "aggregations", params: `{"aggregations":[{"column":"revenue","operation":"sum","alias":"Total"},{"column":"*","operation":"count"},{"column":"size_m2","operation":"avg"}]}`, src: stores(),
			sql:  []string{`SELECT sum(g."revenue")::float8 AS "Total", count(*) AS "count", avg(g."size_m2")::float8 AS "size_m2_avg" FROM "public"."Stores" g`},
			args: [][]any{nil},
		},
		{
			name: "aggregations string", model: "aggregations", params: `{"aggregations":"sum(revenue) as total, max(name) top"}`, src: stores(),
			sql:  []string{`SELECT (sum(g."revenue"))::float8 AS "total", (max(g."name"))::text AS "top" FROM "public"."Stores" g`},
			args: [][]any{nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := build(t, tt.model, tt.params, tt.src, tt.scope)
			if len(p.Statements) != len(tt.sql) {
				t.Fatalf("%d statements, want %d", len(p.Statements), len(tt.sql))
			}
			for i, st := range p.Statements {
				if st.SQL != tt.sql[i] {
					t.Errorf("statement %d:\n got %s\nwant %s", i, st.SQL, tt.sql[i])
				}
				if len(st.Args) == 0 && len(tt.args[i]) == 0 {
					continue
				}
				if !reflect.DeepEqual(st.Args, tt.args[i]) {
					t.Errorf("statement %d args = %#v, want %#v", i, st.Args, tt.args[i])
				}
			}
		})
	}
}

func TestSpatialFilter(t *testing.T) {
	poly := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`
	sc, err := ParseScope(nil, "", json.RawMessage(`{"geom":`+poly+`,"Area":{"type":"MultiPolygon","coordinates":[[[[0,0],[2,0],[2,2],[0,0]]]]}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	p := build(t, "formula", `{"operation":"count"}`, stores(), sc)
	want := `SELECT count(*) AS value FROM "public"."Stores" g WHERE` +
		` ST_Intersects(g."Area", ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON($1::text), 4326), $2::int))` +
		` AND ST_Intersects(g."geom", ST_SetSRID(ST_GeomFromGeoJSON($3::text), 4326))`
	if got := p.Statements[0].SQL; got != want {
		t.Errorf("SQL:\n got %s\nwant %s", got, want)
	}
	args := p.Statements[0].Args
	if len(args) != 3 || args[1] != int32(3857) || !strings.Contains(args[0].(string), "MultiPolygon") || args[2] != poly {
		t.Errorf("args = %#v", args)
	}

	for _, tt := range []struct {
		name, in string
		want     error
	}{
		{"point", `{"geom":{"type":"Point","coordinates":[0,0]}}`, ErrInvalid},
		{"not geojson", `{"geom":{"type":"Polygon","coordinates":"x"}}`, ErrInvalid},
		{"open ring", `{"geom":{"type":"Polygon","coordinates":[[[0,0],[1,1]]]}}`, ErrInvalid},
		{"not an object", `[1]`, ErrInvalid},
		{"indexes of another type", `{"h3":{"indexes":["8a2a1072b59ffff"],"type":"s2"}}`, ErrInvalid},
		{"indexes not cells", `{"h3":{"indexes":["8a2a1072b59fff0"],"type":"h3"}}`, ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseScope(nil, "", json.RawMessage(tt.in), ""); !errors.Is(err, tt.want) {
				t.Errorf("ParseScope(%s) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	// Picked cells need a spatial-index source.
	sc, err = ParseScope(nil, "", json.RawMessage(`{"geom":{"indexes":["8a2a1072b59ffff"],"type":"h3"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build("formula", json.RawMessage(`{}`), stores(), sc, Limits{}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("indexes on a geometry source: %v, want ErrNotSupported", err)
	}
	// A spatial filter on a column that is not a geometry.
	sc, _ = ParseScope(nil, "", json.RawMessage(`{"name":`+poly+`}`), "")
	if _, err := Build("formula", json.RawMessage(`{}`), stores(), sc, Limits{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("spatial filter on name: %v, want ErrInvalid", err)
	}
	// SRID 0: the polygon is taken as is.
	src := stores()
	src.Geoms[0].SRID = 0
	sc, _ = ParseScope(nil, "", json.RawMessage(`{"geom":`+poly+`}`), "")
	if got := build(t, "formula", `{}`, src, sc).Statements[0].SQL; !strings.Contains(got, "ST_SetSRID(ST_GeomFromGeoJSON($1::text), 0)") {
		t.Errorf("SRID 0: %s", got)
	}
}

func TestBuildErrors(t *testing.T) {
	scope := func(filters string) Scope {
		sc, err := ParseScope(json.RawMessage(filters), "", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	tests := []struct {
		name, model, params string
		scope               Scope
		want                error
		column              string
	}{
		{name: "unknown model", model: "pie", params: `{}`, want: ErrUnknownModel},
		{name: "params not an object", model: "formula", params: `[]`, want: ErrInvalid},
		{name: "params missing", model: "formula", params: ``, want: ErrInvalid},
		{name: "bad field type", model: "formula", params: `{"column":1}`, want: ErrInvalid},
		{name: "unknown column", model: "formula", params: `{"column":"nope","operation":"sum"}`, want: &ColumnError{}, column: "nope"},
		{name: "unknown filter column", model: "formula", params: `{}`, scope: scope(`{"nope":{"in":{"values":[1]}}}`), want: &ColumnError{}, column: "nope"},
		{name: "unknown column in expression", model: "formula", params: `{"operation":"custom","operationExp":"sum(nope)"}`, want: &ColumnError{}, column: "nope"},
		{name: "two expressions", model: "formula", params: `{"operation":"custom","operationExp":"sum(revenue), count(*)"}`},
		{name: "expression with a subquery", model: "formula", params: `{"operation":"custom","operationExp":"(SELECT 1)"}`},
		{name: "expression calling a function", model: "formula", params: `{"operation":"custom","operationExp":"max(pg_sleep(1))"}`},
		{name: "bare column", model: "formula", params: `{"operation":"custom","operationExp":"revenue"}`},
		{name: "bad operation", model: "formula", params: `{"column":"revenue","operation":"median"}`, want: ErrInvalid},
		{name: "avg of text", model: "formula", params: `{"column":"name","operation":"avg"}`, want: ErrInvalid},
		{name: "max of a boolean", model: "formula", params: `{"column":"open","operation":"max"}`, want: ErrInvalid},
		{name: "category without column", model: "category", params: `{"operation":"count"}`, want: ErrInvalid},
		{name: "category of a geometry", model: "category", params: `{"column":"geom"}`, want: ErrInvalid},
		{name: "bad orderBy", model: "category", params: `{"column":"name","orderBy":"random"}`, want: ErrInvalid},
		{name: "negative threshold", model: "category", params: `{"column":"name","othersThreshold":-1}`, want: ErrInvalid},
		{name: "no ticks", model: "histogram", params: `{"column":"revenue","ticks":[]}`, want: ErrInvalid},
		{name: "unsorted ticks", model: "histogram", params: `{"column":"revenue","ticks":[3,1]}`, want: ErrInvalid},
		{name: "histogram of text", model: "histogram", params: `{"column":"name","ticks":[1]}`, want: ErrInvalid},
		{name: "scatter of text", model: "scatterplot", params: `{"xAxisColumn":"name","yAxisColumn":"revenue"}`, want: ErrInvalid},
		{name: "scatter without y", model: "scatterplot", params: `{"xAxisColumn":"revenue"}`, want: ErrInvalid},
		{name: "timeseries of a number", model: "timeseries", params: `{"column":"revenue","stepSize":"day"}`, want: ErrInvalid},
		{name: "bad step", model: "timeseries", params: `{"column":"opened","stepSize":"decade"}`, want: ErrInvalid},
		{name: "bad multiplier", model: "timeseries", params: `{"column":"opened","stepSize":"day","stepMultiplier":0.5}`, want: ErrInvalid},
		{name: "bad sort", model: "table", params: `{"column":["name"],"sortBy":"geom"}`, want: ErrInvalid},
		{name: "bad direction", model: "table", params: `{"column":["name"],"sortDirection":"up"}`, want: ErrInvalid},
		{name: "negative offset", model: "table", params: `{"column":["name"],"offset":-1}`, want: ErrInvalid},
		{name: "huge limit", model: "table", params: `{"column":["name"],"limit":5000}`, want: ErrInvalid},
		{name: "no aggregations", model: "aggregations", params: `{}`, want: ErrInvalid},
		{name: "custom in a list", model: "aggregations", params: `{"aggregations":[{"column":"revenue","operation":"custom"}]}`, want: ErrInvalid},
		{name: "repeated alias", model: "aggregations", params: `{"aggregations":[{"column":"revenue","operation":"sum","alias":"a"},{"column":"revenue","operation":"avg","alias":"a"}]}`, want: ErrInvalid},
		{name: "featureIds not ids", model: "formula", params: `{"featureIds":["a"],"geometryType":"points"}`, want: ErrInvalid},
		{name: "featureIds without geometryType", model: "formula", params: `{"featureIds":["0123456789abcdef"]}`, want: ErrInvalid},
		{name: "pick without featureIds", model: "pick", params: `{"columns":["name"]}`, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.model, json.RawMessage(tt.params), stores(), tt.scope, Limits{MaxRows: 1000})
			if err == nil {
				t.Fatalf("Build(%s, %s) succeeded, want an error", tt.model, tt.params)
			}
			switch want := tt.want.(type) {
			case nil: // any client error of aggexp's
			case *ColumnError:
				var ce *ColumnError
				if !errors.As(err, &ce) || ce.Name != tt.column || !errors.Is(err, catalog.ErrUnknownColumn) {
					t.Errorf("error = %v, want a ColumnError for %q", err, tt.column)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("error = %v, want %v", err, want)
				}
			}
		})
	}
	if _, err := ParseScope(nil, "xor", nil, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("filtersLogicalOperator xor: %v", err)
	}
	sc, err := ParseScope(json.RawMessage(`"{\"name\":{\"in\":{\"values\":[\"a\"]}},\"size_m2\":{\"between\":{\"values\":[[1,2]]}}}"`), "OR", nil, "")
	if err != nil || !sc.Or || len(sc.Filters) != 2 {
		t.Fatalf("ParseScope of GET-encoded filters = %+v, %v", sc, err)
	}
	if got := build(t, "formula", `{}`, stores(), sc).Statements[0].SQL; !strings.Contains(got, `WHERE (g."name" = ANY($1::text[]) OR (g."size_m2" >= $2::float8 AND g."size_m2" <= $3::float8))`) {
		t.Errorf("OR filters: %s", got)
	}
}

func TestResponses(t *testing.T) {
	ts := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, model, params string
		res                 []Result
		want                string
	}{
		{"formula", "formula", `{}`, []Result{{Columns: []string{"value"}, Rows: [][]any{{int64(8142)}}}}, `{"rows":[{"value":8142}]}`},
		{"category", "category", `{"column":"storetype"}`,
			[]Result{{Columns: []string{"name", "value"}, Rows: [][]any{{"Supermarket", int64(120)}, {nil, int64(3)}}}},
			`{"rows":[{"name":"Supermarket","value":120},{"name":null,"value":3}]}`},
		{"category others", "category", `{"column":"storetype","othersThreshold":1}`,
			[]Result{{Columns: []string{"name", "value", "rn"}, Rows: [][]any{{nil, int64(12), int64(0)}, {"Supermarket", int64(120), int64(1)}}}},
			`{"rows":[{"name":"Supermarket","value":120}],"metadata":{"others":12}}`},
		{"histogram", "histogram", `{"column":"revenue","ticks":[1,2]}`,
			[]Result{{Columns: []string{"tick", "value"}, Rows: [][]any{{int32(0), int64(12)}, {int32(2), int64(7)}}}},
			`{"rows":[{"tick":0,"value":12},{"tick":2,"value":7}]}`},
		{"range of timestamps", "range", `{"column":"opened"}`,
			[]Result{{Columns: []string{"min", "max"}, Rows: [][]any{{ts, ts.Add(time.Hour)}}}},
			`{"rows":[{"min":"2024-02-01T00:00:00.000Z","max":"2024-02-01T01:00:00.000Z"}]}`},
		{"timeseries", "timeseries", `{"column":"opened","stepSize":"month"}`,
			[]Result{{Columns: []string{"name", "value"}, Rows: [][]any{{ts, int64(29)}}}},
			`{"rows":[{"name":"2024-02-01T00:00:00.000Z","value":29}],"metadata":{"categories":[]}}`},
		{"timeseries split", "timeseries", `{"column":"opened","stepSize":"month","splitByCategory":"storetype"}`,
			[]Result{{Columns: []string{"category"}, Rows: [][]any{{"b"}, {"a"}}},
				{Columns: []string{"name", "category", "value"}, Rows: [][]any{{ts, "a", int64(1)}, {ts, "b", int64(2)}}}},
			`{"rows":[{"name":"2024-02-01T00:00:00.000Z","category":"a","value":1},{"name":"2024-02-01T00:00:00.000Z","category":"b","value":2}],"metadata":{"categories":["b","a"]}}`},
		{"table", "table", `{"column":["name","revenue"]}`,
			[]Result{{Columns: []string{"total"}, Rows: [][]any{{int64(8142)}}}, {Columns: []string{"name", "revenue"}, Rows: [][]any{{"Store 1", 1200.5}}}},
			`{"rows":[{"name":"Store 1","revenue":1200.5}],"metadata":{"total":8142}}`},
		{"table of big integers", "table", `{"column":["name","revenue"]}`,
			[]Result{{Columns: []string{"total"}, Rows: [][]any{{int64(3)}}}, {Columns: []string{"name", "revenue"}, Rows: [][]any{
				{int64(5256684166837174271), int64(1<<53 - 1)}, {int64(-(1 << 53)), uint64(1 << 63)}, {[]any{int64(1 << 60)}, int64(-(1<<53 - 1))}}}},
			`{"rows":[{"name":"5256684166837174271","revenue":9007199254740991},{"name":"-9007199254740992","revenue":"9223372036854775808"},` +
				`{"name":["1152921504606846976"],"revenue":-9007199254740991}],"metadata":{"total":3}}`},
		{"empty table page", "table", `{"column":["name"]}`,
			[]Result{{Columns: []string{"total"}, Rows: [][]any{{int64(0)}}}, {Columns: []string{"name"}}},
			`{"rows":[],"metadata":{"total":0}}`},
		{"aggregations", "aggregations", `{"aggregations":"sum(revenue) AS Total, count(*) AS n"}`,
			[]Result{{Columns: []string{"Total", "n"}, Rows: [][]any{{5.2e7, int64(8142)}}}},
			`{"rows":[{"Total":52000000,"n":8142}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := build(t, tt.model, tt.params, stores(), Scope{})
			body, err := p.Response(tt.res)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("body:\n got %s\nwant %s", b, tt.want)
			}
		})
	}

	// Too many categories or time steps.
	p, _ := Build("category", json.RawMessage(`{"column":"name"}`), stores(), Scope{}, Limits{MaxRows: 1})
	if _, err := p.Response([]Result{{Columns: []string{"name", "value"}, Rows: [][]any{{"a", 1}, {"b", 1}}}}); !errors.Is(err, ErrTooManyRows) {
		t.Errorf("2 categories with MaxRows 1: %v", err)
	}
	// NaN becomes null.
	p = build(t, "formula", `{}`, stores(), Scope{})
	body, _ := p.Response([]Result{{Columns: []string{"value"}, Rows: [][]any{{nanValue()}}}})
	if b, err := json.Marshal(body); err != nil || string(b) != `{"rows":[{"value":null}]}` {
		t.Errorf("NaN: %s, %v", b, err)
	}
}

func TestStats(t *testing.T) {
	sc, _ := ParseScope(json.RawMessage(`{"storetype":{"in":{"values":["a"]}}}`), "", nil, "")
	tests := []struct {
		name, column string
		sql          []string
		args         [][]any
		res          []Result
		want         string
	}{
		{
			name: "extent in another SRID", column: "Area",
			sql:  []string{`SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Transform(ST_SetSRID(ST_Extent(g."Area")::geometry, $2::int), 4326) AS e FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[]))) s`},
			args: [][]any{{[]string{"a"}, int32(3857)}},
			res:  []Result{{Rows: [][]any{{-200.0, 1.0, 2.0, 95.0}}}},
			want: `{"attribute":"Area","extent":{"xmax":2,"xmin":-180,"ymax":90,"ymin":1},"type":"Geometry"}`,
		},
		{
			name: "empty extent", column: "geom",
			sql:  []string{`SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Transform(ST_SetSRID(ST_Extent(g."geom")::geometry, $2::int), 4326) AS e FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[]))) s`},
			args: [][]any{{[]string{"a"}, int32(4326)}},
			res:  []Result{{Rows: [][]any{{nil, nil, nil, nil}}}},
			want: `{"attribute":"geom","extent":{"xmax":null,"xmin":null,"ymax":null,"ymin":null},"type":"Geometry"}`,
		},
		{
			name: "string", column: "storetype",
			sql: []string{`SELECT count(g."storetype") FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[]))`,
				`SELECT g."storetype"::text AS category, count(*) AS frequency FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[])) AND g."storetype" IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2`},
			args: [][]any{{[]string{"a"}}, {[]string{"a"}, int64(MaxStatsCategories)}},
			res:  []Result{{Rows: [][]any{{int64(3)}}}, {Columns: []string{"category", "frequency"}, Rows: [][]any{{"a", int64(3)}}}},
			want: `{"attribute":"storetype","categories":[{"category":"a","frequency":3}],"count":3,"type":"String"}`,
		},
		{
			name: "timestamp", column: "opened",
			sql:  []string{`SELECT count(g."opened"), min(g."opened"), max(g."opened") FROM "public"."Stores" g WHERE (g."storetype" = ANY($1::text[]))`},
			args: [][]any{{[]string{"a"}}},
			res:  []Result{{Rows: [][]any{{int64(2), time.Date(2001, 3, 4, 0, 0, 0, 0, time.UTC), time.Date(2023, 11, 30, 0, 0, 0, 0, time.UTC)}}}},
			want: `{"attribute":"opened","count":2,"max":"2023-11-30T00:00:00.000Z","min":"2001-03-04T00:00:00.000Z","type":"Timestamp"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Stats(stores(), sc, tt.column)
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range p.Statements {
				if st.SQL != tt.sql[i] {
					t.Errorf("statement %d:\n got %s\nwant %s", i, st.SQL, tt.sql[i])
				}
				if !reflect.DeepEqual(st.Args, tt.args[i]) {
					t.Errorf("statement %d args = %#v, want %#v", i, st.Args, tt.args[i])
				}
			}
			body, err := p.Response(tt.res)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := json.Marshal(body); string(b) != tt.want {
				t.Errorf("body:\n got %s\nwant %s", b, tt.want)
			}
		})
	}

	// Numbers: quantiles for 2…20 buckets from one sorted pass.
	p, err := Stats(stores(), Scope{}, "visits")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Statements[0].SQL; got != `SELECT count(g."visits"), min(g."visits")::float8, max(g."visits")::float8, avg(g."visits")::float8, sum(g."visits")::float8,`+
		` percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY g."visits"::float8) FROM "public"."Stores" g` {
		t.Errorf("number stats SQL: %s", got)
	}
	fr := p.Statements[0].Args[0].([]float64)
	breaks := make([]any, len(fr))
	for i, f := range fr {
		breaks[i] = f * 100 // the value at fraction f
	}
	body, err := p.Response([]Result{{Rows: [][]any{{int64(101), 0.0, 100.0, 50.0, 5050.0, breaks}}}})
	if err != nil {
		t.Fatal(err)
	}
	q := body.(map[string]any)["quantiles"].(map[string][]float64)
	if len(q) != MaxQuantiles-MinQuantiles+1 || !reflect.DeepEqual(q["4"], []float64{0, 25, 50, 75, 100}) || len(q["20"]) != 21 || math.Abs(q["3"][1]-100.0/3) > 1e-9 {
		t.Errorf("quantiles = %v", q)
	}

	if _, err := Stats(stores(), Scope{}, "nope"); !errors.Is(err, catalog.ErrUnknownColumn) {
		t.Errorf("unknown column: %v", err)
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}
