// Package routing answers routes, isolines and origin–destination
// matrices with pgRouting on the meridian_lds road graph (package
// ldsload).
//
// A point is snapped to the nearest edge its mode may use (within
// MaxSnap) and enters the graph at its fraction along that edge
// (pgr_withPoints, pgr_withPointsDD), so routes and isolines start where
// the point is, not at the nearest crossing. Routes use pgr_withPoints
// (Dijkstra); isolines pgr_withPointsDD, then a concave hull of the
// reached vertices and edge ends per range, each range's polygon
// including the smaller ones' (nested by construction); matrices
// pgr_dijkstraCostMatrix between the snapped edges' vertices. Every query
// is confined to the region (OSM extract) holding the origin.
package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Mode is a travel profile.
type Mode string

// The modes the graph has costs for.
const (
	Car  Mode = "car"
	Walk Mode = "walk"
)

// Limits.
const (
	// MaxSnap is how far a point may be from a road, in metres.
	MaxSnap = 2000
	// MaxTime and MaxDistance bound isoline ranges (seconds, metres).
	MaxTime     = 3600
	MaxDistance = 100000
	// MaxRanges bounds the ranges of one isoline request.
	MaxRanges = 10
	// MaxWaypoints bounds a route's waypoints.
	MaxWaypoints = 10
)

// Errors for requests the graph cannot answer.
var (
	ErrUnsupportedMode = errors.New("unsupported mode")
	ErrBadCoordinates  = errors.New("coordinates out of range (longitude -180..180, latitude -90..90)")
	ErrNoRegion        = errors.New("no road network is loaded for this location")
	ErrNoRoad          = fmt.Errorf("no road within %d m of this location (at sea?)", MaxSnap)
	ErrUnreachable     = errors.New("destination is unreachable from the origin")
	ErrBadRange        = fmt.Errorf("ranges must be 1 to %d positive numbers, at most %d s (time) or %d m (distance)", MaxRanges, MaxTime, MaxDistance)
)

// ParseMode reads a mode ("car", "walk"; CARTO's "driving"/"walking" too).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "car", "driving", "drive", "auto":
		return Car, nil
	case "walk", "walking", "pedestrian", "foot":
		return Walk, nil
	}
	return "", fmt.Errorf("%w %q (car or walk)", ErrUnsupportedMode, s)
}

// Point is a location.
type Point struct{ Lon, Lat float64 }

// Valid reports whether p is on the globe.
func (p Point) Valid() bool {
	return !math.IsNaN(p.Lon) && !math.IsNaN(p.Lat) && p.Lon >= -180 && p.Lon <= 180 && p.Lat >= -90 && p.Lat <= 90
}

// Step is one edge of a route and its direction (for tests and clients
// that check one-ways).
type Step struct {
	Edge    int64 `json:"edge"`
	Forward bool  `json:"forward"`
	// Cost is the step's travel time in seconds.
	Cost float64 `json:"cost"`
	// End is where the step ends (lon, lat).
	End [2]float64 `json:"end"`
}

// Route is a computed route.
type Route struct {
	Distance float64    `json:"distance"` // metres
	Duration float64    `json:"duration"` // seconds
	Geom     LineString `json:"geom"`
	Steps    []Step     `json:"-"`
	Region   string     `json:"-"`
}

// LineString is a GeoJSON LineString.
type LineString struct {
	Type        string       `json:"type"`
	Coordinates [][2]float64 `json:"coordinates"`
}

// Router queries the graph.
type Router struct {
	db *pgxpool.Pool
	// speeds caches the fastest edge of each region and mode (m/s), which
	// bounds how far an isoline can reach.
	speeds sync.Map // speedKey → float64
}

type speedKey struct {
	region string
	mode   Mode
}

// New returns a Router on db.
func New(db *pgxpool.Pool) *Router { return &Router{db: db} }

var regionRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// edgesSQL is the edges query pgRouting reads for region and mode, with
// the extra condition cond when it is not "" (pgRouting builds its graph
// from every row this returns, for every query: the condition is what
// keeps a query from reading a whole region's roads).
func edgesSQL(region string, mode Mode, cond string) string {
	cost, rev := "car_cost", "car_reverse_cost"
	if mode == Walk {
		cost, rev = "walk_cost", "walk_cost"
	}
	q := "SELECT id, source, target, " + cost + " AS cost, " + rev + " AS reverse_cost FROM meridian_lds.edges WHERE region = '" + region + "'"
	if cond != "" {
		q += " AND (" + cond + ")"
	}
	return q
}

// within is the condition "the edge is in box".
func within(box *bbox) string {
	return "geom && ST_MakeEnvelope(" + f(box.minLon) + ", " + f(box.minLat) + ", " + f(box.maxLon) + ", " + f(box.maxLat) + ", 4326)"
}

// majorRoads are the classes a long car leg travels on between the
// streets around its ends.
const majorRoads = "highway IN ('motorway', 'motorway_link', 'trunk', 'trunk_link', 'primary', 'primary_link', " +
	"'secondary', 'secondary_link', 'tertiary', 'tertiary_link', 'unclassified')"

// longLeg is the straight distance (m) from which a car leg is first
// searched on the major roads only, with every street near its ends.
const longLeg = 15_000

// bbox is a lon/lat rectangle.
type bbox struct{ minLon, minLat, maxLon, maxLat float64 }

// around is the rectangle holding every point within metres of p.
func around(p Point, metres float64) *bbox {
	dLat := metres / 111_320
	dLon := metres / (111_320 * math.Max(0.01, math.Cos(p.Lat*math.Pi/180)))
	return &bbox{p.Lon - dLon, p.Lat - dLat, p.Lon + dLon, p.Lat + dLat}
}

// legBox is the rectangle a route from a to b is first searched in:
// theirs, grown by a third of its longer side and at least 5 km.
func legBox(a, b Point) *bbox {
	lat := (a.Lat + b.Lat) / 2
	cos := math.Max(0.01, math.Cos(lat*math.Pi/180))
	w := math.Abs(a.Lon-b.Lon) * 111_320 * cos
	h := math.Abs(a.Lat-b.Lat) * 111_320
	m := math.Max(5000, math.Max(w, h)/3)
	return &bbox{min(a.Lon, b.Lon) - m/(111_320*cos), min(a.Lat, b.Lat) - m/111_320,
		max(a.Lon, b.Lon) + m/(111_320*cos), max(a.Lat, b.Lat) + m/111_320}
}

// maxSpeed is the speed (m/s) of the fastest edge of region for mode:
// nothing is reached within t seconds farther than maxSpeed·t.
func (r *Router) maxSpeed(ctx context.Context, region string, mode Mode) (float64, error) {
	k := speedKey{region, mode}
	if v, ok := r.speeds.Load(k); ok {
		return v.(float64), nil
	}
	col := "least(nullif(greatest(car_cost, 0), 0), nullif(greatest(car_reverse_cost, 0), 0))"
	if mode == Walk {
		col = "nullif(greatest(walk_cost, 0), 0)"
	}
	var v *float64
	if err := r.db.QueryRow(ctx, "SELECT max(length_m / "+col+") FROM meridian_lds.edges WHERE region = $1", region).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the fastest road: %w", err)
	}
	if v == nil || *v <= 0 {
		return 0, ErrNoRoad
	}
	r.speeds.Store(k, *v)
	return *v, nil
}

// snapped is a point placed on an edge.
type snapped struct {
	at       Point // the point snapped
	region   string
	edge     int64
	fraction float64
	source   int64
	target   int64
}

// snap places p on the nearest edge mode may use.
func (r *Router) snap(ctx context.Context, p Point, mode Mode) (snapped, error) {
	if !p.Valid() {
		return snapped{}, ErrBadCoordinates
	}
	var s snapped
	usable := "(car_cost >= 0 OR car_reverse_cost >= 0)"
	if mode == Walk {
		usable = "walk_cost >= 0"
	}
	var region *string
	err := r.db.QueryRow(ctx, `SELECT (SELECT name FROM meridian_lds.regions WHERE ST_Intersects(bbox, ST_SetSRID(ST_MakePoint($1, $2), 4326))
		ORDER BY ST_Area(bbox) LIMIT 1)`, p.Lon, p.Lat).Scan(&region)
	if err != nil {
		return snapped{}, fmt.Errorf("finding the region: %w", err)
	}
	if region == nil {
		return snapped{}, ErrNoRegion
	}
	var dist float64
	err = r.db.QueryRow(ctx, `WITH pt AS (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326) g)
		SELECT e.region, e.id, ST_LineLocatePoint(e.geom, pt.g), e.source, e.target, ST_Distance(e.geom::geography, pt.g::geography)
		FROM pt, LATERAL (SELECT * FROM meridian_lds.edges WHERE region = $3 AND `+usable+` ORDER BY geom <-> pt.g LIMIT 1) e`,
		p.Lon, p.Lat, *region).Scan(&s.region, &s.edge, &s.fraction, &s.source, &s.target, &dist)
	if errors.Is(err, pgx.ErrNoRows) {
		return snapped{}, ErrNoRoad
	}
	if err != nil {
		return snapped{}, fmt.Errorf("snapping to the road network: %w", err)
	}
	if dist > MaxSnap {
		return snapped{}, ErrNoRoad
	}
	if !regionRe.MatchString(s.region) {
		return snapped{}, fmt.Errorf("region name %q is not a plain name", s.region)
	}
	s.at = p
	return s, nil
}

func f(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
func i64(v int64) string { return strconv.FormatInt(v, 10) }

// Route computes the fastest route from origin through waypoints to
// destination for mode.
func (r *Router) Route(ctx context.Context, origin, destination Point, waypoints []Point, mode Mode) (*Route, error) {
	if len(waypoints) > MaxWaypoints {
		return nil, fmt.Errorf("at most %d waypoints", MaxWaypoints)
	}
	stops := append(append([]Point{origin}, waypoints...), destination)
	snaps := make([]snapped, len(stops))
	for i, p := range stops {
		s, err := r.snap(ctx, p, mode)
		if err != nil {
			return nil, err
		}
		if i > 0 && s.region != snaps[0].region {
			return nil, ErrUnreachable
		}
		snaps[i] = s
	}
	out := &Route{Geom: LineString{Type: "LineString"}, Region: snaps[0].region}
	for i := 1; i < len(snaps); i++ {
		if err := r.leg(ctx, snaps[i-1], snaps[i], mode, out); err != nil {
			return nil, err
		}
	}
	out.Distance = math.Round(out.Distance*10) / 10
	out.Duration = math.Round(out.Duration*10) / 10
	return out, nil
}

// leg appends the route from a to b to out: searched among the roads
// around a and b first, and in the whole region when none joins them
// there.
func (r *Router) leg(ctx context.Context, a, b snapped, mode Mode, out *Route) error {
	if a.edge == b.edge && a.fraction == b.fraction {
		return nil
	}
	box := within(legBox(a.at, b.at))
	tries := []string{box, ""}
	if mode == Car && metresBetween(a.at, b.at) >= longLeg {
		// Like a driver: streets near either end, major roads between
		// (a fraction of the edges; the fastest route nearly always
		// takes them); the plain box, then the region, when they do not
		// join the ends.
		ends := within(around(a.at, 3000)) + " OR " + within(around(b.at, 3000))
		tries = append([]string{box + " AND (" + majorRoads + " OR " + ends + ")"}, tries...)
	}
	var err error
	for _, cond := range tries {
		if err = r.legIn(ctx, a, b, mode, cond, out); !errors.Is(err, ErrUnreachable) {
			break
		}
	}
	return err
}

// metresBetween is the great-circle distance from a to b.
func metresBetween(a, b Point) float64 {
	const rad = math.Pi / 180
	dLat, dLon := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * 6_371_000 * math.Asin(math.Sqrt(h))
}

// legIn is leg on the roads that meet cond ("": all of the region's).
func (r *Router) legIn(ctx context.Context, a, b snapped, mode Mode, cond string, out *Route) error {
	points := "SELECT 1 AS pid, " + i64(a.edge) + "::bigint AS edge_id, " + f(a.fraction) + "::float8 AS fraction UNION ALL SELECT 2, " +
		i64(b.edge) + ", " + f(b.fraction)
	// For each path row: the edge from node to the next node, as
	// fractions along the edge's geometry (a point's own fraction, 0 at
	// source, 1 at target).
	rows, err := r.db.Query(ctx, `WITH pts(pid, edge_id, fraction) AS (VALUES (1, $3::bigint, $4::float8), (2, $5::bigint, $6::float8)),
		path AS (SELECT seq, node, edge, cost, lead(node) OVER (ORDER BY seq) AS next FROM pgr_withPoints($1, $2, -1, -2, true, 'b', false)),
		legs AS (SELECT p.seq, p.edge, p.cost, e.length_m, e.geom,
			CASE WHEN p.node < 0 THEN (SELECT fraction FROM pts WHERE pid = -p.node) WHEN p.node = e.source THEN 0 ELSE 1 END AS fa,
			CASE WHEN p.next < 0 THEN (SELECT fraction FROM pts WHERE pid = -p.next) WHEN p.next = e.source THEN 0 ELSE 1 END AS fb
			FROM path p JOIN meridian_lds.edges e ON e.id = p.edge)
		SELECT edge, fb >= fa, cost, length_m * abs(fb - fa),
			ST_AsGeoJSON(CASE WHEN fa <= fb THEN ST_LineSubstring(geom, fa, fb) ELSE ST_Reverse(ST_LineSubstring(geom, fb, fa)) END, 6)
		FROM legs ORDER BY seq`,
		edgesSQL(a.region, mode, cond), points, a.edge, a.fraction, b.edge, b.fraction)
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var st Step
		var cost, length float64
		var gj []byte
		if err := rows.Scan(&st.Edge, &st.Forward, &cost, &length, &gj); err != nil {
			return fmt.Errorf("reading route: %w", err)
		}
		n++
		st.Cost = cost
		out.Duration += cost
		out.Distance += length
		var g struct {
			Coordinates [][2]float64 `json:"coordinates"`
		}
		if err := json.Unmarshal(gj, &g); err != nil {
			return fmt.Errorf("reading route geometry: %w", err)
		}
		for _, c := range g.Coordinates {
			if k := len(out.Geom.Coordinates); k > 0 && out.Geom.Coordinates[k-1] == c {
				continue
			}
			out.Geom.Coordinates = append(out.Geom.Coordinates, c)
		}
		if k := len(g.Coordinates); k > 0 {
			st.End = g.Coordinates[k-1]
		}
		out.Steps = append(out.Steps, st)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	if n == 0 {
		return ErrUnreachable
	}
	return nil
}

// RangeType says what isoline ranges measure.
type RangeType string

// Range types.
const (
	Time     RangeType = "time"
	Distance RangeType = "distance"
)

// Isoline is the area reachable within one range.
type Isoline struct {
	Range     float64         `json:"range"`
	RangeType RangeType       `json:"range_type"`
	Geom      json.RawMessage `json:"geom"`
}

// CheckRanges validates isoline ranges.
func CheckRanges(ranges []float64, rt RangeType) error {
	limit := float64(MaxTime)
	if rt == Distance {
		limit = MaxDistance
	}
	if len(ranges) == 0 || len(ranges) > MaxRanges {
		return ErrBadRange
	}
	for _, v := range ranges {
		if math.IsNaN(v) || v <= 0 || v > limit {
			return ErrBadRange
		}
	}
	return nil
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}

// Isolines computes one polygon per range around origin (ranges in
// seconds for Time, metres for Distance), smallest first.
func (r *Router) Isolines(ctx context.Context, origin Point, mode Mode, ranges []float64, rt RangeType) ([]Isoline, error) {
	if err := CheckRanges(ranges, rt); err != nil {
		return nil, err
	}
	s, err := r.snap(ctx, origin, mode)
	if err != nil {
		return nil, err
	}
	// Nothing farther than the largest range at the fastest road's speed
	// is reached: read only the roads within that distance (plus the
	// snapping distance).
	reach := maxOf(ranges)
	if rt == Time {
		v, err := r.maxSpeed(ctx, s.region, mode)
		if err != nil {
			return nil, err
		}
		reach *= v
	}
	edges := edgesSQL(s.region, mode, within(around(origin, reach+MaxSnap)))
	if rt == Distance {
		edges = strings.Replace(edges, "car_cost AS cost, car_reverse_cost AS reverse_cost",
			"CASE WHEN car_cost >= 0 THEN length_m ELSE -1 END AS cost, CASE WHEN car_reverse_cost >= 0 THEN length_m ELSE -1 END AS reverse_cost", 1)
		edges = strings.Replace(edges, "walk_cost AS cost, walk_cost AS reverse_cost",
			"CASE WHEN walk_cost >= 0 THEN length_m ELSE -1 END AS cost, CASE WHEN walk_cost >= 0 THEN length_m ELSE -1 END AS reverse_cost", 1)
	}
	sorted := append([]float64(nil), ranges...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j] < sorted[j-1]; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	maxR := sorted[len(sorted)-1]
	points := "SELECT 1 AS pid, " + i64(s.edge) + "::bigint AS edge_id, " + f(s.fraction) + "::float8 AS fraction"
	// Reached vertices (the origin itself included), on a ~10 m grid to
	// keep the hull cheap; hull per range, buffered by ~30 m so that
	// reached points on the boundary are inside; each range unioned with
	// the smaller ones so the polygons nest.
	rows, err := r.db.Query(ctx, `WITH dd AS (SELECT node, agg_cost FROM pgr_withPointsDD($1, $2, -1, $3::float8, true, 'b', false)),
		pts AS (SELECT DISTINCT ON (gx, gy) agg_cost, lon, lat FROM (
				SELECT dd.agg_cost, v.lon, v.lat, round(v.lon * 10000) gx, round(v.lat * 10000) gy
				FROM dd JOIN meridian_lds.vertices v ON v.id = dd.node
				UNION ALL SELECT 0, $5::float8, $6::float8, round($5 * 10000), round($6 * 10000)) x
			ORDER BY gx, gy, agg_cost),
		hulls AS (SELECT r, ST_Buffer(ST_ConcaveHull(ST_Collect(ST_SetSRID(ST_MakePoint(lon, lat), 4326)), 0.3), 0.0003, 'quad_segs=2') h
			FROM unnest($4::float8[]) r, pts WHERE pts.agg_cost <= r GROUP BY r)
		SELECT r, ST_AsGeoJSON(ST_Multi(ST_Union(h) OVER (ORDER BY r)), 7) FROM hulls ORDER BY r`,
		edges, points, maxR, sorted, origin.Lon, origin.Lat)
	if err != nil {
		return nil, fmt.Errorf("computing isolines: %w", err)
	}
	defer rows.Close()
	byRange := map[float64]json.RawMessage{}
	for rows.Next() {
		var rg float64
		var gj []byte
		if err := rows.Scan(&rg, &gj); err != nil {
			return nil, fmt.Errorf("reading isolines: %w", err)
		}
		byRange[rg] = gj
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("computing isolines: %w", err)
	}
	out := make([]Isoline, 0, len(sorted))
	for _, rg := range sorted {
		out = append(out, Isoline{Range: rg, RangeType: rt, Geom: byRange[rg]})
	}
	return out, nil
}

// Matrix returns the travel times in seconds from every origin to every
// destination (nil where unreachable), by pgr_dijkstraCostMatrix between
// the vertices nearest each point on its snapped edge.
func (r *Router) Matrix(ctx context.Context, origins, destinations []Point, mode Mode) ([][]*float64, error) {
	all := append(append([]Point(nil), origins...), destinations...)
	ids := make([]int64, len(all))
	var region string
	for i, p := range all {
		s, err := r.snap(ctx, p, mode)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			region = s.region
		} else if s.region != region {
			return nil, ErrUnreachable
		}
		ids[i] = s.source
		if s.fraction > 0.5 {
			ids[i] = s.target
		}
	}
	rows, err := r.db.Query(ctx, `SELECT start_vid, end_vid, agg_cost FROM pgr_dijkstraCostMatrix($1, $2::bigint[], true)`,
		edgesSQL(region, mode, ""), ids)
	if err != nil {
		return nil, fmt.Errorf("computing the cost matrix: %w", err)
	}
	defer rows.Close()
	cost := map[[2]int64]float64{}
	for rows.Next() {
		var a, b int64
		var c float64
		if err := rows.Scan(&a, &b, &c); err != nil {
			return nil, fmt.Errorf("reading the cost matrix: %w", err)
		}
		cost[[2]int64{a, b}] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("computing the cost matrix: %w", err)
	}
	out := make([][]*float64, len(origins))
	for i := range origins {
		out[i] = make([]*float64, len(destinations))
		for j := range destinations {
			a, b := ids[i], ids[len(origins)+j]
			if a == b {
				z := 0.0
				out[i][j] = &z
			} else if c, ok := cost[[2]int64{a, b}]; ok {
				v := math.Round(c*10) / 10
				out[i][j] = &v
			}
		}
	}
	return out, nil
}
