package routing_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/meridian-gis/meridian/control/lds/ldstest"
	"github.com/meridian-gis/meridian/control/lds/routing"
)

var (
	wilmington = routing.Point{Lon: -75.5466, Lat: 39.7459}
	dover      = routing.Point{Lon: -75.5244, Lat: 39.1582}
	newark     = routing.Point{Lon: -75.7497, Lat: 39.6837}
	vaduz      = routing.Point{Lon: 9.5215, Lat: 47.1415}
)

// TestRouteAcrossDelaware compares a Wilmington–Dover car route with
// the shortest path computed independently in SQL (pgr_dijkstra between
// the vertices of the snapped edges) and checks that every step follows
// its edge's one-way rule.
func TestRouteAcrossDelaware(t *testing.T) {
	db := ldstest.Pool(t)
	r := routing.New(db)
	ctx := context.Background()
	rt, err := r.Route(ctx, wilmington, dover, nil, routing.Car)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Distance < 60000 || rt.Distance > 130000 || rt.Duration <= 0 || len(rt.Geom.Coordinates) < 10 {
		t.Fatalf("route = %.0f m, %.0f s, %d points", rt.Distance, rt.Duration, len(rt.Geom.Coordinates))
	}
	var want float64
	err = db.QueryRow(ctx, `WITH a AS (SELECT source FROM meridian_lds.edges WHERE region = 'delaware' AND car_cost >= 0
			ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326) LIMIT 1),
		b AS (SELECT target FROM meridian_lds.edges WHERE region = 'delaware' AND car_cost >= 0
			ORDER BY geom <-> ST_SetSRID(ST_MakePoint($3, $4), 4326) LIMIT 1)
		SELECT sum(e.length_m) FROM a, b, pgr_dijkstra('SELECT id, source, target, car_cost AS cost, car_reverse_cost AS reverse_cost
			FROM meridian_lds.edges WHERE region = ''delaware''', a.source, b.target) d JOIN meridian_lds.edges e ON e.id = d.edge`,
		wilmington.Lon, wilmington.Lat, dover.Lon, dover.Lat).Scan(&want)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(rt.Distance-want) > 0.1*want {
		t.Errorf("route distance %.0f m, independent shortest path %.0f m: more than 10%% apart", rt.Distance, want)
	}
	t.Logf("route %.0f m / %.0f s; SQL shortest path %.0f m", rt.Distance, rt.Duration, want)
	checkOneWays(t, rt)
}

func checkOneWays(t *testing.T, rt *routing.Route) {
	t.Helper()
	db := ldstest.Pool(t)
	for _, st := range rt.Steps {
		var car, rev float64
		if err := db.QueryRow(context.Background(), "SELECT car_cost, car_reverse_cost FROM meridian_lds.edges WHERE id = $1", st.Edge).Scan(&car, &rev); err != nil {
			t.Fatal(err)
		}
		if (st.Forward && car < 0) || (!st.Forward && rev < 0) {
			t.Errorf("step over edge %d (forward %v) breaks its one-way (cost %v, reverse %v)", st.Edge, st.Forward, car, rev)
		}
	}
}

// TestRouteOneWay routes against a one-way street: the car must go
// around, the walker may not.
func TestRouteOneWay(t *testing.T) {
	db := ldstest.Pool(t)
	r := routing.New(db)
	ctx := context.Background()
	var a, b routing.Point
	var length float64
	err := db.QueryRow(ctx, `SELECT ST_X(ST_LineInterpolatePoint(geom, 0.9)), ST_Y(ST_LineInterpolatePoint(geom, 0.9)),
			ST_X(ST_LineInterpolatePoint(geom, 0.1)), ST_Y(ST_LineInterpolatePoint(geom, 0.1)), length_m
		FROM meridian_lds.edges WHERE region = 'delaware' AND oneway = 1 AND highway IN ('residential', 'tertiary', 'secondary')
			AND car_reverse_cost < 0 AND length_m BETWEEN 150 AND 400 ORDER BY id LIMIT 1`).Scan(&a.Lon, &a.Lat, &b.Lon, &b.Lat, &length)
	if err != nil {
		t.Fatal(err)
	}
	car, err := r.Route(ctx, a, b, nil, routing.Car)
	if err != nil {
		t.Fatal(err)
	}
	walk, err := r.Route(ctx, a, b, nil, routing.Walk)
	if err != nil {
		t.Fatal(err)
	}
	checkOneWays(t, car)
	if walk.Distance > 0.9*length || car.Distance <= walk.Distance {
		t.Errorf("against a one-way of %.0f m: car %.0f m, walk %.0f m; want the walk straight back (0.8 of it) and the car around", length, car.Distance, walk.Distance)
	}
}

// TestIsolinesNested checks that 5/10/15-minute isolines nest and hold
// the points of a route reached within each range.
func TestIsolinesNested(t *testing.T) {
	db := ldstest.Pool(t)
	r := routing.New(db)
	ctx := context.Background()
	iso, err := r.Isolines(ctx, wilmington, routing.Car, []float64{900, 300, 600}, routing.Time)
	if err != nil {
		t.Fatal(err)
	}
	if len(iso) != 3 || iso[0].Range != 300 || iso[2].Range != 900 {
		t.Fatalf("isolines = %d, want 300, 600, 900", len(iso))
	}
	for i := 1; i < 3; i++ {
		var covers bool
		if err := db.QueryRow(ctx, "SELECT ST_Covers(ST_Buffer(ST_GeomFromGeoJSON($1), 1e-6), ST_GeomFromGeoJSON($2))" /* within the 1e-7° output precision */, string(iso[i].Geom), string(iso[i-1].Geom)).Scan(&covers); err != nil {
			t.Fatal(err)
		}
		if !covers {
			t.Errorf("isoline %v does not cover isoline %v", iso[i].Range, iso[i-1].Range)
		}
	}
	rt, err := r.Route(ctx, wilmington, newark, nil, routing.Car)
	if err != nil {
		t.Fatal(err)
	}
	cum, checked := 0.0, 0
	for _, st := range rt.Steps {
		cum += st.Cost
		for _, il := range iso {
			if cum > il.Range {
				continue
			}
			var in bool
			if err := db.QueryRow(ctx, "SELECT ST_Intersects(ST_GeomFromGeoJSON($1), ST_SetSRID(ST_MakePoint($2, $3), 4326))",
				string(il.Geom), st.End[0], st.End[1]).Scan(&in); err != nil {
				t.Fatal(err)
			}
			checked++
			if !in {
				t.Errorf("route point %v reached at %.0f s is outside the %v s isoline", st.End, cum, il.Range)
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d route points checked", checked)
	}
	d, err := r.Isolines(ctx, vaduz, routing.Walk, []float64{500, 1000}, routing.Distance)
	if err != nil || len(d) != 2 || len(d[1].Geom) == 0 {
		t.Errorf("walking distance isolines in Vaduz: %v, %v", d, err)
	}
}

func TestMatrix(t *testing.T) {
	db := ldstest.Pool(t)
	r := routing.New(db)
	m, err := r.Matrix(context.Background(), []routing.Point{wilmington, newark}, []routing.Point{dover, newark}, routing.Car)
	if err != nil {
		t.Fatal(err)
	}
	if m[0][0] == nil || *m[0][0] < 1800 || m[1][1] == nil || *m[1][1] != 0 || m[0][1] == nil {
		t.Errorf("matrix = %v", m)
	}
}

func TestBadRequests(t *testing.T) {
	db := ldstest.Pool(t)
	r := routing.New(db)
	ctx := context.Background()
	if _, err := routing.ParseMode("bicycle"); !errors.Is(err, routing.ErrUnsupportedMode) {
		t.Errorf("ParseMode(bicycle) = %v", err)
	}
	for _, tt := range []struct {
		name     string
		from, to routing.Point
		want     error
	}{
		{"out of range", routing.Point{Lon: 200, Lat: 0}, dover, routing.ErrBadCoordinates},
		{"at sea", routing.Point{Lon: -30, Lat: 30}, dover, routing.ErrNoRegion},
		{"other region", wilmington, vaduz, routing.ErrUnreachable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Route(ctx, tt.from, tt.to, nil, routing.Car); !errors.Is(err, tt.want) {
				t.Errorf("Route error = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := r.Isolines(ctx, wilmington, routing.Car, []float64{300, 7200}, routing.Time); !errors.Is(err, routing.ErrBadRange) {
		t.Errorf("isoline range over the limit: %v", err)
	}
	if _, err := r.Isolines(ctx, wilmington, routing.Car, []float64{-5}, routing.Time); !errors.Is(err, routing.ErrBadRange) {
		t.Errorf("negative isoline range: %v", err)
	}
}
