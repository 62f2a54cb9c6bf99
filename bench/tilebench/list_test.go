package tilebench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/bench/peers"
	"github.com/meridian-gis/meridian/internal/tile"
)

// places reads the NE 110m places of the geodata library, or skips.
func places(t *testing.T) []LonLat {
	t.Helper()
	root, err := peers.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := DataDir(root)
	if err != nil {
		t.Skip(err)
	}
	p, err := ReadPoints(filepath.Join(dir, PlacesFile))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The list built from the real places is the one ANCHORS.md measured:
// 2,038 tiles, every z0–4 tile once, only valid coordinates, no repeats.
func TestListOfAnchors(t *testing.T) {
	p := places(t)
	if len(p) != 243 {
		t.Fatalf("ReadPoints(%s) = %d places, want 243", PlacesFile, len(p))
	}
	list := List(p, ListSeed)
	if len(list) != AnchorsListLen {
		t.Errorf("len(List) = %d, want %d", len(list), AnchorsListLen)
	}
	seen := map[tile.Coord]bool{}
	for _, c := range list {
		if !c.Valid() || c.Z > PlaceMaxZoom {
			t.Errorf("tile %s: invalid or deeper than z%d", c, PlaceMaxZoom)
		}
		if seen[c] {
			t.Errorf("tile %s listed twice", c)
		}
		seen[c] = true
	}
	counts := ZoomCounts(list)
	for z, want := range []int{1, 4, 16, 64, 256} {
		if counts[z] != want {
			t.Errorf("z%d: %d tiles, want all %d", z, counts[z], want)
		}
	}
	for z := PlaceMinZoom; z <= PlaceMaxZoom; z++ {
		if counts[z] == 0 || counts[z] > len(p) {
			t.Errorf("z%d: %d tiles, want 1..%d (one per place, shared ones once)", z, counts[z], len(p))
		}
	}
	// Every place's tile is there at every zoom 5–12.
	for _, pl := range p {
		for z := uint32(PlaceMinZoom); z <= PlaceMaxZoom; z++ {
			if c := tile.At(pl.Lon, pl.Lat, z); !seen[c] {
				t.Errorf("tile %s of place %v missing", c, pl)
			}
		}
	}
}

func TestListIsDeterministicAndShuffled(t *testing.T) {
	p := []LonLat{{2.35, 48.85}, {-77.04, -12.05}, {139.7, 35.7}, {180, 0}, {-180, -90}, {0, 90}}
	a, b := List(p, ListSeed), List(p, ListSeed)
	if !slices.Equal(a, b) {
		t.Fatal("List with the same places and seed differs between calls")
	}
	other := List(p, ListSeed+1)
	if slices.Equal(a, other) {
		t.Error("List with another seed gives the same order, want another shuffle")
	}
	sortC := func(l []tile.Coord) []tile.Coord {
		l = slices.Clone(l)
		slices.SortFunc(l, func(x, y tile.Coord) int {
			return strings.Compare(x.String(), y.String())
		})
		return l
	}
	if !slices.Equal(sortC(a), sortC(other)) {
		t.Error("List with another seed holds other tiles, want the same set")
	}
	zoomOrder := true // unshuffled, the list would start with 0/0/0, 1/0/0, …
	for i := 1; i < len(a); i++ {
		if a[i].Z < a[i-1].Z {
			zoomOrder = false
		}
	}
	if zoomOrder {
		t.Error("List is sorted by zoom: not shuffled")
	}
	for _, c := range a {
		if !c.Valid() {
			t.Errorf("invalid tile %s (places on the antimeridian and the poles)", c)
		}
	}
	if got, max := len(a), 341+len(p)*(PlaceMaxZoom-PlaceMinZoom+1); got <= 341 || got > max {
		t.Errorf("len(List) = %d, want 342..%d", got, max)
	}
	if got := len(List(nil, 1)); got != 341 {
		t.Errorf("len(List(nil)) = %d, want 341 (z0–4)", got)
	}
}

func TestReadPoints(t *testing.T) {
	tests := []struct {
		name, json string
		want       []LonLat
		wantErr    string
	}{
		{"points", `{"type":"FeatureCollection","features":[
			{"type":"Feature","geometry":{"type":"Point","coordinates":[2.35,48.85]},"properties":{}},
			{"type":"Feature","geometry":{"type":"Point","coordinates":[-77.04,-12.05,10]}}]}`,
			[]LonLat{{2.35, 48.85}, {-77.04, -12.05}}, ""},
		{"empty", `{"type":"FeatureCollection","features":[]}`, []LonLat{}, ""},
		{"line", `{"type":"FeatureCollection","features":[{"geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]}}]}`,
			nil, "want a Point"},
		{"null geometry", `{"type":"FeatureCollection","features":[{"geometry":null}]}`, nil, "want a Point"},
		{"off the globe", `{"type":"FeatureCollection","features":[{"geometry":{"type":"Point","coordinates":[200,0]}}]}`,
			nil, "off the globe"},
		{"not a collection", `{"type":"Feature"}`, nil, "want FeatureCollection"},
		{"not json", `nope`, nil, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.geojson")
			if err := os.WriteFile(path, []byte(tt.json), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadPoints(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadPoints = %v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ReadPoints = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := ReadPoints(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadPoints(missing file) = nil error")
	}
}

func TestZoomCounts(t *testing.T) {
	got := ZoomCounts([]tile.Coord{{Z: 0}, {Z: 2, X: 1}, {Z: 2, X: 3, Y: 3}})
	if want := []int{1, 0, 2}; !slices.Equal(got, want) {
		t.Errorf("ZoomCounts = %v, want %v", got, want)
	}
	if got := ZoomCounts(nil); len(got) != 0 {
		t.Errorf("ZoomCounts(nil) = %v, want empty", got)
	}
}
