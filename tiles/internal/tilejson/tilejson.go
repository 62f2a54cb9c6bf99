// Package tilejson is the TileJSON 3.0.0 document the maps API answers
// (CARTO_API.md §2.2), with CARTO's additions (tilestats,
// tileResolution, fraction_dropped_per_zoom, the spatial-index
// resolutions), as one typed struct for every kind of source.
package tilejson

import "math"

// Version is the TileJSON version written.
const Version = "3.0.0"

// TileJSON is a source's TileJSON.
type TileJSON struct {
	TileJSON    string   `json:"tilejson"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Version     string   `json:"version"`
	Attribution string   `json:"attribution"`
	Scheme      string   `json:"scheme"`
	Tiles       []string `json:"tiles"`
	// MinResolution, MaxResolution and DataResolution are set for
	// spatial-index sources only.
	MinResolution  *int `json:"minresolution,omitempty"`
	MaxResolution  *int `json:"maxresolution,omitempty"`
	DataResolution *int `json:"dataresolution,omitempty"`
	MinZoom        int  `json:"minzoom"`
	MaxZoom        int  `json:"maxzoom"`
	// Bounds are west, south, east, north in degrees; west > east when
	// the data crosses the antimeridian.
	Bounds [4]float64 `json:"bounds"`
	// Center is longitude, latitude, zoom.
	Center [3]float64 `json:"center"`
	// TileResolution is CARTO's tileResolution (vector sources).
	TileResolution float64       `json:"tileResolution,omitempty"`
	VectorLayers   []VectorLayer `json:"vector_layers"`
	TileStats      TileStats     `json:"tilestats"`
	// FractionDroppedPerZoom is, per zoom from 0 to MaxZoom, the share of
	// the features a tile of that zoom leaves out (vector sources).
	FractionDroppedPerZoom []float64 `json:"fraction_dropped_per_zoom,omitempty"`
}

// VectorLayer describes the one layer of the tiles.
type VectorLayer struct {
	ID           string            `json:"id"`
	MinZoom      int               `json:"minzoom"`
	MaxZoom      int               `json:"maxzoom"`
	Fields       map[string]string `json:"fields"`
	GeometryType string            `json:"geometry_type,omitempty"`
}

// TileStats are Mapbox tilestats of the layer.
type TileStats struct {
	LayerCount int          `json:"layerCount"`
	Layers     []LayerStats `json:"layers"`
}

// LayerStats describe one layer.
type LayerStats struct {
	Layer          string      `json:"layer"`
	Count          int64       `json:"count"`
	Geometry       string      `json:"geometry"`
	AttributeCount int         `json:"attributeCount"`
	Attributes     []Attribute `json:"attributes"`
}

// Attribute is one property of the layer and its tilestats type.
type Attribute struct {
	Attribute string `json:"attribute"`
	Type      string `json:"type"`
}

// World are the bounds of the whole Web-Mercator world.
var World = [4]float64{-180, -85.0511, 180, 85.0511}

// Center returns a sensible center of bounds west, south, east, north
// (west > east: across the antimeridian) and the zoom at which they fit
// in about one tile and a half, at most maxZoom.
func Center(west, south, east, north float64, maxZoom int) [3]float64 {
	width := east - west
	if width < 0 { // across the antimeridian
		width += 360
	}
	lon := west + width/2
	if lon > 180 {
		lon -= 360
	}
	z := 0
	for z < maxZoom && width/360*math.Exp2(float64(z+1)) <= 1.5 {
		z++
	}
	return [3]float64{lon, (south + north) / 2, float64(z)}
}
