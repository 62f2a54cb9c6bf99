package main

// The quadbinTableSource part of TestCartoClientCompat: a quadbin table
// made from the countries, and what carto.mjs reports of it.

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
)

// compatQuadbinTable holds each country's quadbin at level 8 (of a point
// on its surface), as a bigint column quadbin.
const compatQuadbinTable = "public.countries_qb"

// compatQuadbinLevel is the data's quadbin level.
const compatQuadbinLevel = 8

// compatQuadbinQuery is the quadbinQuerySource of the widget checks.
const compatQuadbinQuery = "SELECT * FROM " + compatQuadbinTable

// loadQuadbinTable creates compatQuadbinTable, computing the cells in Go
// (CARTO's quadbin layout), and returns its row count and the rows whose
// tile envelope (ST_TileEnvelope) intersects compatEurope.
func loadQuadbinTable(t *testing.T, u *upServer) (rows, inEurope int) {
	t.Helper()
	ctx := context.Background()
	rs, err := u.data.Pool.Query(ctx, "SELECT name, ST_X(p), ST_Y(p) FROM (SELECT name, ST_PointOnSurface(geom) AS p FROM public.countries) s")
	if err != nil {
		t.Fatal(err)
	}
	var data [][]any
	var xs, ys []int32
	for rs.Next() {
		var name string
		var lon, lat float64
		if err := rs.Scan(&name, &lon, &lat); err != nil {
			t.Fatal(err)
		}
		x, y := tileAt(lon, lat, compatQuadbinLevel)
		xs, ys = append(xs, int32(x)), append(ys, int32(y))
		data = append(data, []any{int64(quadbinAt(lon, lat, compatQuadbinLevel)), name})
	}
	if err := rs.Err(); err != nil || len(data) == 0 {
		t.Fatalf("countries: %d, %v", len(data), err)
	}
	if _, err := u.data.Pool.Exec(ctx, "CREATE TABLE "+compatQuadbinTable+" (quadbin bigint NOT NULL, name text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.data.Pool.CopyFrom(ctx, pgx.Identifier{"public", "countries_qb"}, []string{"quadbin", "name"}, pgx.CopyFromRows(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.data.Pool.Exec(ctx, "CREATE INDEX ON "+compatQuadbinTable+" (quadbin)"); err != nil {
		t.Fatal(err)
	}
	err = u.data.Pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::int[], $2::int[]) AS c(x, y)
		WHERE ST_Intersects(ST_Transform(ST_TileEnvelope($3, x, y), 4326), ST_SetSRID(ST_GeomFromGeoJSON($4), 4326))`,
		xs, ys, compatQuadbinLevel, compatEurope).Scan(&inEurope)
	if err != nil {
		t.Fatal(err)
	}
	return len(data), inEurope
}

// quadbinAt is the quadbin of the Web Mercator tile at level z holding
// lon/lat: header 0x4, mode 1, z in bits 52–56, interleaved y/x bits, ones.
func quadbinAt(lon, lat float64, z uint32) uint64 {
	x, y := tileAt(lon, lat, z)
	var xy uint64
	for i := range z {
		xy = xy<<2 | uint64(y>>(z-1-i)&1)<<1 | uint64(x>>(z-1-i)&1)
	}
	return 0x4000000000000000 | 1<<59 | uint64(z)<<52 | xy<<(52-2*z) | (uint64(1)<<52-1)>>(2*z)
}

// tileAt is the Web Mercator tile at level z holding lon/lat.
func tileAt(lon, lat float64, z uint32) (x, y uint32) {
	n := float64(uint64(1) << z)
	lat = math.Max(-85.0511, math.Min(85.0511, lat))
	fx := (lon + 180) / 360 * n
	s := math.Sin(lat * math.Pi / 180)
	fy := (0.5 - math.Log((1+s)/(1-s))/(4*math.Pi)) * n
	x = uint32(math.Max(0, math.Min(n-1, math.Floor(fx))))
	y = uint32(math.Max(0, math.Min(n-1, math.Floor(fy))))
	return x, y
}

// passedCheck decodes carto.mjs's report.checks[check] into c, failing
// t unless the check passed.
func passedCheck(t *testing.T, out []byte, check string, c any) {
	t.Helper()
	var rep struct {
		Checks map[string]json.RawMessage `json:"checks"`
	}
	var status struct {
		OK      bool   `json:"ok"`
		Problem string `json:"problem"`
		Error   any    `json:"error"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("carto.mjs report: %v", err)
	}
	if err := json.Unmarshal(rep.Checks[check], &status); err != nil || !status.OK {
		t.Fatalf("%s: %v %s %v", check, err, status.Problem, status.Error)
	}
	if err := json.Unmarshal(rep.Checks[check], c); err != nil {
		t.Fatalf("%s: %v", check, err)
	}
}

// checkIndexWidgets checks carto.mjs's quadbinWidgets or h3Widgets: the
// counts the client got from the widgetSource of the table and query
// sources, against SQL (wantIn: the rows whose cell intersects
// compatEurope).
func checkIndexWidgets(t *testing.T, out []byte, check string, wantRows, wantIn int) {
	t.Helper()
	var c struct {
		Count, InPolygon, QueryInPolygon struct{ Value float64 }
		Categories                       int `json:"categories"`
	}
	passedCheck(t, out, check, &c)
	t.Logf("%s: count %v, in the polygon %v (query source %v), %d categories; SQL: %d rows, %d in the polygon",
		check, c.Count.Value, c.InPolygon.Value, c.QueryInPolygon.Value, c.Categories, wantRows, wantIn)
	if wantIn == 0 || wantIn == wantRows {
		t.Fatalf("test data: %d of %d rows in the polygon", wantIn, wantRows)
	}
	if c.Count.Value != float64(wantRows) || c.InPolygon.Value != float64(wantIn) || c.QueryInPolygon.Value != float64(wantIn) ||
		c.Categories != wantIn {
		t.Errorf("%s: count %v, in polygon %v (query %v), %d categories; want %d rows, %d in the polygon",
			check, c.Count.Value, c.InPolygon.Value, c.QueryInPolygon.Value, c.Categories, wantRows, wantIn)
	}
}

// checkQuadbinReport checks carto.mjs's quadbinTableSource: the TileJSON
// (scheme, {i} template with binary tiles) and the root cell's tile,
// whose cells are at level 0+4 and count every row once.
func checkQuadbinReport(t *testing.T, out []byte, wantRows int) {
	t.Helper()
	var rep struct {
		Checks struct {
			Q struct {
				OK            bool     `json:"ok"`
				Problem       string   `json:"problem"`
				Error         any      `json:"error"`
				Tiles         []string `json:"tiles"`
				FormatTiles   string   `json:"formatTiles"`
				Scheme        string   `json:"scheme"`
				SpatialIndex  string   `json:"spatialIndex"`
				MaxResolution int      `json:"maxresolution"`
				Schema        []string `json:"schema"`
				Tile          struct {
					Status      int                `json:"status"`
					ContentType string             `json:"contentType"`
					Scheme      int                `json:"scheme"`
					Cells       int                `json:"cells"`
					Resolutions []int              `json:"resolutions"`
					Sums        map[string]float64 `json:"sums"`
					Body        string             `json:"body"`
				} `json:"spatialTile"`
			} `json:"quadbinTableSource"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("carto.mjs report: %v", err)
	}
	c := rep.Checks.Q
	if !c.OK {
		t.Fatalf("quadbinTableSource: %s %v", c.Problem, c.Error)
	}
	if c.Scheme != "quadbin" || c.SpatialIndex != "quadbin" || c.FormatTiles != "binary" || c.MaxResolution != compatQuadbinLevel-4 ||
		len(c.Tiles) != 1 || len(c.Schema) != 2 || c.Schema[0] != "quadbin:bigint" || c.Schema[1] != "n:number" {
		t.Errorf("quadbinTableSource TileJSON: %+v", c)
	}
	tl := c.Tile
	if tl.Status != 200 || tl.ContentType != "application/vnd.carto-spatial-tile" || tl.Scheme != 1 {
		t.Fatalf("quadbin root tile: %+v", tl)
	}
	if tl.Cells < 10 || len(tl.Resolutions) != 1 || tl.Resolutions[0] != 4 || tl.Sums["n"] != float64(wantRows) {
		t.Errorf("quadbin root tile: %d cells at levels %v, sum(n) %v; want >= 10 cells at level 4 counting %d rows",
			tl.Cells, tl.Resolutions, tl.Sums["n"], wantRows)
	}
}

// quadbinHolds reports whether the quadbin id (decimal, as carto.mjs
// picked it) holds lon/lat.
func quadbinHolds(id string, lon, lat float64) bool {
	q, err := strconv.ParseUint(id, 10, 64)
	return err == nil && quadbinAt(lon, lat, uint32(q>>52&0x1f)) == q
}

// checkIndexPick checks carto.mjs's quadbinPick or h3Pick: getFeatures
// on the picked cell returns, tagged with its id, the names of the
// countries whose point on surface the cell holds (holds, with SQL's
// points), and every count — the tile's, featureIds on the table and the
// query source, the picked-cells spatial filter — is their number.
func checkIndexPick(t *testing.T, u *upServer, out []byte, check string, holds func(id string, lon, lat float64) bool) {
	t.Helper()
	var c struct {
		ID     string  `json:"id"`
		TileN  float64 `json:"tileN"`
		Picked struct {
			Rows     []map[string]any `json:"rows"`
			Metadata struct{ Total float64 }
		} `json:"picked"`
		Count, QueryCount, CellFilterCount struct{ Value float64 }
		Cells                              []struct{ Type, ID, Big string }
	}
	passedCheck(t, out, check, &c)
	if check == "quadbinPick" {
		// The cell ids reach the page exact: strings, not rounded numbers.
		rs, err := u.data.Pool.Query(context.Background(), "SELECT quadbin::text FROM "+compatQuadbinTable+" ORDER BY quadbin LIMIT 3")
		if err != nil {
			t.Fatal(err)
		}
		want, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, cell := range c.Cells {
			if cell.Type != "string" || cell.Big != cell.ID {
				t.Errorf("%s: table widget cell %+v, want a string BigInt reads as is", check, cell)
			}
			got = append(got, cell.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: table widget cells %q, want %q", check, got, want)
		}
	}

	rs, err := u.data.Pool.Query(context.Background(), "SELECT name, ST_X(p), ST_Y(p) FROM (SELECT name, ST_PointOnSurface(geom) AS p FROM public.countries) s")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rs.Next() {
		var name string
		var lon, lat float64
		if err := rs.Scan(&name, &lon, &lat); err != nil {
			t.Fatal(err)
		}
		if holds(c.ID, lon, lat) {
			want = append(want, name)
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.Picked.Rows {
		name, _ := r["name"].(string)
		got = append(got, name)
		if r["_carto_feature_id"] != c.ID || len(r) != 2 {
			t.Errorf("%s: row %v, want _carto_feature_id %s and name", check, r, c.ID)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	t.Logf("%s: cell %s, %v in the tile; getFeatures %q (total %v); counts %v, %v (query), %v (cell filter); SQL %q",
		check, c.ID, c.TileN, got, c.Picked.Metadata.Total, c.Count.Value, c.QueryCount.Value, c.CellFilterCount.Value, want)
	n := float64(len(want))
	if n == 0 || !slices.Equal(got, want) || c.Picked.Metadata.Total != n || c.TileN != n || c.Count.Value != n ||
		c.QueryCount.Value != n || c.CellFilterCount.Value != n {
		t.Errorf("%s: cell %s: getFeatures %q (total %v), tile %v, counts %v, %v, %v; want %q and %v everywhere",
			check, c.ID, got, c.Picked.Metadata.Total, c.TileN, c.Count.Value, c.QueryCount.Value, c.CellFilterCount.Value, want, n)
	}
}
