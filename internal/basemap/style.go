package basemap

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Styles are the basemap's MapLibre styles.
var Styles = []string{"meridian-light", "meridian-dark"}

// palette is one style's colours.
type palette struct {
	water, land, border, admin1, coast, river, lake, label, halo, dot string
	road, roadMajor                                                   string
}

var palettes = map[string]palette{
	"meridian-light": {water: "#d4e3ec", land: "#f7f5f0", border: "#bdb6ab", admin1: "#d9d3c8", coast: "#a7bfcc",
		river: "#b3cddb", lake: "#d4e3ec", label: "#4a4640", halo: "#ffffff", dot: "#7a7368",
		road: "#e4ded3", roadMajor: "#eac79a"},
	"meridian-dark": {water: "#18212b", land: "#2b2e34", border: "#4f545d", admin1: "#3d4148", coast: "#33465a",
		river: "#2a3d52", lake: "#18212b", label: "#c9ccd1", halo: "#1b1d21", dot: "#9aa0a8",
		road: "#3a3e45", roadMajor: "#6b5b43"},
}

// StyleOptions say where the style's tiles and glyphs are.
type StyleOptions struct {
	// Base is the public origin, e.g. https://maps.example.com (no slash).
	Base string
	// Connection is the data connection holding Schema.
	Connection string
	// Token is an access token granting Schema's tables (maps API); it
	// rides in the tile URLs, since MapLibre sends no Authorization.
	Token string
}

// Style returns the MapLibre style name (one of Styles).
func Style(name string, o StyleOptions) ([]byte, error) {
	p, ok := palettes[name]
	if !ok {
		return nil, fmt.Errorf("basemap: no style %q (have %s)", name, strings.Join(Styles, ", "))
	}
	src := func(table string, cols ...string) map[string]any {
		q := url.Values{}
		q.Set("name", Schema+"."+table)
		q.Set("formatTiles", "mvt")
		if len(cols) > 0 {
			q.Set("columns", strings.Join(cols, ","))
		}
		q.Set("access_token", o.Token)
		return map[string]any{
			"type":        "vector",
			"tiles":       []string{o.Base + "/api/v3/maps/" + url.PathEscape(o.Connection) + "/table/{z}/{x}/{y}?" + q.Encode()},
			"minzoom":     0,
			"maxzoom":     14,
			"attribution": "Natural Earth",
		}
	}
	lineWidth := func(a, b float64) []any {
		return []any{"interpolate", []any{"linear"}, []any{"zoom"}, 0, a, 8, b}
	}
	// OSM roads (where loaded): the bigger classes from lower zooms,
	// wider as the map zooms in.
	road := func(id string, minRank, maxRank, minzoom int, color string, w0, w1 float64) map[string]any {
		return map[string]any{
			"id": id, "type": "line", "source": "roads", "source-layer": "default", "minzoom": minzoom,
			"filter": []any{"all", []any{">=", []any{"get", "rank"}, minRank}, []any{"<=", []any{"get", "rank"}, maxRank}},
			"layout": map[string]any{"line-cap": "round", "line-join": "round"},
			"paint": map[string]any{"line-color": color,
				"line-width": []any{"interpolate", []any{"exponential", 1.6}, []any{"zoom"}, minzoom, w0, 16, w1}},
		}
	}
	label := func(id string, minRank, maxRank, minzoom, size int) map[string]any {
		return map[string]any{
			"id": id, "type": "symbol", "source": "places", "source-layer": "default", "minzoom": minzoom,
			"filter": []any{"all", []any{">=", []any{"get", "scalerank"}, minRank}, []any{"<=", []any{"get", "scalerank"}, maxRank}},
			"layout": map[string]any{
				"text-field": []any{"get", "name"}, "text-font": []string{"Go Regular"}, "text-size": size,
				"text-anchor": "top", "text-offset": []float64{0, 0.4}, "text-max-width": 8, "symbol-sort-key": []any{"get", "scalerank"},
			},
			"paint": map[string]any{"text-color": p.label, "text-halo-color": p.halo, "text-halo-width": 1.2},
		}
	}
	style := map[string]any{
		"version": 8,
		"name":    name,
		"glyphs":  o.Base + "/basemap/fonts/{fontstack}/{range}.pbf",
		"sources": map[string]any{
			"land":      src("land", "name"),
			"lakes":     src("lakes", "scalerank"),
			"rivers":    src("rivers", "scalerank"),
			"coastline": src("coastline"),
			"admin1":    src("admin1"),
			"places":    src("places", "name", "scalerank"),
			"roads":     src("roads", "rank"),
		},
		"layers": []any{
			map[string]any{"id": "water", "type": "background", "paint": map[string]any{"background-color": p.water}},
			map[string]any{"id": "land", "type": "fill", "source": "land", "source-layer": "default", "paint": map[string]any{"fill-color": p.land}},
			map[string]any{"id": "lakes", "type": "fill", "source": "lakes", "source-layer": "default", "paint": map[string]any{"fill-color": p.lake}},
			map[string]any{"id": "rivers", "type": "line", "source": "rivers", "source-layer": "default", "minzoom": 2,
				"paint": map[string]any{"line-color": p.river, "line-width": lineWidth(0.4, 1.6)}},
			map[string]any{"id": "coastline", "type": "line", "source": "coastline", "source-layer": "default",
				"paint": map[string]any{"line-color": p.coast, "line-width": lineWidth(0.5, 1.2)}},
			map[string]any{"id": "admin1", "type": "line", "source": "admin1", "source-layer": "default", "minzoom": 3,
				"paint": map[string]any{"line-color": p.admin1, "line-width": lineWidth(0.4, 1), "line-dasharray": []float64{3, 2}}},
			map[string]any{"id": "borders", "type": "line", "source": "land", "source-layer": "default",
				"paint": map[string]any{"line-color": p.border, "line-width": lineWidth(0.5, 1.4)}},
			road("roads-service", 6, 6, 14, p.road, 0.5, 2),
			road("roads-street", 5, 5, 12, p.road, 0.5, 5),
			road("roads-tertiary", 4, 4, 9, p.road, 0.5, 7),
			road("roads-major", 1, 3, 6, p.roadMajor, 0.5, 9),
			map[string]any{"id": "places-dot", "type": "circle", "source": "places", "source-layer": "default", "minzoom": 3,
				"filter": []any{"<=", []any{"get", "scalerank"}, 6},
				"paint":  map[string]any{"circle-radius": 2, "circle-color": p.dot}},
			label("places-major", 0, 2, 0, 12),
			label("places-mid", 3, 5, 4, 11),
			label("places-minor", 6, 8, 6, 10),
		},
	}
	return json.Marshal(style)
}
