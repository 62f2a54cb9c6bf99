package maps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/grant"
)

// Limits on one map.
const (
	// MaxConfigBytes bounds a keplerMapConfig document.
	MaxConfigBytes = 1 << 20
	maxDatasets    = 50
	maxLayers      = 100
	maxTags        = 20
	maxTagLen      = 50
	maxTitleLen    = 200
	maxDescLen     = 5000
	maxSourceLen   = 100000
	maxColumns     = 200
	maxShares      = 500
	// MaxThumbnailBytes bounds a stored thumbnail.
	MaxThumbnailBytes = 512 << 10
)

// Dataset is one data source of a map, as @carto/api-client's fetchMap
// reads it (PLATFORM.md §4): a table or a SQL query of a connection,
// with its geometry column or spatial index ("h3:<col>", "quadbin:<col>").
type Dataset struct {
	// ID is the id layers name in config.dataId.
	ID string `json:"id"`
	// Type is "table" or "query".
	Type string `json:"type"`
	// Source is the table name (schema.table) or the SQL text.
	Source string `json:"source"`
	// ConnectionName is the data connection's NAME.
	ConnectionName string `json:"connectionName"`
	// GeoColumn is "geom" (default), "h3:<col>" or "quadbin:<col>".
	GeoColumn string `json:"geoColumn,omitempty"`
	// Columns are the attribute columns the tiles carry.
	Columns []string `json:"columns,omitempty"`
	// AggregationExp and AggregationResLevel configure spatial-index
	// datasets.
	AggregationExp      string `json:"aggregationExp,omitempty"`
	AggregationResLevel *int   `json:"aggregationResLevel,omitempty"`
	// QueryParameters are the query's bind parameters.
	QueryParameters json.RawMessage `json:"queryParameters,omitempty"`
	// Label is a display name in the Builder.
	Label string `json:"label,omitempty"`
}

// SpatialIndex returns "h3", "quadbin" or "" (geometry).
func (d *Dataset) SpatialIndex() string {
	if kind, _, ok := strings.Cut(d.GeoColumn, ":"); ok {
		return kind
	}
	return ""
}

// GeoColumnName is the column of GeoColumn, "geom" by default.
func (d *Dataset) GeoColumnName() string {
	if _, col, ok := strings.Cut(d.GeoColumn, ":"); ok {
		return col
	}
	if d.GeoColumn == "" {
		return "geom"
	}
	return d.GeoColumn
}

// Grant is what a map token needs to serve the dataset.
func (d *Dataset) Grant() grant.Grant {
	return grant.Grant{Connection: d.ConnectionName, Source: d.Source}
}

var (
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)
	datasetRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	tableRE   = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$`)
)

// check validates d's shape (not whether its table exists: see
// api.probe). where prefixes messages ("datasets[1]").
func (d *Dataset) check(where string) error {
	if !datasetRE.MatchString(d.ID) {
		return httpapi.BadRequest("%s.id: 1 to 64 letters, digits, '-' or '_'", where)
	}
	switch d.Type {
	case "table":
		if !tableRE.MatchString(d.Source) {
			return httpapi.BadRequest("%s.source: %q is not a table name such as public.counties", where, d.Source)
		}
	case "query":
		if strings.TrimSpace(d.Source) == "" || len(d.Source) > maxSourceLen {
			return httpapi.BadRequest("%s.source: a SQL query of 1 to %d characters", where, maxSourceLen)
		}
	case "tileset", "raster":
		return httpapi.BadRequest("%s.type: %q datasets are not served by Meridian; use table or query", where, d.Type)
	default:
		return httpapi.BadRequest("%s.type: %q is not one of table, query", where, d.Type)
	}
	if !grant.ValidConnectionName(d.ConnectionName) {
		return httpapi.BadRequest("%s.connectionName: %q is not a connection name", where, d.ConnectionName)
	}
	switch kind := d.SpatialIndex(); kind {
	case "", "h3", "quadbin":
	default:
		return httpapi.BadRequest("%s.geoColumn: %q: use a column name, h3:<column> or quadbin:<column>", where, d.GeoColumn)
	}
	if !identRE.MatchString(d.GeoColumnName()) {
		return httpapi.BadRequest("%s.geoColumn: %q is not a column name", where, d.GeoColumn)
	}
	if len(d.Columns) > maxColumns {
		return httpapi.BadRequest("%s.columns: at most %d", where, maxColumns)
	}
	for _, c := range d.Columns {
		if !identRE.MatchString(c) {
			return httpapi.BadRequest("%s.columns: %q is not a column name", where, c)
		}
	}
	if d.AggregationResLevel != nil && (*d.AggregationResLevel < 0 || *d.AggregationResLevel > 26) {
		return httpapi.BadRequest("%s.aggregationResLevel: 0 to 26", where)
	}
	if len(d.AggregationExp) > 10000 {
		return httpapi.BadRequest("%s.aggregationExp: at most 10000 characters", where)
	}
	if len(d.QueryParameters) > 0 && !bytes.Equal(d.QueryParameters, []byte("null")) {
		if d.Type != "query" {
			return httpapi.BadRequest("%s.queryParameters: only query datasets take parameters", where)
		}
		if c := firstByte(d.QueryParameters); c != '[' && c != '{' {
			return httpapi.BadRequest("%s.queryParameters: an array or an object", where)
		}
	}
	if len(d.Label) > maxTitleLen {
		return httpapi.BadRequest("%s.label: at most %d characters", where, maxTitleLen)
	}
	return nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// LayerTypes are the layer types fetchMap renders; it throws on the
// others ("Outdated layer type" for geojson, point, grid, hexagon…).
var LayerTypes = []string{"tileset", "mvt", "h3", "quadbin", "heatmapTile", "clusterTile", "raster"}

// kepler is the part of a keplerMapConfig the server checks. Everything
// else is kept as sent.
type kepler struct {
	Version string `json:"version"`
	Config  *struct {
		VisState *struct {
			Layers []struct {
				ID     string `json:"id"`
				Type   string `json:"type"`
				Config *struct {
					DataID    string          `json:"dataId"`
					VisConfig json.RawMessage `json:"visConfig"`
				} `json:"config"`
				VisualChannels json.RawMessage `json:"visualChannels"`
			} `json:"layers"`
			InteractionConfig *struct {
				Tooltip json.RawMessage `json:"tooltip"`
			} `json:"interactionConfig"`
		} `json:"visState"`
		MapState *struct {
			Latitude  *float64 `json:"latitude"`
			Longitude *float64 `json:"longitude"`
			Zoom      *float64 `json:"zoom"`
			Pitch     float64  `json:"pitch"`
			Bearing   float64  `json:"bearing"`
		} `json:"mapState"`
		MapStyle *struct {
			StyleType string `json:"styleType"`
		} `json:"mapStyle"`
		Filters json.RawMessage `json:"filters"`
	} `json:"config"`
}

// checkConfig validates a keplerMapConfig against the map's datasets:
// what fetchMap needs to render it, with a message naming the field.
func checkConfig(raw json.RawMessage, datasets []Dataset) error {
	if len(raw) > MaxConfigBytes {
		return httpapi.BadRequest("keplerMapConfig: at most %d bytes", MaxConfigBytes)
	}
	var k kepler
	if err := json.Unmarshal(raw, &k); err != nil {
		return httpapi.BadRequest("keplerMapConfig: %v", plainJSONError(err))
	}
	if k.Version != "v1" {
		return httpapi.BadRequest(`keplerMapConfig.version: must be "v1" (got %q)`, k.Version)
	}
	if k.Config == nil {
		return httpapi.BadRequest("keplerMapConfig.config: required")
	}
	c := k.Config
	if c.VisState == nil {
		return httpapi.BadRequest("keplerMapConfig.config.visState: required ({\"layers\": []} for an empty map)")
	}
	if len(c.VisState.Layers) > maxLayers {
		return httpapi.BadRequest("keplerMapConfig.config.visState.layers: at most %d", maxLayers)
	}
	if ic := c.VisState.InteractionConfig; ic != nil && firstByte(ic.Tooltip) != '{' {
		return httpapi.BadRequest("keplerMapConfig.config.visState.interactionConfig.tooltip: an object such as {\"enabled\": true, \"fieldsToShow\": {}}")
	}
	ids := make([]string, len(datasets))
	for i := range datasets {
		ids[i] = datasets[i].ID
	}
	seen := map[string]bool{}
	for i, l := range c.VisState.Layers {
		where := fmt.Sprintf("keplerMapConfig.config.visState.layers[%d]", i)
		if l.ID == "" || len(l.ID) > 100 {
			return httpapi.BadRequest("%s.id: 1 to 100 characters", where)
		}
		if seen[l.ID] {
			return httpapi.BadRequest("%s.id: %q is used by another layer", where, l.ID)
		}
		seen[l.ID] = true
		if !slices.Contains(LayerTypes, l.Type) {
			return httpapi.BadRequest("%s.type: %q is a layer type fetchMap rejects; use one of %s", where, l.Type, strings.Join(LayerTypes, ", "))
		}
		if l.Config == nil {
			return httpapi.BadRequest("%s.config: required", where)
		}
		if !slices.Contains(ids, l.Config.DataID) {
			return httpapi.BadRequest("%s.config.dataId: %q is not a dataset of this map (add it first: POST …/datasets)", where, l.Config.DataID)
		}
		if firstByte(l.Config.VisConfig) != '{' {
			return httpapi.BadRequest("%s.config.visConfig: an object is required", where)
		}
		if firstByte(l.VisualChannels) != '{' {
			return httpapi.BadRequest("%s.visualChannels: an object is required ({} for none)", where)
		}
	}
	if ms := c.MapState; ms != nil {
		if ms.Latitude == nil || ms.Longitude == nil || ms.Zoom == nil {
			return httpapi.BadRequest("keplerMapConfig.config.mapState: latitude, longitude and zoom are required")
		}
		if bad(*ms.Latitude, -90, 90) || bad(*ms.Longitude, -180, 180) || bad(*ms.Zoom, 0, 24) || bad(ms.Pitch, 0, 85) || bad(ms.Bearing, -360, 360) {
			return httpapi.BadRequest("keplerMapConfig.config.mapState: latitude in [-90, 90], longitude in [-180, 180], zoom in [0, 24], pitch in [0, 85]")
		}
	}
	if len(c.Filters) > 0 && !bytes.Equal(c.Filters, []byte("null")) {
		var f map[string]json.RawMessage
		if err := json.Unmarshal(c.Filters, &f); err != nil {
			return httpapi.BadRequest("keplerMapConfig.config.filters: an object keyed by dataset id")
		}
		for id := range f {
			if !slices.Contains(ids, id) {
				return httpapi.BadRequest("keplerMapConfig.config.filters: %q is not a dataset of this map", id)
			}
		}
	}
	return nil
}

func bad(v, lo, hi float64) bool { return math.IsNaN(v) || v < lo || v > hi }

// plainJSONError turns a decoding error into a message without Go type
// names.
func plainJSONError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("%s: expected %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	}
	return "malformed JSON"
}

func jsonKind(k string) string {
	switch k {
	case "struct", "map":
		return "an object"
	case "slice":
		return "an array"
	case "float64", "int":
		return "a number"
	}
	return "a " + k
}

// DefaultConfig is the keplerMapConfig of a new map: no layers, the
// offline light basemap, the world.
func DefaultConfig(styleURL string) json.RawMessage {
	cfg := map[string]any{
		"version": "v1",
		"config": map[string]any{
			"filters":  map[string]any{},
			"mapState": map[string]any{"latitude": 20, "longitude": 0, "zoom": 1.5, "pitch": 0, "bearing": 0, "dragRotate": false},
			"mapStyle": map[string]any{"styleType": "custom:meridian-light", "visibleLayerGroups": map[string]any{}},
			"customBaseMaps": map[string]any{"customStyle": map[string]any{
				"id": "meridian-light", "label": "Meridian light", "url": styleURL,
				"customAttribution": "Natural Earth",
			}},
			"visState": map[string]any{
				"layers": []any{}, "layerBlending": "normal",
				"interactionConfig": map[string]any{"tooltip": map[string]any{"enabled": true, "fieldsToShow": map[string]any{}}},
			},
			"widgets": []any{}, "sqlParameters": []any{}, "popupSettings": map[string]any{}, "legendSettings": map[string]any{},
		},
	}
	b, _ := json.Marshal(cfg)
	return b
}
