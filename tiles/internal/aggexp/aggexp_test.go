package aggexp

import (
	"context"
	"errors"
	"testing"

	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
)

var cols = map[string]catalog.Column{
	"pop":  {Name: "pop", Type: catalog.TypeNumber},
	"name": {Name: "name", Type: catalog.TypeString},
	"ok":   {Name: "ok", Type: catalog.TypeBoolean},
	"Area": {Name: "Area", Type: catalog.TypeNumber},
	"geom": {Name: "geom", Type: catalog.TypeGeometry},
}

func lookup(n string) (catalog.Column, bool) { c, ok := cols[n]; return c, ok }

func TestParse(t *testing.T) {
	tests := []struct {
		in    string
		want  []string // SQL AS alias
		types []catalog.Type
	}{
		{"sum(pop) AS total", []string{`(sum(g."pop"))::float8 AS total`}, []catalog.Type{catalog.TypeNumber}},
		{"count(*) n, avg(pop) as mean", []string{`(count(*))::int8 AS n`, `(avg(g."pop"))::float8 AS mean`},
			[]catalog.Type{catalog.TypeNumber, catalog.TypeNumber}},
		{"1 AS __aggregationValue", []string{`(1)::float8 AS __aggregationValue`}, []catalog.Type{catalog.TypeNumber}},
		{`min(name) AS first, bool_or(ok) AS any_ok`, []string{`(min(g."name"))::text AS first`, `bool_or(g."ok") AS any_ok`},
			[]catalog.Type{catalog.TypeString, catalog.TypeBoolean}},
		{`sum(pop) / count(DISTINCT name) AS "Per Name"`, []string{`(sum(g."pop") / nullif(count(DISTINCT g."name"), 0)::float8)::float8 AS Per Name`},
			[]catalog.Type{catalog.TypeNumber}},
		{`round(coalesce(max("Area"), 0) * -2.5e1) AS r`, []string{`(round(coalesce(max(g."Area"), 0) * -2.5e1))::float8 AS r`},
			[]catalog.Type{catalog.TypeNumber}},
		{"SUM(POP) AS t", []string{`(sum(g."pop"))::float8 AS t`}, []catalog.Type{catalog.TypeNumber}},
	}
	for _, tt := range tests {
		items, err := Parse(tt.in, lookup)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if len(items) != len(tt.want) {
			t.Errorf("Parse(%q) = %d items, want %d", tt.in, len(items), len(tt.want))
			continue
		}
		for i, it := range items {
			if got := it.Agg.SQL + " AS " + it.Agg.Alias; got != tt.want[i] {
				t.Errorf("Parse(%q)[%d] = %s, want %s", tt.in, i, got, tt.want[i])
			}
			if it.Type != tt.types[i] {
				t.Errorf("Parse(%q)[%d] type = %s, want %s", tt.in, i, it.Type, tt.types[i])
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"pop AS p", ErrInvalid},                                       // bare column outside aggregate
		{"sum(pop)", ErrInvalid},                                       // no alias
		{"sum(pop) AS a, count(*) AS a", ErrInvalid},                   // repeated alias
		{"sum(pop) AS __mvt_geom", ErrInvalid},                         // reserved
		{"sum(pop) AS _carto_point_density", ErrInvalid},               // reserved
		{"sum(nope) AS a", catalog.ErrUnknownColumn},                   // unknown column
		{"pg_read_file('/etc/passwd') AS a", ErrInvalid},               // function not allowed
		{"(SELECT max(x) FROM secret) AS a", catalog.ErrUnknownColumn}, // SELECT is taken as a column name
		{"sum(pop); DROP TABLE t AS a", ErrInvalid},                    // ';' not in the grammar
		{"sum(pop) AS a -- comment", ErrInvalid},
		{"sum(sum(pop)) AS a", ErrInvalid}, // nested aggregate
		{"max(geom) AS a", ErrInvalid},     // geometry
		{"sum(pop AS a", ErrInvalid},
		{"sum(*) AS a", ErrInvalid},
		{"'x' AS a", ErrInvalid}, // string literals are not in the grammar
		{`sum("pop) AS a`, ErrInvalid},
		{"coalesce(pop, 0) AS a", ErrInvalid}, // bare column inside a scalar
		{"1.2.3 AS a", ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := Parse(tt.in, lookup); !errors.Is(err, tt.want) {
			t.Errorf("Parse(%q) error = %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestParsedSQLRuns(t *testing.T) {
	db := pgtest.Data(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE t (pop int, name text, ok bool, "Area" numeric, geom geometry);
		INSERT INTO t VALUES (10, 'a', true, 1.5, NULL), (30, 'b', false, 2, NULL), (20, 'b', NULL, NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	items, err := Parse(`sum(pop) AS total, count(*) AS n, sum(pop) / count(DISTINCT name) AS per, min(name) AS first, bool_or(ok) AS any, round(max("Area") * 2) AS a2`, lookup)
	if err != nil {
		t.Fatal(err)
	}
	sql := "SELECT "
	for i, it := range items {
		if i > 0 {
			sql += ", "
		}
		sql += it.Agg.SQL
	}
	var total, per, a2 float64
	var n int64
	var first string
	var anyOK bool
	if err := db.Pool.QueryRow(ctx, sql+" FROM t g").Scan(&total, &n, &per, &first, &anyOK, &a2); err != nil {
		t.Fatalf("running %s: %v", sql, err)
	}
	if total != 60 || n != 3 || per != 30 || first != "a" || !anyOK || a2 != 4 {
		t.Errorf("got total=%v n=%v per=%v first=%v any=%v a2=%v", total, n, per, first, anyOK, a2)
	}
}
