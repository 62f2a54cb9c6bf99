package main

// The quadbinTableSource part of TestCartoClientCompat: a quadbin table
// made from the countries, and what carto.mjs reports of it.

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/jackc/pgx/v5"
)

// compatQuadbinTable holds each country's quadbin at level 8 (of a point
// on its surface), as a bigint column quadbin.
const compatQuadbinTable = "public.countries_qb"

// compatQuadbinLevel is the data's quadbin level.
const compatQuadbinLevel = 8

// loadQuadbinTable creates compatQuadbinTable, computing the cells in Go
// (CARTO's quadbin layout), and returns its row count.
func loadQuadbinTable(t *testing.T, u *upServer) int {
	t.Helper()
	ctx := context.Background()
	rows, err := u.data.Pool.Query(ctx, "SELECT name, ST_X(p), ST_Y(p) FROM (SELECT name, ST_PointOnSurface(geom) AS p FROM public.countries) s")
	if err != nil {
		t.Fatal(err)
	}
	var data [][]any
	for rows.Next() {
		var name string
		var lon, lat float64
		if err := rows.Scan(&name, &lon, &lat); err != nil {
			t.Fatal(err)
		}
		data = append(data, []any{int64(quadbinAt(lon, lat, compatQuadbinLevel)), name})
	}
	if err := rows.Err(); err != nil || len(data) == 0 {
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
	return len(data)
}

// quadbinAt is the quadbin of the Web Mercator tile at level z holding
// lon/lat: header 0x4, mode 1, z in bits 52–56, interleaved y/x bits, ones.
func quadbinAt(lon, lat float64, z uint32) uint64 {
	n := float64(uint64(1) << z)
	lat = math.Max(-85.0511, math.Min(85.0511, lat))
	fx := (lon + 180) / 360 * n
	s := math.Sin(lat * math.Pi / 180)
	fy := (0.5 - math.Log((1+s)/(1-s))/(4*math.Pi)) * n
	x := uint32(math.Max(0, math.Min(n-1, math.Floor(fx))))
	y := uint32(math.Max(0, math.Min(n-1, math.Floor(fy))))
	var xy uint64
	for i := range z {
		xy = xy<<2 | uint64(y>>(z-1-i)&1)<<1 | uint64(x>>(z-1-i)&1)
	}
	return 0x4000000000000000 | 1<<59 | uint64(z)<<52 | xy<<(52-2*z) | (uint64(1)<<52-1)>>(2*z)
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
