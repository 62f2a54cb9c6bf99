package tiles

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// Tiles fetched at two zooms show up in /metrics under
// meridian_tiles_tile_seconds with their zoom, as misses (rendered) and
// then hits (from memory).
func TestTileSecondsByZoom(t *testing.T) {
	e := newEnv(t)
	tmpl := e.tileTemplate(e.instantiate("table", e.all, "name", "admin1", "columns", "name"), e.all)
	for _, c := range []tile.Coord{tile.At(-74, 40.7, 4), tile.At(-74, 40.7, 9)} {
		for range 2 { // a miss, then a hit
			if r := e.get(expand(tmpl, c.Z, c.X, c.Y), bearer(e.all)); r.status != 200 && r.status != 204 {
				t.Fatalf("tile %v: %d %s", c, r.status, r.body)
			}
		}
	}
	r := e.get("/metrics")
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	counts := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "meridian_tiles_tile_seconds_count{") {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("bad sample %q", sc.Text())
		}
		counts[strings.TrimPrefix(name, "meridian_tiles_tile_seconds_count")] = n
	}
	for _, z := range []string{"4", "9"} {
		for _, cache := range []string{"miss", "hit"} {
			series := `{cache="` + cache + `",zoom="` + z + `"}`
			if got := counts[series]; got != 1 {
				t.Errorf("meridian_tiles_tile_seconds_count%s = %v, want 1", series, got)
			}
		}
	}
	if got := counts[`{cache="miss",zoom="5"}`]; got != 0 {
		t.Errorf("zoom 5, never asked: count %v, want 0", got)
	}
	if len(counts) != 2*(tile.MaxZoom+1) {
		t.Errorf("%d tile_seconds series, want one per zoom 0..%d and cache result", len(counts), tile.MaxZoom)
	}
	if !bytes.Contains(r.body, []byte(`meridian_tiles_tile_seconds_bucket{cache="hit",zoom="4",le="5e-05"}`)) {
		t.Errorf("/metrics lacks the first bucket of zoom 4 hits")
	}
}

// The warm path observes the latency without allocating.
func TestObserveTileAllocatesNothing(t *testing.T) {
	m := newMetrics(nil, &Server{cfg: Config{}})
	start := time.Now()
	if n := testing.AllocsPerRun(100, func() { m.observeTile(12, true, start) }); n != 0 {
		t.Errorf("observeTile: %v allocations, want 0", n)
	}
	m.observeTile(tile.MaxZoom+1, false, start) // out of range: ignored, no panic
}

// Spatial-index tiles show up under meridian_tiles_index_tile_seconds by
// index and by their cell's resolution, a miss and then a hit.
func TestIndexTileSecondsByRes(t *testing.T) {
	e := newEnv(t)
	loadIndexTables(t, e)
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.cells_h3")
	tj := e.instantiate("table", tok, "name", "cells_h3", "spatialDataColumn", "h3", "spatialDataType", "h3",
		"aggregationExp", "count(*) AS n", "aggregationResLevel", "2")
	tmpl := e.get(tj, bearer(tok)).json(t)["tiles"].([]any)[0].(string)
	for range 2 { // a miss, then a hit
		if r := e.get(expandCell(tmpl, "85283083fffffff"), bearer(tok)); r.status != 200 {
			t.Fatalf("h3 tile: %d %s", r.status, r.body)
		}
	}
	body := e.get("/metrics").body
	for _, cache := range []string{"miss", "hit"} {
		want := `meridian_tiles_index_tile_seconds_count{cache="` + cache + `",index="h3",res="5"} 1`
		if !bytes.Contains(body, []byte(want+"\n")) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !bytes.Contains(body, []byte(`meridian_tiles_index_tile_seconds_count{cache="miss",index="quadbin",res="26"} 0`)) {
		t.Errorf("/metrics lacks the quadbin series down to resolution 26")
	}
	m := newMetrics(nil, &Server{cfg: Config{}})
	start := time.Now()
	if n := testing.AllocsPerRun(100, func() { m.observeIndexTile(spatialindex.Quadbin, 12, true, start) }); n != 0 {
		t.Errorf("observeIndexTile: %v allocations, want 0", n)
	}
	m.observeIndexTile(spatialindex.H3, 16, false, start) // out of range: ignored, no panic
}
