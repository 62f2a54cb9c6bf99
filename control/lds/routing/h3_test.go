//go:build cgo

package routing_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/uber/h3-go/v4"

	"github.com/meridian-gis/meridian/control/lds/ldstest"
	"github.com/meridian-gis/meridian/control/lds/routing"
)

// TestIsolineCells fills 5- and 10-minute isolines with H3 cells and
// checks against PostGIS that every cell's centre is inside its range's
// polygon (the origin's cell aside), that the cell sets nest, and that a
// cell whose centre is well inside the polygon is never missed.
func TestIsolineCells(t *testing.T) {
	db := ldstest.Pool(t)
	r := routing.New(db)
	ctx := context.Background()
	iso, err := r.Isolines(ctx, wilmington, routing.Car, []float64{300, 600}, routing.Time)
	if err != nil {
		t.Fatal(err)
	}
	const res = 9
	cells, err := routing.IsolineCells(wilmington, iso, res)
	if err != nil {
		t.Fatal(err)
	}
	originCell := h3.LatLngToCell(h3.NewLatLng(wilmington.Lat, wilmington.Lon), res).String()
	for i, ci := range cells {
		if ci.Range != iso[i].Range || ci.Resolution != res || len(ci.Cells) < 10 {
			t.Fatalf("range %v: %d cells at res %d", ci.Range, len(ci.Cells), ci.Resolution)
		}
		var lons, lats []float64
		for _, s := range ci.Cells {
			if s == originCell {
				continue
			}
			ll := h3.CellToLatLng(h3.Cell(h3.IndexFromString(s)))
			lons, lats = append(lons, ll.Lng), append(lats, ll.Lat)
		}
		var outside int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM unnest($2::float8[], $3::float8[]) p(lon, lat)
			WHERE NOT ST_Covers(ST_Buffer(ST_GeomFromGeoJSON($1), 1e-6), ST_SetSRID(ST_MakePoint(lon, lat), 4326))`,
			string(iso[i].Geom), lons, lats).Scan(&outside); err != nil {
			t.Fatal(err)
		}
		if outside > 0 {
			t.Errorf("range %v: %d of %d cell centres outside the isoline", ci.Range, outside, len(lons))
		}
		if i > 0 {
			have := map[string]bool{}
			for _, s := range ci.Cells {
				have[s] = true
			}
			for _, s := range cells[i-1].Cells {
				if !have[s] {
					t.Fatalf("cell %s of range %v missing from range %v", s, cells[i-1].Range, ci.Range)
				}
			}
		}
	}
	// Completeness: a point well inside the smaller isoline has its cell
	// in the answer.
	var lon, lat float64
	if err := db.QueryRow(ctx, `SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(ST_Buffer(ST_GeomFromGeoJSON($1), -0.002)) p) x`,
		string(iso[0].Geom)).Scan(&lon, &lat); err != nil {
		t.Fatal(err)
	}
	want := h3.LatLngToCell(h3.NewLatLng(lat, lon), res).String()
	if !slices.Contains(cells[0].Cells, want) {
		t.Errorf("cell %s of a point inside the 300 s isoline is missing", want)
	}
	if _, err := routing.IsolineCells(wilmington, iso, 13); !errors.Is(err, routing.ErrBadResolution) {
		t.Errorf("resolution 13: %v", err)
	}
}
