package tilebench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/meridian-gis/meridian/internal/tile"
)

// The tile list of ANCHORS.md.
const (
	// AllTilesMaxZoom is the deepest zoom whose every tile is listed:
	// zooms 0–4 are 341 tiles.
	AllTilesMaxZoom = 4
	// PlaceMinZoom and PlaceMaxZoom bound the zooms at which the tile
	// holding each place is listed.
	PlaceMinZoom = 5
	PlaceMaxZoom = 12
	// ListSeed is the fixed seed of the shuffle, so that every run and
	// every variant requests the tiles in the same order.
	ListSeed uint64 = 2038
	// AnchorsListLen is how many tiles ANCHORS.md measured with: the
	// list built from the 243 NE 110m places has exactly this many.
	AnchorsListLen = 2038
)

// LonLat is a point in degrees (EPSG:4326).
type LonLat struct {
	Lon, Lat float64
}

// ReadPoints reads the points of a GeoJSON FeatureCollection, in file
// order. A feature whose geometry is not a Point is an error.
func ReadPoints(path string) ([]LonLat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading points: %w", err)
	}
	var fc struct {
		Type     string `json:"type"`
		Features []struct {
			Geometry struct {
				Type        string          `json:"type"`
				Coordinates json.RawMessage `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(b, &fc); err != nil {
		return nil, fmt.Errorf("reading points from %s: %w", path, err)
	}
	if fc.Type != "FeatureCollection" {
		return nil, fmt.Errorf("reading points from %s: type %q, want FeatureCollection", path, fc.Type)
	}
	out := make([]LonLat, 0, len(fc.Features))
	for i, f := range fc.Features {
		g := f.Geometry
		var xy []float64
		if g.Type == "Point" {
			if err := json.Unmarshal(g.Coordinates, &xy); err != nil {
				return nil, fmt.Errorf("reading points from %s: feature %d: %w", path, i, err)
			}
		}
		if len(xy) < 2 {
			return nil, fmt.Errorf("reading points from %s: feature %d is a %q with %d coordinates, want a Point",
				path, i, g.Type, len(xy))
		}
		lon, lat := xy[0], xy[1]
		if math.IsNaN(lon) || math.IsNaN(lat) || lon < -180 || lon > 180 || lat < -90 || lat > 90 {
			return nil, fmt.Errorf("reading points from %s: feature %d at %g,%g is off the globe", path, i, lon, lat)
		}
		out = append(out, LonLat{Lon: lon, Lat: lat})
	}
	return out, nil
}

// List returns the tile list of ANCHORS.md: every tile of zooms 0 to
// AllTilesMaxZoom, then, for each place, the tile holding it at each zoom
// from PlaceMinZoom to PlaceMaxZoom, each tile once, shuffled by a PCG
// seeded with seed. The same places and seed give the same list.
func List(places []LonLat, seed uint64) []tile.Coord {
	seen := make(map[tile.Coord]bool)
	var out []tile.Coord
	add := func(c tile.Coord) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for z := uint32(0); z <= AllTilesMaxZoom; z++ {
		n := uint32(1) << z
		for x := range n {
			for y := range n {
				add(tile.Coord{Z: z, X: x, Y: y})
			}
		}
	}
	for _, p := range places {
		for z := uint32(PlaceMinZoom); z <= PlaceMaxZoom; z++ {
			add(tile.At(p.Lon, p.Lat, z))
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d657269646961)) // "meridia"
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// ZoomCounts returns how many tiles of list are at each zoom, indexed by
// zoom (for the report).
func ZoomCounts(list []tile.Coord) []int {
	var out []int
	for _, c := range list {
		for int(c.Z) >= len(out) {
			out = append(out, 0)
		}
		out[c.Z]++
	}
	return out
}
