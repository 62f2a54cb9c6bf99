// Package mvt builds the one SQL statement that renders a Mapbox Vector
// Tile of a source in PostGIS. It is pure: names come in already checked
// against the catalog, SQL comes out, nothing touches a database. The tile
// address and the level of detail are bound parameters, so a source's
// statement text never changes from tile to tile and PostgreSQL reuses one
// prepared plan for all of them (pgx's statement cache keys on the text).
//
// Every statement returns one row of three columns:
//
//	tile  bytea  -- the MVT layer "default" (empty when no feature)
//	kept  int8   -- features kept (after the cap; some may still vanish
//	                when clipped and snapped to the grid)
//	total int8   -- features that qualified before the feature cap (for
//	                points: the rows aggregated)
//
// How geometry is reduced, by shape:
//
//   - Points are aggregated on a Web-Mercator grid of 2^(z+AggLevel-lod)
//     cells around the world (CARTO's dynamic tiler does the same, at
//     level z+8 for tileResolution 0.5). One feature per occupied cell, at
//     the centroid of its points, carrying the properties of a
//     representative row and the cell's row count in _carto_point_density
//     (or the aggregation expressions when given). The representative is
//     the row with the smallest key (Layer.Key), or without a key the row
//     with the smallest property values (compared as text, in column
//     order), so the result does not depend on the scan order.
//   - Lines and polygons are cut to the tile plus twice the buffer and
//     simplified before the final clip (Douglas-Peucker at half a pixel
//     times 2^lod, in the source's units when they are degrees or
//     Web-Mercator metres), features smaller than a pixel are
//     culled, and when more than MaxFeatures>>lod remain the biggest are
//     kept (bounding-box area for polygons, bounding-box size for lines):
//     never an arbitrary LIMIT cut.
//
// The caller appends, after its own ArgsBefore arguments: z, x, y (int4)
// and lod (int4, 0 = full detail). Raising lod is how the caller brings a
// tile under its byte budget.
package mvt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
)

// LayerName is the name of the single layer of every tile.
const LayerName = "default"

// DensityProp is the per-cell point count property of aggregated points.
const DensityProp = "_carto_point_density"

// FeatureIDProp is the property carrying a feature's id (CARTO's
// _carto_feature_id), present when the source's columns ask for it: a
// hash of the feature's whole geometry, the same in every tile the
// feature appears in and in the pick model's rows (FeatureIDSQL).
const FeatureIDProp = "_carto_feature_id"

// FeatureIDSQL is the SQL of the feature id of row alias a with geometry
// column geom: 16 hex digits of the MD5 of its WKB. Every statement that
// emits or matches feature ids uses it.
func FeatureIDSQL(a, geom string) string {
	return "left(md5(ST_AsBinary(" + a + "." + ident(geom) + ")), 16)"
}

// Errors returned by Build.
var (
	// ErrInvalid: the Layer is incomplete or inconsistent.
	ErrInvalid = errors.New("mvt: invalid layer")
)

// PropKind says how a column becomes an MVT property value.
type PropKind int

// Property kinds.
const (
	// PropText is written with the type's text output (strings, uuid…).
	PropText PropKind = iota
	// PropInt is an integer up to 32 bits.
	PropInt
	// PropBigint is a 64-bit integer.
	PropBigint
	// PropFloat is a double (numeric, real, double precision, money).
	PropFloat
	// PropBool is a boolean.
	PropBool
	// PropTimestamp is written as ISO 8601 text.
	PropTimestamp
	// PropJSON is written as JSON text (json, jsonb, arrays, composites;
	// ST_AsMVT would otherwise flatten jsonb objects into properties).
	PropJSON
	// PropFeatureID is the feature id (FeatureIDSQL) of geometry column
	// Prop.Of, as text.
	PropFeatureID
)

// Prop is one property column.
type Prop struct {
	// Name of the column (also the property name).
	Name string
	// Kind of value.
	Kind PropKind
	// Of is the geometry column a PropFeatureID hashes.
	Of string
}

// PropOf maps a catalog column to its property kind. Geometry columns are
// not properties: ok is false for them.
func PropOf(c catalog.Column) (p Prop, ok bool) {
	p.Name = c.Name
	pg := strings.ToLower(c.PGType)
	switch c.Type {
	case catalog.TypeGeometry:
		return p, false
	case catalog.TypeBigint:
		p.Kind = PropBigint
	case catalog.TypeNumber:
		switch {
		case pg == "integer" || pg == "smallint":
			p.Kind = PropInt
		default:
			p.Kind = PropFloat
		}
	case catalog.TypeBoolean:
		p.Kind = PropBool
	case catalog.TypeTimestamp:
		p.Kind = PropTimestamp
	case catalog.TypeObject:
		p.Kind = PropJSON
	default:
		p.Kind = PropText
	}
	return p, true
}

// AggExpr is an aggregate expression computed per grid cell, already
// rendered as safe SQL over the row alias g (see package aggexp).
type AggExpr struct {
	// SQL of the aggregate, e.g. `sum(g."pop")::float8`.
	SQL string
	// Alias is the output property name.
	Alias string
}

// Layer describes what to render.
type Layer struct {
	// Schema and Table name the relation of a table source.
	Schema, Table string
	// Query is the SQL of a query source (instead of Schema/Table). It is
	// wrapped as a subquery on its own lines, so a trailing comment cannot
	// swallow the rest of the statement.
	Query string
	// Geom is the geometry column.
	Geom string
	// SRID of the geometry column; 0 means unknown and is treated as 4326.
	SRID int
	// Shape of the geometry column.
	Shape catalog.Shape
	// Props are the properties, in order.
	Props []Prop
	// Extent is the tile's coordinate grid (256..4096).
	Extent int
	// Buffer around the tile, in Extent units.
	Buffer int
	// Filter is an optional boolean SQL expression over the row alias g,
	// with placeholders numbered within ArgsBefore.
	Filter string
	// ArgsBefore is the number of arguments the caller binds before the
	// tile arguments (query parameters, filter values).
	ArgsBefore int
	// AggLevel is how many levels below the tile's zoom points are
	// aggregated (8 for tileResolution 0.5, CARTO's default).
	AggLevel int
	// Aggs replace the representative's properties of aggregated points.
	Aggs []AggExpr
	// NoPointAggregation renders points one by one, like other shapes.
	NoPointAggregation bool
	// MaxFeatures caps lines and polygons per tile at lod 0; 0: no cap.
	MaxFeatures int
	// KeepSmall keeps the polygons smaller than a pixel (culled
	// otherwise) as a one-pixel square at their centroid, so that a layer
	// of small polygons (a city's districts at a world zoom) is not an
	// empty tile. Build and BuildOverview both honour it.
	KeepSmall bool
	// Key is the table's single-column primary key, if any. Aggregated
	// points then take the properties of the row with the smallest key
	// in their cell (fetched by key, as from a point overview); without
	// one, the smallest property values.
	Key string
}

// Args returns the placeholders of the tile arguments for l.
func (l Layer) Args() (z, x, y, lod string) {
	n := l.ArgsBefore
	return "$" + strconv.Itoa(n+1) + "::int", "$" + strconv.Itoa(n+2) + "::int",
		"$" + strconv.Itoa(n+3) + "::int", "$" + strconv.Itoa(n+4) + "::int"
}

func (l Layer) validate() error {
	switch {
	case l.Query == "" && (l.Schema == "" || l.Table == ""):
		return fmt.Errorf("%w: no relation or query", ErrInvalid)
	case l.Query != "" && l.Table != "":
		return fmt.Errorf("%w: both a table and a query", ErrInvalid)
	case l.Geom == "":
		return fmt.Errorf("%w: no geometry column", ErrInvalid)
	case l.Extent < 64 || l.Extent > 1<<16:
		return fmt.Errorf("%w: extent %d out of range", ErrInvalid, l.Extent)
	case l.Buffer < 0 || l.Buffer > l.Extent:
		return fmt.Errorf("%w: buffer %d out of range", ErrInvalid, l.Buffer)
	case l.ArgsBefore < 0:
		return fmt.Errorf("%w: negative ArgsBefore", ErrInvalid)
	case len(l.Aggs) > 0 && !l.aggregates():
		return fmt.Errorf("%w: aggregation expressions need a point source", ErrInvalid)
	}
	for _, p := range l.Props {
		if p.Name == "" || strings.HasPrefix(p.Name, "__m") {
			return fmt.Errorf("%w: property name %q", ErrInvalid, p.Name)
		}
	}
	return nil
}

func (l Layer) aggregates() bool { return l.Shape == catalog.ShapePoint && !l.NoPointAggregation }

// Build returns the statement rendering l.
func Build(l Layer) (string, error) {
	if err := l.validate(); err != nil {
		return "", err
	}
	if l.aggregates() {
		return buildPoints(l), nil
	}
	return buildFeatures(l), nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func (l Layer) from() string {
	if l.Query != "" {
		return "(\n" + l.Query + "\n) g"
	}
	return pgx.Identifier{l.Schema, l.Table}.Sanitize() + " g"
}

func (l Layer) srid() int {
	if l.SRID == 0 {
		return 4326
	}
	return l.SRID
}

// geomExpr is the geometry column of row g, with an SRID.
func (l Layer) geomExpr() string {
	if l.SRID == 0 {
		return "ST_SetSRID(g." + ident(l.Geom) + ", 4326)"
	}
	return "g." + ident(l.Geom)
}

// envelope is the tile's envelope grown by the buffer, in the source SRID.
// ST_TileEnvelope's own margin wraps around the antimeridian at the
// world's edge (tile x=0 gets a box starting at +177°, which selects the
// wrong half of the world), so the margin is added with ST_Expand and the
// result clipped to the Mercator square.
func (l Layer) envelope() string { return l.bufferedEnvelope(1, l.srid()) }

// bufferedEnvelope is the tile grown by times the buffer, in srid.
func (l Layer) bufferedEnvelope(times, srid int) string {
	z, x, y, _ := l.Args()
	margin := "(" + fmtFloat(40075016.685578488*float64(times*l.Buffer)/float64(l.Extent)) + " / 2.0::float8 ^ " + z + ")"
	env := "ST_ClipByBox2D(ST_Expand(ST_TileEnvelope(" + z + ", " + x + ", " + y + "), " + margin + "), " + worldBox + ")"
	if srid == 3857 {
		return env
	}
	return "ST_Transform(" + env + ", " + strconv.Itoa(srid) + ")"
}

// worldBox is the Web-Mercator square.
const worldBox = "ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)"

func (l Layer) where() string {
	w := "WHERE " + l.geomExpr() + " && " + l.envelope()
	if l.Filter != "" {
		w += "\n  AND (" + l.Filter + ")"
	}
	return w
}

func (l Layer) asMVTGeom(geom string) string {
	z, x, y, _ := l.Args()
	return "ST_AsMVTGeom(" + geom + ", ST_TileEnvelope(" + z + ", " + x + ", " + y + "), " +
		strconv.Itoa(l.Extent) + ", " + strconv.Itoa(l.Buffer) + ", true)"
}

func (l Layer) asMVT() string {
	return "ST_AsMVT(t, '" + LayerName + "', " + strconv.Itoa(l.Extent) + ", '__mvt_geom')"
}

// units says whether the source SRID's units are known to the builder.
func (l Layer) unitsPerWorld() (float64, bool) {
	switch l.srid() {
	case 4326:
		return 360, true
	case 3857:
		return 40075016.685578488, true
	}
	return 0, false
}

// pixel returns SQL for the size of one Extent unit at the tile's zoom in
// the source's units (per world / 2^z / extent).
func (l Layer) pixel(perWorld float64) string {
	z, _, _, _ := l.Args()
	return "(" + fmtFloat(perWorld/float64(l.Extent)) + " / 2.0::float8 ^ " + z + ")"
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// propExpr renders property p of row alias a as an MVT-friendly value.
func propExpr(a string, p Prop) string {
	c := a + "." + ident(p.Name)
	switch p.Kind {
	case PropFeatureID:
		return FeatureIDSQL(a, p.Of)
	case PropFloat:
		return c + "::float8"
	case PropTimestamp:
		return "to_json(" + c + ") #>> '{}'"
	case PropJSON:
		return "to_json(" + c + ")::text"
	case PropText:
		return c + "::text"
	}
	return c
}

// castBack turns the text form of property p back into its MVT type.
func castBack(v string, p Prop) string {
	switch p.Kind {
	case PropInt:
		return v + "::int4"
	case PropBigint:
		return v + "::int8"
	case PropFloat:
		return v + "::float8"
	case PropBool:
		return v + "::bool"
	}
	return v
}

// writeFeaturesHead writes the outer SELECT of a line or polygon
// statement over features s (kept/total from the window count __mn when
// capped).
func (l Layer) writeFeaturesHead(b *strings.Builder) {
	b.WriteString("SELECT ")
	b.WriteString(l.asMVT())
	if l.MaxFeatures > 0 {
		b.WriteString(", count(*), coalesce(max(s.__mn), 0)::int8\n")
	} else {
		b.WriteString(", count(*), count(*)\n")
	}
}

// writeProps writes ", <property of row a> AS <name>" for every property.
func (l Layer) writeProps(b *strings.Builder, a string) {
	for _, p := range l.Props {
		b.WriteString(", ")
		b.WriteString(propExpr(a, p))
		b.WriteString(" AS ")
		b.WriteString(ident(p.Name))
	}
}

func buildFeatures(l Layer) string {
	_, _, _, lod := l.Args()
	geom := l.geomExpr()
	perWorld, known := l.unitsPerWorld()

	var b strings.Builder
	l.writeFeaturesHead(&b)
	b.WriteString("FROM (\n  SELECT ")
	b.WriteString(geom)
	b.WriteString(" AS __mg")
	l.writeProps(&b, "g")
	if l.MaxFeatures > 0 {
		b.WriteString(", count(*) OVER () AS __mn")
	}
	if known && l.KeepSmall && l.Shape == catalog.ShapePolygon {
		box := "postgis_getbbox(g." + ident(l.Geom) + ")"
		b.WriteString(", greatest(ST_XMax(" + box + ") - ST_XMin(" + box + "), ST_YMax(" + box + ") - ST_YMin(" + box + ")) < " +
			l.pixel(perWorld) + " AS __small")
	}
	b.WriteString("\n  FROM ")
	b.WriteString(l.from())
	b.WriteString("\n  ")
	b.WriteString(l.where())

	// Sizes come from the bounding box stored in the geometry's header:
	// postgis_getbbox reads only that slice of a TOASTed value, where
	// ST_XMin(geom) and friends decompress the whole geometry each time
	// (a province of 68k vertices is 760 KB, and a row is referred to up
	// to nine times between the filter and the ordering).
	box := "postgis_getbbox(g." + ident(l.Geom) + ")"
	w := "(ST_XMax(" + box + ") - ST_XMin(" + box + "))"
	h := "(ST_YMax(" + box + ") - ST_YMin(" + box + "))"
	cullable := known && (l.Shape == catalog.ShapeLine || l.Shape == catalog.ShapePolygon)
	keepSmall := cullable && l.KeepSmall && l.Shape == catalog.ShapePolygon
	if cullable && !keepSmall {
		// Features smaller than a pixel both ways cannot be seen.
		b.WriteString("\n  AND greatest(" + w + ", " + h + ") >= " + l.pixel(perWorld))
	}
	if l.MaxFeatures > 0 {
		b.WriteString("\n  ORDER BY ")
		switch l.Shape {
		case catalog.ShapeLine:
			b.WriteString("greatest(" + w + ", " + h + ") DESC")
		case catalog.ShapePoint, catalog.ShapeMultiPoint:
			// No size to rank points by: a hash is an even sample.
			b.WriteString("md5(ST_AsBinary(" + geom + "))")
		default:
			b.WriteString(w + " * " + h + " DESC")
		}
		b.WriteString(", ST_XMin(" + box + "), ST_YMin(" + box + ")")
		b.WriteString("\n  LIMIT (" + strconv.Itoa(l.MaxFeatures) + " >> " + lod + ")")
	}
	b.WriteString("\n) s\nCROSS JOIN LATERAL (SELECT ")
	g := l.simplified("s.__mg", perWorld, known)
	if keepSmall {
		// The one-pixel square standing for a polygon under a pixel.
		c := "ST_Centroid(s.__mg)"
		if l.srid() != 3857 {
			c = "ST_Transform(" + c + ", 3857)"
		}
		g = "CASE WHEN s.__small THEN ST_Expand(" + c + ", " + l.pixel(40075016.685578488) + " * 0.5) ELSE " + g + " END"
	}
	b.WriteString(l.asMVTGeom(g))
	b.WriteString(" AS __mvt_geom")
	for _, p := range l.Props {
		b.WriteString(", s.")
		b.WriteString(ident(p.Name))
	}
	b.WriteString(") t")
	return b.String()
}

// simplified returns geometry expression g in Web-Mercator, ready for
// ST_AsMVTGeom. Lines and polygons are first cut to the tile plus twice
// the buffer (ST_ClipByBox2D: cheap, no validity work; ST_AsMVTGeom makes
// the final clip and fixes validity), then simplified to half a pixel
// (times 2^lod) — both in the source's units before the transform when
// those are known, so that fewer vertices are projected.
func (l Layer) simplified(g string, perWorld float64, known bool) string {
	_, _, _, lod := l.Args()
	simplify := l.Shape != catalog.ShapePoint && l.Shape != catalog.ShapeMultiPoint
	if !simplify {
		if l.srid() == 3857 {
			return g
		}
		return "ST_Transform(" + g + ", 3857)"
	}
	if !known {
		perWorld = 40075016.685578488
	}
	tol := "(" + l.pixel(perWorld) + " * 0.5 * 2.0::float8 ^ " + lod + ")"
	switch {
	case l.srid() == 3857:
		return "ST_Simplify(ST_ClipByBox2D(" + g + ", (SELECT " + l.bufferedEnvelope(2, 3857) + ")), " + tol + ", true)"
	case known:
		return "ST_Transform(ST_Simplify(ST_ClipByBox2D(" + g + ", (SELECT " + l.bufferedEnvelope(2, l.srid()) + ")), " + tol + ", true), 3857)"
	default:
		return "ST_Simplify(ST_ClipByBox2D(ST_Transform(" + g + ", 3857), (SELECT " + l.bufferedEnvelope(2, 3857) + ")), " + tol + ", true)"
	}
}

// buildPoints aggregates points per grid cell. Web-Mercator coordinates
// are computed with arithmetic for SRID 4326 (no PROJ call per row), the
// cell's feature sits at the centroid of its points, and tile coordinates
// are computed directly (ST_AsMVTGeom is not needed for points already
// inside the buffered tile: the centroid of points inside a box is inside
// it).
func buildPoints(l Layer) string {
	z, x, y, lod := l.Args()
	geom := l.geomExpr()
	var mx, my string
	lateral := "\n  CROSS JOIN LATERAL (SELECT "
	switch l.srid() {
	case 3857:
		mx, my = "ST_X("+geom+")", "ST_Y("+geom+")"
	case 4326:
		mx = "ST_X(" + geom + ") * 111319.49079327357"
		my = "ln(tan(pi() / 4 + radians(least(greatest(ST_Y(" + geom + "), -85.0511287798066), 85.0511287798066)) / 2)) * 6378137"
	default:
		lateral += "ST_Transform(" + geom + ", 3857) AS p) p\n  CROSS JOIN LATERAL (SELECT "
		mx, my = "ST_X(p.p)", "ST_Y(p.p)"
	}
	lateral += mx + " AS x, " + my + " AS y) m"
	cell := "(40075016.685578488 / 2.0::float8 ^ (" + z + " + " + strconv.Itoa(l.AggLevel) + " - " + lod + "))"
	size := "(40075016.685578488 / 2.0::float8 ^ " + z + ")"

	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(l.asMVT())
	b.WriteString(", count(*), coalesce(sum(a.__mn), 0)::int8\nFROM (\n  SELECT count(*) AS __mn, avg(m.x) AS __mx, avg(m.y) AS __my")
	byKey := l.byKey()
	if byKey {
		b.WriteString(", min(g." + ident(l.Key) + ") AS __mk")
	} else if len(l.Props) > 0 && len(l.Aggs) == 0 {
		// The representative: the smallest property values, as text.
		b.WriteString(", min(ARRAY[")
		for i, p := range l.Props {
			if i > 0 {
				b.WriteString(", ")
			}
			if p.Kind == PropText {
				b.WriteString(propExpr("g", p))
			} else {
				b.WriteString("(" + propExpr("g", p) + ")::text")
			}
		}
		b.WriteString("]) AS __mr")
	}
	for _, a := range l.Aggs {
		b.WriteString(", ")
		b.WriteString(a.SQL)
		b.WriteString(" AS ")
		b.WriteString(ident(a.Alias))
	}
	b.WriteString("\n  FROM ")
	b.WriteString(l.from())
	b.WriteString(lateral)
	b.WriteString("\n  ")
	b.WriteString(l.where())
	b.WriteString("\n  GROUP BY floor(m.x / " + cell + "), floor(m.y / " + cell + ")")
	if l.srid() != 4326 && l.srid() != 3857 {
		// The envelope in another SRID is only approximately the tile:
		// keep the cells whose centroid is in the buffered tile.
		margin := size + " * " + fmtFloat(float64(l.Buffer)/float64(l.Extent))
		b.WriteString("\n  HAVING avg(m.x) BETWEEN -20037508.342789244 + " + x + " * " + size + " - " + margin +
			" AND -20037508.342789244 + (" + x + " + 1) * " + size + " + " + margin +
			"\n     AND avg(m.y) BETWEEN 20037508.342789244 - (" + y + " + 1) * " + size + " - " + margin +
			" AND 20037508.342789244 - " + y + " * " + size + " + " + margin)
	}
	b.WriteString("\n) a")
	l.writePointFeatures(&b, byKey)
	return b.String()
}

// byKey says whether aggregated points take their properties from the
// row with the smallest key.
func (l Layer) byKey() bool {
	return l.Key != "" && l.Table != "" && len(l.Aggs) == 0 && len(l.Props) > 0
}

// writePointFeatures writes the end of a point statement: from cells a
// (__mn points centred on __mx, __my, representative __mk or __mr, or
// the aggregates), the features t.
func (l Layer) writePointFeatures(b *strings.Builder, byKey bool) {
	z, x, y, _ := l.Args()
	size := "(40075016.685578488 / 2.0::float8 ^ " + z + ")"
	ext := strconv.Itoa(l.Extent)
	if byKey {
		b.WriteString("\nJOIN " + pgx.Identifier{l.Schema, l.Table}.Sanitize() + " r ON r." + ident(l.Key) + " = a.__mk")
	}
	b.WriteString("\nCROSS JOIN LATERAL (SELECT ST_MakePoint(round((a.__mx + 20037508.342789244 - " + x + " * " + size + ") * " + ext + " / " + size +
		"), round((20037508.342789244 - " + y + " * " + size + " - a.__my) * " + ext + " / " + size + ")) AS __mvt_geom")
	switch {
	case byKey:
		l.writeProps(b, "r")
	case len(l.Aggs) > 0:
		for _, a := range l.Aggs {
			b.WriteString(", a.")
			b.WriteString(ident(a.Alias))
		}
	default:
		for i, p := range l.Props {
			b.WriteString(", ")
			b.WriteString(castBack("a.__mr["+strconv.Itoa(i+1)+"]", p))
			b.WriteString(" AS ")
			b.WriteString(ident(p.Name))
		}
	}
	b.WriteString(", a.__mn AS " + DensityProp + ") t")
}

// Overview names a tile-ready copy of a line or polygon table (built by
// package overview): the table's features in Web-Mercator, cut into small
// pieces, in Bands+1 tables (Table_0 … Table_<Bands>), one row a piece:
//
//	key   -- the source row's key (Key column of the table)
//	geom  -- the piece, SRID 3857
//	w, h  -- the whole feature's bounding box size, in source units
//	x0,y0 -- its lower-left corner, in source units
//
// Band b < Bands holds the features simplified to half a pixel of a
// 512-unit tile at zoom b (and none smaller than that pixel); band Bands
// holds them at full detail.
type Overview struct {
	// Schema of the copy, and Table the stem of its band tables' names.
	Schema, Table string
	// Key is the source table's key column (unique, not null).
	Key string
	// Bands is the number of simplified bands.
	Bands int
	// Points marks a point overview, a single table of the cells of
	// every aggregation level from 0 to Bands (see BuildPointOverview).
	Points bool
}

// BandTable is the name of band b's table.
func (ov Overview) BandTable(b int) string { return ov.Table + "_" + strconv.Itoa(b) }

// Band is the band serving tiles of zoom z and the given extent: the one
// simplified for a 512-unit tile log2(extent/512) zooms deeper.
func (ov Overview) Band(z, extent int) int {
	for e := extent; e > 512 && z < ov.Bands; e >>= 1 {
		z++
	}
	if extent < 512 && z > 0 {
		z--
	}
	return min(z, ov.Bands)
}

// BuildOverview returns the statement rendering table layer l at the
// zooms of band band of its overview ov (one statement a band, so each
// plans against one table). It returns the same three columns as Build, and keeps the
// same features in the same order: culled under a pixel (or kept as one,
// KeepSmall), the biggest
// first up to the cap (the sizes are the whole feature's, as Build's). A
// feature's pieces in the tile are collected and clipped together, and
// ST_AsMVTGeom joins them back into one geometry. Filters, query sources
// and points are not served from overviews.
func BuildOverview(l Layer, ov Overview, band int) (string, error) {
	if err := l.validate(); err != nil {
		return "", err
	}
	switch {
	case l.Query != "" || l.Filter != "":
		return "", fmt.Errorf("%w: overviews serve unfiltered tables only", ErrInvalid)
	case l.Shape != catalog.ShapeLine && l.Shape != catalog.ShapePolygon:
		return "", fmt.Errorf("%w: overviews serve lines and polygons only", ErrInvalid)
	case ov.Schema == "" || ov.Table == "" || ov.Key == "" || ov.Bands < 1:
		return "", fmt.Errorf("%w: incomplete overview", ErrInvalid)
	case band < 0 || band > ov.Bands:
		return "", fmt.Errorf("%w: band %d of %d", ErrInvalid, band, ov.Bands)
	}
	perWorld, known := l.unitsPerWorld()
	if !known {
		return "", fmt.Errorf("%w: overviews need a source in SRID 4326 or 3857", ErrInvalid)
	}
	_, _, _, lod := l.Args()

	keepSmall := l.KeepSmall && l.Shape == catalog.ShapePolygon
	var b strings.Builder
	l.writeFeaturesHead(&b)
	b.WriteString("FROM (\n  SELECT f.__mg")
	l.writeProps(&b, "g")
	if keepSmall {
		b.WriteString(", f.__w, f.__h")
	}
	b.WriteString(", f.__mn\n  FROM (\n    SELECT o.key AS __mk, ST_Collect(o.geom) AS __mg, min(o.w) AS __w, min(o.h) AS __h, min(o.x0) AS __x0, min(o.y0) AS __y0")
	if l.MaxFeatures > 0 {
		b.WriteString(", count(*) OVER () AS __mn")
	} else {
		b.WriteString(", 0 AS __mn")
	}
	b.WriteString("\n    FROM " + pgx.Identifier{ov.Schema, ov.BandTable(band)}.Sanitize() + " o")
	b.WriteString("\n    WHERE o.geom && " + l.bufferedEnvelope(1, 3857))
	if !keepSmall {
		b.WriteString("\n      AND greatest(o.w, o.h) >= " + l.pixel(perWorld))
	}
	b.WriteString("\n    GROUP BY o.key")
	if l.MaxFeatures > 0 {
		b.WriteString("\n    ORDER BY ")
		if l.Shape == catalog.ShapeLine {
			b.WriteString("greatest(min(o.w), min(o.h)) DESC")
		} else {
			b.WriteString("min(o.w) * min(o.h) DESC")
		}
		b.WriteString(", min(o.x0), min(o.y0), o.key")
		b.WriteString("\n    LIMIT (" + strconv.Itoa(l.MaxFeatures) + " >> " + lod + ")")
	}
	b.WriteString("\n  ) f\n  JOIN " + pgx.Identifier{l.Schema, l.Table}.Sanitize() + " g ON g." + ident(ov.Key) + " = f.__mk")
	b.WriteString("\n) s\nCROSS JOIN LATERAL (SELECT ")
	// The pieces go to ST_AsMVTGeom as they are at full detail (lod 0):
	// it simplifies to half a tile unit itself, the tolerance Build adds
	// before it, and it clips. The pieces are small (overview.BuildSQL
	// subdivides them), so Build's cheap cut to the tile before that
	// work saves nothing here; it and a second simplification cost about
	// a tenth of a low-zoom tile. Coarser levels of detail simplify more.
	tol := "(" + l.pixel(40075016.685578488) + " * 0.5 * 2.0::float8 ^ " + lod + ")"
	clipped := "CASE WHEN " + lod + " = 0 THEN s.__mg ELSE ST_Simplify(s.__mg, " + tol + ", true) END"
	if keepSmall {
		// A polygon under a pixel is a one-pixel square at its centre, as
		// Build draws it; the coarser bands hold such polygons as that
		// centre (overview.BuildSQL).
		clipped = "CASE WHEN greatest(s.__w, s.__h) < " + l.pixel(perWorld) + " THEN ST_Expand(ST_Centroid(s.__mg), " +
			l.pixel(40075016.685578488) + " * 0.5) ELSE " + clipped + " END"
	}
	b.WriteString(l.asMVTGeom(clipped))
	b.WriteString(" AS __mvt_geom")
	for _, p := range l.Props {
		b.WriteString(", s.")
		b.WriteString(ident(p.Name))
	}
	b.WriteString(") t")
	return b.String(), nil
}

// BuildPointOverview returns the statement rendering aggregated point
// layer l from its point overview ov: one table of grid cells, one row a
// cell with at least one point,
//
//	level  -- the grid: 2^level cells across the world (≤ ov.Bands)
//	cx, cy -- the cell: floor(x / cell), floor(y / cell) in Web-Mercator
//	n      -- its points; sx, sy the sums of their coordinates
//	key    -- the smallest key among them (the representative)
//
// with a B-tree on (level, cx, cy). It returns what Build returns for l
// (the same cells, centroids, counts and representatives), reading only
// the cells of the tile and its buffer instead of every point. The caller
// uses it only for tiles whose level z+AggLevel is at most ov.Bands.
func BuildPointOverview(l Layer, ov Overview) (string, error) {
	if err := l.validate(); err != nil {
		return "", err
	}
	switch {
	case !ov.Points || ov.Schema == "" || ov.Table == "" || ov.Key == "":
		return "", fmt.Errorf("%w: incomplete point overview", ErrInvalid)
	case !l.aggregates() || l.Query != "" || l.Filter != "" || len(l.Aggs) > 0:
		return "", fmt.Errorf("%w: point overviews serve aggregated, unfiltered tables only", ErrInvalid)
	case l.Key != ov.Key || !l.byKey():
		return "", fmt.Errorf("%w: point overviews need the layer keyed like the overview", ErrInvalid)
	}
	z, x, y, lod := l.Args()
	level := "greatest(" + z + " + " + strconv.Itoa(l.AggLevel) + " - " + lod + ", 0)"
	per := "(2.0::float8 ^ (" + level + " - " + z + "))" // cells across a tile
	half := "(2.0::float8 ^ (" + level + " - 1))"        // cells across half the world
	buf := "(" + per + " * " + strconv.Itoa(l.Buffer) + " / " + strconv.Itoa(l.Extent) + ")"

	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(l.asMVT())
	b.WriteString(", count(*), coalesce(sum(a.__mn), 0)::int8\nFROM (\n  SELECT o.n AS __mn, o.sx / o.n AS __mx, o.sy / o.n AS __my, o.key AS __mk")
	b.WriteString("\n  FROM " + pgx.Identifier{ov.Schema, ov.Table}.Sanitize() + " o")
	b.WriteString("\n  WHERE o.level = " + level)
	b.WriteString("\n    AND o.cx BETWEEN floor(" + x + " * " + per + " - " + half + " - " + buf + ")::int AND (ceil((" + x + " + 1) * " + per + " - " + half + " + " + buf + ") - 1)::int")
	b.WriteString("\n    AND o.cy BETWEEN floor(" + half + " - (" + y + " + 1) * " + per + " - " + buf + ")::int AND (ceil(" + half + " - " + y + " * " + per + " + " + buf + ") - 1)::int")
	b.WriteString("\n) a")
	l.writePointFeatures(&b, true)
	return b.String(), nil
}

// BuildDropStats returns the statement counting, over the rows of line
// or polygon layer l (within its filter, with its ArgsBefore arguments),
// the features the tiles of each zoom leave out for being smaller than a
// pixel (the cull of Build and BuildOverview, at full detail): rows (k,
// n), n features culled at every zoom below k (k is maxZoom+1 for those
// culled at every zoom). samplePercent < 100 reads a repeatable
// TABLESAMPLE of a table (the same sample on every node). ok is false
// when l culls nothing (points, unknown units).
func BuildDropStats(l Layer, samplePercent float64, maxZoom int) (sql string, ok bool) {
	perWorld, known := l.unitsPerWorld()
	if !known || (l.Shape != catalog.ShapeLine && l.Shape != catalog.ShapePolygon) {
		return "", false
	}
	from := l.from()
	if l.Query == "" && samplePercent > 0 && samplePercent < 100 {
		from += " TABLESAMPLE SYSTEM (" + fmtFloat(samplePercent) + ") REPEATABLE (0)"
	}
	where := "WHERE g." + ident(l.Geom) + " IS NOT NULL"
	if l.Filter != "" {
		where += " AND (" + l.Filter + ")"
	}
	last := strconv.Itoa(maxZoom + 1)
	sql = "SELECT coalesce(least(greatest(ceil(log(2, " + fmtFloat(perWorld/float64(l.Extent)) +
		"::numeric / nullif(greatest(s.w, s.h), 0)::numeric)), 0), " + last + "), " + last + ")::int AS k, count(*)" +
		"\nFROM (SELECT ST_XMax(b) - ST_XMin(b) AS w, ST_YMax(b) - ST_YMin(b) AS h" +
		"\n  FROM (SELECT postgis_getbbox(g." + ident(l.Geom) + ") AS b FROM " + from + "\n  " + where + ") s0) s" +
		"\nGROUP BY 1"
	return sql, true
}
