// Package tilebench holds what the tile scenarios of bench (tiles-cold,
// tiles-warm) share: the tile list of ANCHORS.md (every tile of zooms 0–4
// plus the tiles around the 243 Natural Earth 110m populated places at
// zooms 5–12, shuffled with a fixed seed), the two datasets it is rendered
// on (Natural Earth 10m admin-1 polygons, GeoNames postal code points) and
// their loading into PostGIS, the Martin-style statement that is the
// floor of a cold tile (raw-pgx) and its concurrent runner, and the
// meridian binary driven through its CLI: migrate, connection add, token
// create, and a `meridian tiles` process started and stopped per run.
//
// The datasets come from the shared geodata library (SOURCES.md); see
// DataDir. Everything talks to 127.0.0.1 only.
package tilebench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoData is wrapped by DataDir's error when the geodata library is not
// on this machine: the scenarios skip on it.
var ErrNoData = errors.New("tilebench: geodata library not found")

// DataDir returns the shared geodata library: $MERIDIAN_TESTDATA when set,
// else ../shared/data next to the module root root (the layout of the
// development machines). The folder must hold SOURCES.md.
func DataDir(root string) (string, error) {
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join(root, "..", "shared", "data")
	}
	if _, err := os.Stat(filepath.Join(dir, "SOURCES.md")); err != nil {
		return "", fmt.Errorf("%w at %s (set MERIDIAN_TESTDATA): %w", ErrNoData, dir, err)
	}
	return filepath.Clean(dir), nil
}

// PlacesFile is the point file whose places the tile list is built
// around, relative to the data folder: NE 110m populated places (243
// points).
const PlacesFile = "points/ne_110m_populated_places.geojson"
