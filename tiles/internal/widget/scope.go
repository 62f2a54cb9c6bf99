package widget

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
	"github.com/meridian-gis/meridian/tiles/internal/filter"
)

// MaxSpatialFilterBytes bounds one spatial filter's GeoJSON.
const MaxSpatialFilterBytes = 1 << 20

// Scope restricts the rows a widget reads: CARTO filters (§2.7) and
// spatial filters.
type Scope struct {
	// Filters are the column filters.
	Filters filter.Filters
	// Or combines the filters of different columns with OR
	// (filtersLogicalOperator=or) instead of AND.
	Or bool
	// Spatial keeps rows whose geometry intersects a polygon; several are
	// ANDed.
	Spatial []SpatialFilter
}

// SpatialFilter is a polygon filter on a geometry column.
type SpatialFilter struct {
	// Column is the geometry column as the client named it.
	Column string
	// GeoJSON is the Polygon or MultiPolygon, in lon/lat (EPSG:4326).
	GeoJSON string
}

// ParseScope reads the filters, filtersLogicalOperator and spatialFilters
// parameters (JSON values; GET's JSON strings already decoded, nil when
// absent).
func ParseScope(filters json.RawMessage, logicalOp string, spatial json.RawMessage) (Scope, error) {
	var sc Scope
	f, err := filter.Parse(filters)
	if err != nil {
		return sc, err
	}
	sc.Filters = f
	switch strings.ToLower(strings.TrimSpace(logicalOp)) {
	case "", "and":
	case "or":
		sc.Or = true
	default:
		return sc, invalid("filtersLogicalOperator %q: want and or or", logicalOp)
	}
	if sc.Spatial, err = parseSpatial(spatial); err != nil {
		return sc, err
	}
	return sc, nil
}

// parseSpatial reads {"<column>": GeoJSON Polygon|MultiPolygon}.
func parseSpatial(raw json.RawMessage) ([]SpatialFilter, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid("spatialFilters: want an object of geometry columns: %v", err)
	}
	var out []SpatialFilter
	for col, g := range m {
		g = bytes.TrimSpace(g)
		if string(g) == "null" {
			continue
		}
		if len(g) > MaxSpatialFilterBytes {
			return nil, invalid("spatialFilters[%q] is larger than %d bytes", col, MaxSpatialFilterBytes)
		}
		var probe struct {
			Indexes json.RawMessage `json:"indexes"`
		}
		if json.Unmarshal(g, &probe) == nil && probe.Indexes != nil {
			return nil, clienterr.Errorf(ErrNotSupported, ": spatial-index filters (indexes) need an h3 or quadbin source; this server serves geometry sources only")
		}
		geom, err := geojson.UnmarshalGeometry(g)
		if err != nil {
			return nil, invalid("spatialFilters[%q] is not a GeoJSON geometry: %v", col, err)
		}
		switch p := geom.Geometry().(type) {
		case orb.Polygon:
			if len(p) == 0 || len(p[0]) < 4 {
				return nil, invalid("spatialFilters[%q]: a polygon needs a ring of at least 4 positions", col)
			}
		case orb.MultiPolygon:
			if len(p) == 0 {
				return nil, invalid("spatialFilters[%q]: empty MultiPolygon", col)
			}
			for _, poly := range p {
				if len(poly) == 0 || len(poly[0]) < 4 {
					return nil, invalid("spatialFilters[%q]: a polygon needs a ring of at least 4 positions", col)
				}
			}
		default:
			return nil, invalid("spatialFilters[%q] is a %s: want a Polygon or MultiPolygon", col, geom.Type)
		}
		b, err := geom.MarshalJSON()
		if err != nil {
			return nil, invalid("spatialFilters[%q]: %v", col, err)
		}
		out = append(out, SpatialFilter{Column: col, GeoJSON: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Column < out[j].Column })
	return out, nil
}

// spatial renders one spatial filter: the polygon (bound as GeoJSON text)
// moved to the column's SRID; columns of unknown SRID (0) are taken as
// lon/lat.
func (b *builder) spatial(sf SpatialFilter) (string, error) {
	c, err := b.src.column(sf.Column)
	if err != nil {
		return "", err
	}
	var g *catalog.GeomColumn
	for i := range b.src.Geoms {
		if b.src.Geoms[i].Name == c.Name {
			g = &b.src.Geoms[i]
		}
	}
	if g == nil {
		return "", invalid("spatialFilters: column %q is not a geometry column of the source", sf.Column)
	}
	poly := "ST_GeomFromGeoJSON(" + b.bind(sf.GeoJSON) + "::text)"
	switch g.SRID {
	case 4326:
		poly = "ST_SetSRID(" + poly + ", 4326)"
	case 0:
		poly = "ST_SetSRID(" + poly + ", 0)"
	default:
		poly = "ST_Transform(ST_SetSRID(" + poly + ", 4326), " + b.bind(int32(g.SRID)) + "::int)"
	}
	return "ST_Intersects(" + ref(c) + ", " + poly + ")", nil
}
