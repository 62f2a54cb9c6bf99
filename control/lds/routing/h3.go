//go:build cgo

package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/uber/h3-go/v4"
)

// avgCellKm2 is the average area of an H3 cell at resolution 0; each
// finer resolution divides it by 7.
const avgCellKm2 = 4357449.416078383

// IsolineCells fills isolines (smallest range first, nested, as
// Isolines returns them) with H3 cells at res. Each range's cells include
// the smaller ranges' cells, so the answers nest like the polygons.
func IsolineCells(origin Point, iso []Isoline, res int) ([]CellIsoline, error) {
	if res < MinH3Res || res > MaxH3Res {
		return nil, ErrBadResolution
	}
	polys := make([][]h3.GeoPolygon, len(iso))
	for i, il := range iso {
		p, err := geoPolygons(il.Geom)
		if err != nil {
			return nil, err
		}
		polys[i] = p
	}
	// The largest range bounds the answer: refuse before filling (the
	// library allocates for its bounding box's worth of cells).
	if len(polys) > 0 && estimateCells(polys[len(polys)-1], res) > MaxH3Cells {
		return nil, ErrTooManyCells
	}
	seen := map[h3.Cell]bool{h3.LatLngToCell(h3.NewLatLng(origin.Lat, origin.Lon), res): true}
	out := make([]CellIsoline, len(iso))
	for i, il := range iso {
		for _, p := range polys[i] {
			for _, c := range h3.PolygonToCells(p, res) {
				seen[c] = true
			}
		}
		if len(seen) > MaxH3Cells {
			return nil, ErrTooManyCells
		}
		cells := make([]string, 0, len(seen))
		for c := range seen {
			cells = append(cells, c.String())
		}
		slices.Sort(cells)
		out[i] = CellIsoline{Range: il.Range, RangeType: il.RangeType, Resolution: res, Cells: cells}
	}
	return out, nil
}

// geoPolygons reads a GeoJSON Polygon or MultiPolygon.
func geoPolygons(gj json.RawMessage) ([]h3.GeoPolygon, error) {
	var g struct {
		Type        string
		Coordinates json.RawMessage
	}
	if len(gj) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(gj, &g); err != nil {
		return nil, fmt.Errorf("reading isoline geometry: %w", err)
	}
	var rings [][][][2]float64
	switch g.Type {
	case "Polygon":
		var p [][][2]float64
		if err := json.Unmarshal(g.Coordinates, &p); err != nil {
			return nil, fmt.Errorf("reading isoline polygon: %w", err)
		}
		rings = [][][][2]float64{p}
	case "MultiPolygon":
		if err := json.Unmarshal(g.Coordinates, &rings); err != nil {
			return nil, fmt.Errorf("reading isoline multipolygon: %w", err)
		}
	default:
		return nil, errors.New("reading isoline geometry: not a polygon: " + g.Type)
	}
	out := make([]h3.GeoPolygon, 0, len(rings))
	for _, p := range rings {
		if len(p) == 0 {
			continue
		}
		gp := h3.GeoPolygon{GeoLoop: loop(p[0])}
		for _, hole := range p[1:] {
			gp.Holes = append(gp.Holes, loop(hole))
		}
		out = append(out, gp)
	}
	return out, nil
}

func loop(ring [][2]float64) h3.GeoLoop {
	l := make(h3.GeoLoop, len(ring))
	for i, c := range ring {
		l[i] = h3.NewLatLng(c[1], c[0])
	}
	return l
}

// estimateCells is about how many cells at res the polygons' bounding
// boxes hold (what the library sizes its buffer by).
func estimateCells(polys []h3.GeoPolygon, res int) float64 {
	var n float64
	cell := avgCellKm2 / math.Pow(7, float64(res))
	for _, p := range polys {
		minLat, maxLat, minLon, maxLon := 90.0, -90.0, 180.0, -180.0
		for _, ll := range p.GeoLoop {
			minLat, maxLat = min(minLat, ll.Lat), max(maxLat, ll.Lat)
			minLon, maxLon = min(minLon, ll.Lng), max(maxLon, ll.Lng)
		}
		if minLat > maxLat {
			continue
		}
		h := (maxLat - minLat) * 111.32
		w := (maxLon - minLon) * 111.32 * math.Cos((minLat+maxLat)/2*math.Pi/180)
		n += h * w / cell
	}
	return n
}
