package widget

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
	"github.com/meridian-gis/meridian/tiles/internal/filter"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
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
	// Mode is how the cells of a spatial-index source meet the spatial
	// filters (spatialFiltersMode; geometries always intersect).
	Mode spatialindex.Mode
	// covers is Limits.Covers.
	covers *spatialindex.Covers
}

// SpatialFilter is a polygon filter on a geometry or cell column.
type SpatialFilter struct {
	// Column is the geometry column as the client named it.
	Column string
	// GeoJSON is the Polygon or MultiPolygon, in lon/lat (EPSG:4326).
	GeoJSON string
	// Polygons is the same geometry.
	Polygons orb.MultiPolygon
	// Cells, instead of a polygon, are picked cells ({"indexes": […],
	// "type": h3|h3int|quadbin}) of CellKind: the rows in them (or, for
	// coarser cells, in their descendants) are kept.
	Cells    []uint64
	CellKind spatialindex.Kind
}

// ParseScope reads the filters, filtersLogicalOperator, spatialFilters
// and spatialFiltersMode parameters (JSON values; GET's JSON strings
// already decoded, nil when absent).
func ParseScope(filters json.RawMessage, logicalOp string, spatial json.RawMessage, spatialMode string) (Scope, error) {
	var sc Scope
	mode, err := spatialindex.ParseMode(strings.ToLower(strings.TrimSpace(spatialMode)))
	if err != nil {
		return sc, invalid("spatialFiltersMode: %w", err)
	}
	sc.Mode = mode
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
			sf, err := parseCells(col, g)
			if err != nil {
				return nil, err
			}
			out = append(out, sf)
			continue
		}
		geom, err := geojson.UnmarshalGeometry(g)
		if err != nil {
			return nil, invalid("spatialFilters[%q] is not a GeoJSON geometry: %v", col, err)
		}
		var mp orb.MultiPolygon
		switch p := geom.Geometry().(type) {
		case orb.Polygon:
			if len(p) == 0 || len(p[0]) < 4 {
				return nil, invalid("spatialFilters[%q]: a polygon needs a ring of at least 4 positions", col)
			}
			mp = orb.MultiPolygon{p}
		case orb.MultiPolygon:
			mp = p
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
		out = append(out, SpatialFilter{Column: col, GeoJSON: string(b), Polygons: mp})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Column < out[j].Column })
	return out, nil
}

// parseCells reads a picked-cells filter {"indexes": ["<id>", …], "type":
// "h3"|"h3int"|"quadbin"}: ids in hex, or in decimal (h3int, and quadbin
// ids too long for hex).
func parseCells(col string, raw json.RawMessage) (SpatialFilter, error) {
	var f struct {
		Indexes []string `json:"indexes"`
		Type    string   `json:"type"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return SpatialFilter{}, invalid("spatialFilters[%q]: want {indexes: [cell ids], type}: %v", col, err)
	}
	kind, ok := spatialindex.ParseKind(strings.TrimSuffix(f.Type, "int"))
	if !ok || f.Type == "quadbinint" {
		return SpatialFilter{}, invalid("spatialFilters[%q].type %q: want h3, h3int or quadbin", col, f.Type)
	}
	if len(f.Indexes) > MaxFilterCells {
		return SpatialFilter{}, invalid("spatialFilters[%q]: more than %d indexes", col, MaxFilterCells)
	}
	sf := SpatialFilter{Column: col, CellKind: kind, Cells: make([]uint64, 0, len(f.Indexes))}
	for _, id := range f.Indexes {
		c, err := parseCell(kind, id, f.Type != "h3")
		if err != nil {
			return SpatialFilter{}, invalid("spatialFilters[%q]: index %q is not a %s cell", col, id, f.Type)
		}
		sf.Cells = append(sf.Cells, c)
	}
	return sf, nil
}

// spatial renders one spatial filter: on a spatial-index source's cell
// column, cellSpatial; on a geometry column, the polygon (bound as GeoJSON
// text) moved to the column's SRID; columns of unknown SRID (0) are taken
// as lon/lat.
func (b *builder) spatial(sf SpatialFilter) (string, error) {
	c, err := b.src.column(sf.Column)
	if err != nil {
		return "", err
	}
	ix := b.src.Index
	switch {
	case ix != nil && (sf.Cells != nil || strings.EqualFold(c.Name, ix.Column)):
		return b.cellSpatial(c, sf)
	case sf.Cells != nil:
		return "", clienterr.Errorf(ErrNotSupported, ": spatial filters given as cell lists (indexes) need an h3 or quadbin source")
	}
	var g *catalog.GeomColumn
	for i := range b.src.Geoms {
		if b.src.Geoms[i].Name == c.Name {
			g = &b.src.Geoms[i]
		}
	}
	switch {
	case g == nil && ix != nil:
		return "", invalid("spatialFilters: column %q is neither the source's %s column %q nor a geometry column", sf.Column, ix.Kind, ix.Column)
	case g == nil:
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

// MaxFilterCells bounds the cell id ranges a spatial filter on a
// spatial-index source may cover (and, four times over, the cells walked
// to find them).
const MaxFilterCells = 100_000

// cellSpatial renders a spatial filter on the cell column c of a
// spatial-index source: the cells that meet the polygons in scope's mode
// (spatialindex.Cover), or the picked cells and their descendants, as a
// bound int8multirange of their ids, with the range of all of them first
// (a btree on a bigint cell column serves it). Hex text cells are read as
// bigint as the tile statement reads them.
func (b *builder) cellSpatial(c catalog.Column, sf SpatialFilter) (string, error) {
	ix := b.src.Index
	if !strings.EqualFold(c.Name, ix.Column) {
		return "", invalid("spatialFilters[%q]: indexes filter the source's %s column %q", sf.Column, ix.Kind, ix.Column)
	}
	if sf.Cells != nil && sf.CellKind != ix.Kind {
		return "", invalid("spatialFilters[%q]: %s indexes on a %s source", sf.Column, sf.CellKind, ix.Kind)
	}
	if ix.DataRes < 0 {
		return "false", nil
	}
	ranges, err := b.cellRanges(sf)
	if err != nil {
		return "", err
	}
	if len(ranges) == 0 {
		return "false", nil
	}
	var m strings.Builder
	m.WriteByte('{')
	for i, r := range ranges {
		if i > 0 {
			m.WriteByte(',')
		}
		m.WriteString("[" + strconv.FormatInt(int64(r.Lo), 10) + "," + strconv.FormatInt(int64(r.Hi), 10) + "]")
	}
	m.WriteByte('}')
	cell := cellInt8(c, ix.Text)
	bounds := ""
	if !ix.Text {
		bounds = ref(c) + " BETWEEN " + b.bind(int64(ranges[0].Lo)) + "::int8 AND " + b.bind(int64(ranges[len(ranges)-1].Hi)) + "::int8 AND "
	}
	return "(" + bounds + b.bind(m.String()) + "::text::int8multirange @> " + cell + ")", nil
}

// cellRanges returns the id ranges, at the source's data resolution, of
// the cells sf keeps: the polygons' cover, or the picked cells' descendants
// (picked cells finer than the data hold no row).
func (b *builder) cellRanges(sf SpatialFilter) ([]spatialindex.Range, error) {
	ix := b.src.Index
	if sf.Cells == nil {
		ranges, err := b.scope.covers.Cover(ix.Kind, sf.GeoJSON, sf.Polygons, ix.DataRes, b.scope.Mode, MaxFilterCells)
		switch {
		case errors.Is(err, spatialindex.ErrNoH3):
			return nil, clienterr.Errorf(ErrNotSupported, ": %w", err)
		case err != nil:
			return nil, invalid("spatialFilters[%q]: %w", sf.Column, err)
		}
		return ranges, nil
	}
	var rs []spatialindex.Range
	for _, c := range sf.Cells {
		if ix.Kind.Res(c) <= ix.DataRes {
			lo, hi := ix.Kind.ChildRange(c, ix.DataRes)
			rs = append(rs, spatialindex.Range{Lo: lo, Hi: hi})
		}
	}
	return spatialindex.MergeRanges(rs, ix.Kind, ix.DataRes), nil
}
