//go:build cgo

package tiles

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/uber/h3-go/v4"

	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// idxPlace is a row of idx_places as the pick tests read it.
type idxPlace struct {
	id      int64
	qb, h3  uint64
	pop     float64
	country string
}

// idxPicked is the featureIds of the pick tests on s: its two fullest
// cells within where, the second as a decimal id, then the first one's
// parent (quadbin level 5, H3 resolution 2), so that its rows come twice;
// and the cell of each id.
func idxPicked(t *testing.T, e *env, s idxSource, where string) (ids []string, cells []uint64) {
	t.Helper()
	col := "quadbin"
	if s.sdt == "h3" {
		col = "h3int"
	}
	rows, err := e.db.Pool.Query(context.Background(), "SELECT "+col+" FROM idx_places WHERE "+s.where+" AND "+where+
		" GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c int64
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cells = append(cells, uint64(c))
	}
	if err := rows.Err(); err != nil || len(cells) != 2 {
		t.Fatalf("%d cells, %v", len(cells), err)
	}
	kind, res := spatialindex.Quadbin, 5
	if s.sdt == "h3" {
		kind, res = spatialindex.H3, 2
	}
	cells = append(cells, kind.Parent(cells[0], res))
	return []string{spatialindex.Hex(cells[0]), fmt.Sprint(cells[1]), spatialindex.Hex(cells[2])}, cells
}

// idxRows reads idx_places WHERE where.
func idxRows(t *testing.T, e *env, where string) []idxPlace {
	t.Helper()
	rows, err := e.db.Pool.Query(context.Background(), "SELECT id, quadbin, h3int, coalesce(pop_max, 0), adm0name FROM idx_places WHERE "+where)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []idxPlace
	for rows.Next() {
		var p idxPlace
		var qb, hc int64
		if err := rows.Scan(&p.id, &qb, &hc, &p.pop, &p.country); err != nil {
			t.Fatal(err)
		}
		p.qb, p.h3 = uint64(qb), uint64(hc)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// in reports whether p's cell is cell or one of its descendants.
func (p idxPlace) in(kind spatialindex.Kind, cell uint64) bool {
	c := p.qb
	if kind == spatialindex.H3 {
		c = p.h3
	}
	return kind.Parent(c, kind.Res(cell)) == cell
}

// testIndexPick: pick on quadbin and H3 sources takes cell ids as
// featureIds (hex or decimal, at the data resolution or coarser) and
// returns the rows in each cell, in request order, tagged with the id as
// sent; with aggregationExp, one aggregated row per cell, equal to the
// tile's cell; featureIds restrict the other models to the cells' rows;
// bad ids are 400s.
func testIndexPick(t *testing.T, e *env) {
	for _, s := range idxSources() {
		kind := spatialindex.Quadbin
		if s.sdt == "h3" {
			kind = spatialindex.H3
		}
		scopes := idxScopes()[:2] // none, and a filter on the country
		ids, cells := idxPicked(t, e, s, scopes[1].where)
		for _, sc := range scopes {
			t.Run(s.name+"/"+sc.name, func(t *testing.T) {
				places := idxRows(t, e, s.where+" AND "+sc.where)
				r := wreq{typ: s.typ, source: s.src, queryParams: s.qp, filters: sc.filters, sdt: s.sdt, sdc: s.sdc}

				// pick: rows, grouped by picked id in request order.
				r.params = map[string]any{"columns": []string{"id", "pop_max"}, "dataType": "polygons", "featureIds": ids,
					"z": 3, "limit": 1000, "tileResolution": 0.5}
				rows, meta := rowsOf(t, e.model("pick", r))
				var want []string
				sums := map[string]float64{}
				for i, c := range cells {
					for _, p := range places {
						if p.in(kind, c) {
							want = append(want, fmt.Sprintf("%s/%d", ids[i], p.id))
							sums[ids[i]] += p.pop
						}
					}
				}
				var got []string
				gotSums := map[string]float64{}
				for _, row := range rows {
					id, _ := row["_carto_feature_id"].(string)
					got = append(got, fmt.Sprintf("%s/%v", id, row["id"]))
					gotSums[id] += num(row["pop_max"])
					if len(row) != 3 {
						t.Errorf("row %v: want _carto_feature_id, id, pop_max", row)
					}
				}
				if !slices.Equal(groups(got), groups(want)) || !sameSet(got, want) || len(want) < 4 {
					t.Errorf("pick rows (id/place):\n got %v\nwant %v", got, want)
				}
				for id, w := range sums {
					if !near(gotSums[id], w) {
						t.Errorf("pick: sum(pop_max) in %s = %v, want %v", id, gotSums[id], w)
					}
				}
				if num(meta["total"]) != float64(len(want)) {
					t.Errorf("pick total = %v, want %d", meta["total"], len(want))
				}
				// A page.
				r.params.(map[string]any)["limit"], r.params.(map[string]any)["offset"] = 2, 1
				if rows, meta := rowsOf(t, e.model("pick", r)); len(rows) != 2 || num(meta["total"]) != float64(len(want)) ||
					rows[0]["_carto_feature_id"] != strings.Split(want[1], "/")[0] {
					t.Errorf("pick page: %v %v", rows, meta)
				}

				// pick with aggregationExp: one row per cell.
				r.params = map[string]any{"dataType": "polygons", "featureIds": ids, "aggregationExp": "sum(pop_max) AS s, count(*) AS n"}
				rows, _ = rowsOf(t, e.model("pick", r))
				if len(rows) != len(ids) {
					t.Fatalf("aggregated pick: %d rows, want %d: %v", len(rows), len(ids), rows)
				}
				for i, row := range rows {
					n := 0
					for _, p := range places {
						if p.in(kind, cells[i]) {
							n++
						}
					}
					if row["_carto_feature_id"] != ids[i] || !near(num(row["s"]), sums[ids[i]]) || num(row["n"]) != float64(n) || n == 0 {
						t.Errorf("aggregated pick row %d = %v, want %s: s %v n %d", i, row, ids[i], sums[ids[i]], n)
					}
				}

				// featureIds on formula and category: the rows in any of the
				// cells, once.
				var sum float64
				countries := map[string]float64{}
				for _, p := range places {
					if slices.ContainsFunc(cells, func(c uint64) bool { return p.in(kind, c) }) {
						sum += p.pop
						countries[p.country]++
					}
				}
				r.params = map[string]any{"column": "pop_max", "operation": "sum", "featureIds": ids, "geometryType": "polygons"}
				if got := num(value1(t, e.model("formula", r), "value")); !near(got, sum) {
					t.Errorf("formula over featureIds = %v, want %v", got, sum)
				}
				r.params = map[string]any{"column": "adm0name", "operation": "count", "featureIds": ids, "geometryType": "polygons"}
				rows, _ = rowsOf(t, e.model("category", r))
				if got := jsonPairs(rows, "name", "value"); !samePairs(got, countries) {
					t.Errorf("category over featureIds = %v, want %v", got, countries)
				}
			})
		}
	}
	t.Run("tile cells", func(t *testing.T) { testIndexPickTile(t, e) })
	t.Run("errors", func(t *testing.T) { testIndexPickErrors(t, e) })
}

// groups lists the id parts of "id/place" in order, once per run.
func groups(l []string) []string {
	var out []string
	for _, s := range l {
		g, _, _ := strings.Cut(s, "/")
		if len(out) == 0 || out[len(out)-1] != g {
			out = append(out, g)
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// testIndexPickTile: the cells of a tile coarser than the data, picked
// with the tile's aggregationExp, hold what the tile says of them.
func testIndexPickTile(t *testing.T, e *env) {
	for _, tt := range []struct {
		sdt, sdc, tile string
	}{
		// Quadbin level 2 around Europe, cells at level 5 (data: 8).
		{"quadbin", "quadbin", spatialindex.Hex(spatialindex.QuadbinFromTile(2, 2, 1))},
		// H3 resolution 0 around Paris, cells at resolution 3 (data: 4).
		{"h3", "h3", h3.LatLngToCell(h3.NewLatLng(48.85, 2.35), 0).String()},
	} {
		t.Run(tt.sdt, func(t *testing.T) {
			const agg = "sum(pop_max) AS s, count(*) AS n"
			tmpl := e.tileTemplate(e.instantiate("table", e.all, "name", "idx_places", "spatialDataType", tt.sdt,
				"spatialDataColumn", tt.sdc, "aggregationExp", agg, "aggregationResLevel", "3"), e.all)
			cells := decodeIndexTile(t, e.get(expandCell(tmpl, tt.tile), bearer(e.all)))
			if len(cells) < 4 {
				t.Fatalf("tile %s: %d cells", tt.tile, len(cells))
			}
			var ids []string
			for c := range cells {
				ids = append(ids, spatialindex.Hex(c))
			}
			slices.Sort(ids)
			r := wreq{typ: "table", source: "idx_places", sdt: tt.sdt, sdc: tt.sdc,
				params: map[string]any{"dataType": "polygons", "featureIds": ids, "aggregationExp": agg}}
			rows, _ := rowsOf(t, e.model("pick", r))
			if len(rows) != len(ids) {
				t.Fatalf("%d rows for %d cells", len(rows), len(ids))
			}
			for i, row := range rows {
				c, _ := (map[string]spatialindex.Kind{"quadbin": spatialindex.Quadbin, "h3": spatialindex.H3})[tt.sdt].Parse(ids[i])
				if row["_carto_feature_id"] != ids[i] || !near(num(row["s"]), cells[c]["s"]) || num(row["n"]) != cells[c]["n"] {
					t.Errorf("cell %s: pick %v, tile %v", ids[i], row, cells[c])
				}
			}
		})
	}
}

// testIndexPickErrors: ids that are not cells of the source's kind, or
// finer than its cells, are 400s naming the id.
func testIndexPickErrors(t *testing.T, e *env) {
	var qb, hc int64
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT quadbin, h3int FROM idx_places LIMIT 1").Scan(&qb, &hc); err != nil {
		t.Fatal(err)
	}
	qFiner, _ := spatialindex.Quadbin.ChildRange(uint64(qb), idxQuadbinLevel+1)
	hFiner, _ := spatialindex.H3.ChildRange(uint64(hc), idxH3Res+1)
	for _, tt := range []struct {
		name, sdt, sdc, model, id, want string
	}{
		{"not hex", "h3", "h3", "pick", "zz", `\"zz\" is not a h3 cell id`},
		{"geometry hash on h3", "h3", "h3int", "pick", "0123456789abcdef", `\"0123456789abcdef\" is not a h3 cell id`},
		{"quadbin on h3", "h3", "h3", "formula", spatialindex.Hex(uint64(qb)), "is not a h3 cell id"},
		{"h3 on quadbin", "quadbin", "quadbin", "pick", spatialindex.Hex(uint64(hc)), "is not a quadbin cell id"},
		{"finer h3", "h3", "h3", "pick", spatialindex.Hex(hFiner), fmt.Sprintf("at resolution %d, finer than the source's cells (resolution %d)", idxH3Res+1, idxH3Res)},
		{"finer quadbin", "quadbin", "quadbin", "category", fmt.Sprint(qFiner), fmt.Sprintf("at resolution %d, finer than the source's cells (resolution %d)", idxQuadbinLevel+1, idxQuadbinLevel)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := wreq{typ: "table", source: "idx_places", sdt: tt.sdt, sdc: tt.sdc, params: map[string]any{
				"columns": []string{"name"}, "column": "name", "dataType": "polygons", "geometryType": "polygons", "featureIds": []string{tt.id}}}
			got := e.model(tt.model, r)
			if got.status != http.StatusBadRequest || !strings.Contains(string(got.body), "featureIds") || !strings.Contains(string(got.body), tt.want) {
				t.Errorf("%s %s: %d %s, want a 400 with %q", tt.model, tt.id, got.status, got.body, tt.want)
			}
		})
	}
}
