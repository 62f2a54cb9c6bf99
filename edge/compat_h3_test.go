//go:build cgo

package main

// The h3 sources of TestCartoClientCompat: an H3 table made from the
// countries (with h3-go, which is C), for widgets on h3 sources.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/uber/h3-go/v4"
)

// compatH3Table holds each country's H3 cell at resolution compatH3Res
// (of a point on its surface), as hex text h3; compatH3Query reads it.
const (
	compatH3Table = "public.countries_h3"
	compatH3Query = "SELECT * FROM " + compatH3Table
	compatH3Res   = 3
)

// loadCountriesH3 creates compatH3Table and returns its row count and the rows
// whose cell (its h3-go boundary as a polygon) intersects compatEurope.
func loadCountriesH3(t *testing.T, u *upServer) (rows, inEurope int) {
	t.Helper()
	ctx := context.Background()
	rs, err := u.data.Pool.Query(ctx, "SELECT name, ST_X(p), ST_Y(p) FROM (SELECT name, ST_PointOnSurface(geom) AS p FROM public.countries) s")
	if err != nil {
		t.Fatal(err)
	}
	var data [][]any
	var wkts []string
	for rs.Next() {
		var name string
		var lon, lat float64
		if err := rs.Scan(&name, &lon, &lat); err != nil {
			t.Fatal(err)
		}
		c := h3.LatLngToCell(h3.NewLatLng(lat, lon), compatH3Res)
		data = append(data, []any{c.String(), name})
		var pts []string
		minLon, maxLon := 180.0, -180.0
		for _, ll := range c.Boundary() {
			pts = append(pts, fmt.Sprintf("%.15g %.15g", ll.Lng, ll.Lat))
			minLon, maxLon = math.Min(minLon, ll.Lng), math.Max(maxLon, ll.Lng)
		}
		if maxLon-minLon < 180 { // cells across the antimeridian are far from the polygon
			wkts = append(wkts, "POLYGON(("+strings.Join(append(pts, pts[0]), ",")+"))")
		}
	}
	if err := rs.Err(); err != nil || len(data) == 0 {
		t.Fatalf("countries: %d, %v", len(data), err)
	}
	if _, err := u.data.Pool.Exec(ctx, "CREATE TABLE "+compatH3Table+" (h3 text NOT NULL, name text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.data.Pool.CopyFrom(ctx, pgx.Identifier{"public", "countries_h3"}, []string{"h3", "name"}, pgx.CopyFromRows(data)); err != nil {
		t.Fatal(err)
	}
	err = u.data.Pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::text[]) AS c(wkt)
		WHERE ST_Intersects(ST_GeomFromText(wkt, 4326), ST_SetSRID(ST_GeomFromGeoJSON($2), 4326))`, wkts, compatEurope).Scan(&inEurope)
	if err != nil {
		t.Fatal(err)
	}
	return len(data), inEurope
}

// compatH3PickTile is carto.mjs's H3_PICK_TILE: the resolution 0 cell
// around France.
var compatH3PickTile = h3.LatLngToCell(h3.NewLatLng(46.5, 2.5), 0).String()

// h3Holds reports whether the H3 cell id (hex) holds lon/lat.
func h3Holds(id string, lon, lat float64) bool {
	c := h3.Cell(h3.IndexFromString(id))
	return c.IsValid() && h3.LatLngToCell(h3.NewLatLng(lat, lon), c.Resolution()) == c
}
