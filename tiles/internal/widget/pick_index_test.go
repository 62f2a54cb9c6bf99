package widget

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// h3Places is an H3 table source: hex text cells at resolution 10.
func h3Places() *Source {
	return &Source{
		Schema: "public", Table: "places",
		Columns: []catalog.Column{
			{Name: "h3", Type: catalog.TypeString, PGType: "text"},
			{Name: "name", Type: catalog.TypeString, PGType: "text"},
			{Name: "pop", Type: catalog.TypeNumber, PGType: "double precision"},
		},
		RowIDs: true,
		Index:  &Index{Kind: spatialindex.H3, Column: "h3", Text: true, DataRes: 10},
	}
}

// TestPickCells: featureIds on a spatial-index source are cells of its
// kind, at its resolution or coarser, hex or decimal; pick joins the rows
// to them in request order, other models keep the rows in them.
func TestPickCells(t *testing.T) {
	const cell = "8a2a1072b59ffff" // resolution 10
	c, err := spatialindex.H3.Parse(cell)
	if err != nil {
		t.Fatal(err)
	}
	parent := spatialindex.H3.Parent(c, 8)
	child, _ := spatialindex.H3.ChildRange(c, 11)
	ids := []string{spatialindex.Hex(parent), strconv.FormatUint(c, 10), spatialindex.Hex(parent)}
	params, _ := json.Marshal(map[string]any{"columns": []string{"name"}, "dataType": "polygons", "featureIds": ids})

	p := build(t, "pick", string(params), h3Places(), Scope{})
	st := p.Statements[0]
	want := `SELECT __pick.id AS _carto_feature_id, g."name"::text AS "name", count(*) OVER () AS __total FROM "public"."places" g` +
		` JOIN unnest($1::int8[], $2::int8[], $3::text[]) WITH ORDINALITY AS __pick(lo, hi, id, n)` +
		` ON ('x' || lpad(g."h3", 16, '0'))::bit(64)::int8 BETWEEN __pick.lo AND __pick.hi` +
		` WHERE ($4::text::int8multirange @> ('x' || lpad(g."h3", 16, '0'))::bit(64)::int8)` +
		` ORDER BY __pick.n, ('x' || lpad(g."h3", 16, '0'))::bit(64)::int8, g.ctid LIMIT $5 OFFSET $6`
	if st.SQL != want {
		t.Errorf("pick SQL:\n got %s\nwant %s", st.SQL, want)
	}
	plo, phi := spatialindex.H3.ChildRange(parent, 10)
	if !reflect.DeepEqual(st.Args[:3], []any{[]int64{int64(plo), int64(c)}, []int64{int64(phi), int64(c)}, ids[:2]}) {
		t.Errorf("pick args = %v: want the parent's range then the cell, the ids once each", st.Args[:3])
	}
	if st.Args[4] != int64(DefaultPickLimit) || st.Args[5] != int64(0) {
		t.Errorf("limit, offset = %v, %v", st.Args[4], st.Args[5])
	}

	// Other models: the rows in the cells.
	p = build(t, "formula", `{"operation":"count","featureIds":["`+cell+`"],"geometryType":"polygons"}`, h3Places(), Scope{})
	if got := p.Statements[0].SQL; !strings.HasSuffix(got, `WHERE ($1::text::int8multirange @> ('x' || lpad(g."h3", 16, '0'))::bit(64)::int8)`) ||
		p.Statements[0].Args[0] != "{["+strconv.FormatInt(int64(c), 10)+","+strconv.FormatInt(int64(c), 10)+"]}" {
		t.Errorf("formula over a cell: %s %v", got, p.Statements[0].Args)
	}

	// Aggregated: one row per cell.
	p = build(t, "pick", `{"featureIds":["`+cell+`"],"aggregationExp":"sum(pop) AS pop, count(*) AS n"}`, h3Places(), Scope{})
	if got := p.Statements[0].SQL; !strings.Contains(got, `SELECT __pick.id AS _carto_feature_id, (sum(g."pop"))::float8 AS "pop", (count(*))::int8 AS "n"`) ||
		!strings.HasSuffix(got, "GROUP BY __pick.n, __pick.id ORDER BY __pick.n LIMIT $5") {
		t.Errorf("aggregated pick: %s", got)
	}

	for _, tt := range []struct{ name, params string }{
		{"not hex", `{"featureIds":["zz"]}`},
		{"not a cell", `{"featureIds":["8a2a1072b59fff0"]}`},
		{"a quadbin", `{"featureIds":["480fffffffffffff"]}`},
		{"finer than the data", `{"featureIds":["` + spatialindex.Hex(child) + `"]}`},
		{"a geometry hash", `{"featureIds":["0123456789abcdef"]}`},
		{"reserved alias", `{"featureIds":["` + cell + `"],"aggregationExp":"count(*) AS _carto_feature_id"}`},
		{"unknown column", `{"featureIds":["` + cell + `"],"columns":["nope"]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build("pick", json.RawMessage(tt.params), h3Places(), Scope{}, Limits{})
			var ce *ColumnError
			if !errors.Is(err, ErrInvalid) && !errors.As(err, &ce) {
				t.Errorf("Build(pick, %s) = %v, want ErrInvalid", tt.params, err)
			}
		})
	}
	_, err = Build("pick", json.RawMessage(`{"featureIds":["`+spatialindex.Hex(child)+`"]}`), h3Places(), Scope{}, Limits{})
	if err == nil || !strings.Contains(err.Error(), "resolution 11, finer than the source's cells (resolution 10)") {
		t.Errorf("finer cell: %v", err)
	}
}
