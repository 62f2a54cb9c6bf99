// Package catalog discovers what a data connection can serve: every table,
// view, materialized view and foreign table with a PostGIS geometry column
// that the connection's role may SELECT, with its columns mapped to the
// CARTO schema types (CARTO_API.md §2.1), its geometry columns (SRID and
// type), an estimated row count and a change fingerprint.
//
// A Catalog is an immutable snapshot of one connection; a Store keeps the
// current snapshot of every connection used so far, loads it on first use,
// refreshes it periodically and on demand, and refreshes early (rate
// limited) when a lookup misses, so that a table created a moment ago is
// found. Names coming from clients are only ever compared against the
// catalog; SQL is built from the catalog's names, never from the request.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
)

// Errors returned by lookups.
var (
	// ErrNotFound: no such table (or no geometry column, or no SELECT
	// privilege) on the connection.
	ErrNotFound = clienterr.Kind("catalog", "table not found")
	// ErrUnknownColumn: a requested column does not exist in the source.
	ErrUnknownColumn = clienterr.Kind("catalog", "unknown column")
	// ErrNoGeometry: the requested spatial column is not a geometry column.
	ErrNoGeometry = clienterr.Kind("catalog", "not a geometry column")
)

// Type is a column type in the CARTO schema vocabulary.
type Type string

// The CARTO schema types (client enum SchemaFieldType).
const (
	TypeNumber    Type = "number"
	TypeBigint    Type = "bigint"
	TypeString    Type = "string"
	TypeGeometry  Type = "geometry"
	TypeTimestamp Type = "timestamp"
	TypeObject    Type = "object"
	TypeBoolean   Type = "boolean"
	TypeUnknown   Type = "unknown"
)

// Column is one column of a source.
type Column struct {
	// Name as stored in PostgreSQL (case preserved).
	Name string `json:"name"`
	// Type in the CARTO vocabulary.
	Type Type `json:"type"`
	// PGType is PostgreSQL's name of the type (format_type), usable in a
	// cast: "integer", "character varying(20)", "timestamp with time zone".
	PGType string `json:"-"`
}

// Shape is the kind of geometry a column holds, as far as tiling cares.
type Shape int

// Shapes.
const (
	// ShapeUnknown: mixed or unknown geometry types (GEOMETRY, collections).
	ShapeUnknown Shape = iota
	// ShapePoint: single points (POINT); aggregatable on a grid.
	ShapePoint
	// ShapeMultiPoint: MULTIPOINT.
	ShapeMultiPoint
	// ShapeLine: LINESTRING or MULTILINESTRING.
	ShapeLine
	// ShapePolygon: POLYGON or MULTIPOLYGON.
	ShapePolygon
)

// String returns the TileJSON geometry name: Point, LineString, Polygon or
// Unknown.
func (s Shape) String() string {
	switch s {
	case ShapePoint, ShapeMultiPoint:
		return "Point"
	case ShapeLine:
		return "LineString"
	case ShapePolygon:
		return "Polygon"
	}
	return "Unknown"
}

// GeomKind returns CARTO's geomType word: points, lines, polygons, or "".
func (s Shape) GeomKind() string {
	switch s {
	case ShapePoint, ShapeMultiPoint:
		return "points"
	case ShapeLine:
		return "lines"
	case ShapePolygon:
		return "polygons"
	}
	return ""
}

// ShapeOf maps a PostGIS geometry type name (POINT, MULTIPOLYGON, any
// case, with or without Z/M suffixes) to a Shape.
func ShapeOf(geomType string) Shape {
	t := strings.ToUpper(geomType)
	t = strings.TrimRight(t, "ZM")
	switch t {
	case "POINT":
		return ShapePoint
	case "MULTIPOINT":
		return ShapeMultiPoint
	case "LINESTRING", "MULTILINESTRING":
		return ShapeLine
	case "POLYGON", "MULTIPOLYGON":
		return ShapePolygon
	}
	return ShapeUnknown
}

// GeomColumn is a geometry column of a source.
type GeomColumn struct {
	// Name of the column.
	Name string
	// SRID of the column; 0 when unknown.
	SRID int
	// GeomType is the PostGIS type name (POINT, MULTIPOLYGON, GEOMETRY…),
	// upper case. For untyped columns it is sampled from the data.
	GeomType string
}

// Shape returns the column's Shape.
func (g GeomColumn) Shape() Shape { return ShapeOf(g.GeomType) }

// Kind is the kind of relation.
type Kind string

// Relation kinds.
const (
	KindTable        Kind = "table"
	KindView         Kind = "view"
	KindMatView      Kind = "materialized_view"
	KindForeignTable Kind = "foreign_table"
)

// Table is one relation with at least one geometry column.
type Table struct {
	// Schema and Name as stored in PostgreSQL.
	Schema, Name string
	// Kind of relation.
	Kind Kind
	// OID of the relation.
	OID uint32
	// Columns in table order, geometry columns included.
	Columns []Column
	// Geoms are the geometry columns.
	Geoms []GeomColumn
	// EstRows is PostgreSQL's estimate of the row count (reltuples); -1
	// when the relation was never analyzed.
	EstRows int64
	// Fingerprint changes when the table's content or definition
	// changes (relation file, insert/update/delete counters). For views it
	// is 0: their content depends on other relations.
	Fingerprint uint64
	// Key is the single-column primary key, or "" (none, or several
	// columns).
	Key string
}

// FQN returns "schema.name".
func (t *Table) FQN() string { return t.Schema + "." + t.Name }

// Column returns the column called name (exact match first, then
// case-insensitive when unambiguous).
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	var found Column
	n := 0
	for _, c := range t.Columns {
		if strings.EqualFold(c.Name, name) {
			found = c
			n++
		}
	}
	return found, n == 1
}

// Geom returns the geometry column called name.
func (t *Table) Geom(name string) (GeomColumn, error) {
	c, ok := t.Column(name)
	if !ok {
		return GeomColumn{}, clienterr.Errorf(ErrUnknownColumn, " %q in %s", name, t.FQN())
	}
	for _, g := range t.Geoms {
		if g.Name == c.Name {
			return g, nil
		}
	}
	return GeomColumn{}, clienterr.Errorf(ErrNoGeometry, ": %q in %s", name, t.FQN())
}

// Catalog is an immutable snapshot of one connection's spatial relations.
type Catalog struct {
	// Conn is the data connection's name.
	Conn string
	// Tables sorted by schema and name.
	Tables []*Table
	// LoadedAt is when the snapshot was taken.
	LoadedAt time.Time
	// Fingerprint combines every table's fingerprint: it changes when any
	// table of the connection changes (used for query sources).
	Fingerprint uint64
	// GeometryOID and GeographyOID are the type OIDs of PostGIS's types
	// in this database (0 without PostGIS).
	GeometryOID, GeographyOID uint32

	byName map[string]*Table
}

// Lookup finds a table by name: "schema.table", "table" (schema public),
// or "database.schema.table" (the database part is ignored). Double quotes
// around parts are accepted. Exact names match first, then lower-cased
// ones, as PostgreSQL folds unquoted identifiers.
func (c *Catalog) Lookup(name string) (*Table, error) {
	schema, table, ok := SplitName(name)
	if !ok {
		return nil, clienterr.Errorf(ErrNotFound, ": %q", name)
	}
	if t := c.byName[schema+"."+table]; t != nil {
		return t, nil
	}
	if t := c.byName[strings.ToLower(schema)+"."+strings.ToLower(table)]; t != nil {
		return t, nil
	}
	return nil, clienterr.Errorf(ErrNotFound, ": %q on connection %s", name, c.Conn)
}

// SplitName splits a client-supplied table name into schema and table,
// defaulting the schema to public and dropping a leading database part.
func SplitName(name string) (schema, table string, ok bool) {
	parts := splitQuoted(strings.TrimSpace(name))
	switch len(parts) {
	case 1:
		schema, table = "public", parts[0]
	case 2:
		schema, table = parts[0], parts[1]
	case 3:
		schema, table = parts[1], parts[2]
	default:
		return "", "", false
	}
	if schema == "" || table == "" {
		return "", "", false
	}
	return schema, table, true
}

// splitQuoted splits on dots outside double quotes and unquotes parts.
func splitQuoted(s string) []string {
	var parts []string
	var b strings.Builder
	inQ := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"' && inQ && i+1 < len(s) && s[i+1] == '"':
			b.WriteByte('"')
			i++
		case ch == '"':
			inQ = !inQ
		case ch == '.' && !inQ:
			parts = append(parts, b.String())
			b.Reset()
		default:
			b.WriteByte(ch)
		}
	}
	return append(parts, b.String())
}

// Querier is what loading needs from a pool or connection.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// loadSQL lists every column of every relation the current role can read
// that has at least one geometry column. The geometry columns' SRID and
// type come from the type modifier (typed columns) or, for views and
// untyped columns, from geometry_columns; the rest is sampled later.
const loadSQL = `
WITH rels AS (
	SELECT DISTINCT c.oid
	FROM pg_attribute a
	JOIN pg_class c ON c.oid = a.attrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE a.atttypid = 'geometry'::regtype AND a.attnum > 0 AND NOT a.attisdropped
	  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
	  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'topology', 'tiger')
	  AND n.nspname NOT LIKE 'pg\_%'
	  AND NOT c.relispartition
	  AND c.relname NOT LIKE '\_mi\_%' -- the importer's staging tables
	  AND n.nspname <> 'meridian_overviews' -- the tiles engine's own copies
	  AND has_table_privilege(c.oid, 'SELECT')
)
SELECT n.nspname, c.relname, c.relkind::text, c.oid::int8, c.relfilenode::int8,
       c.reltuples::int8,
       coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::int8,
       a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(bt.typname, t.typname), coalesce(bt.typcategory, t.typcategory)::text,
       a.atttypid = 'geometry'::regtype,
       coalesce(gc.srid, 0), coalesce(gc.type, ''),
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary
               AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum)
FROM rels r
JOIN pg_class c ON c.oid = r.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
LEFT JOIN geometry_columns gc ON a.atttypid = 'geometry'::regtype
	AND gc.f_table_schema = n.nspname AND gc.f_table_name = c.relname AND gc.f_geometry_column = a.attname
ORDER BY n.nspname, c.relname, a.attnum`

// Load reads the catalog of connection conn through q.
func Load(ctx context.Context, q Querier, conn string) (*Catalog, error) {
	cat := &Catalog{Conn: conn, byName: map[string]*Table{}, LoadedAt: time.Now()}
	var geomOID, geogOID int64
	if err := q.QueryRow(ctx, "SELECT coalesce(to_regtype('geometry')::oid, 0)::int8, coalesce(to_regtype('geography')::oid, 0)::int8").Scan(&geomOID, &geogOID); err != nil {
		return nil, fmt.Errorf("looking up PostGIS types on %s: %w", conn, err)
	}
	cat.GeometryOID, cat.GeographyOID = uint32(geomOID), uint32(geogOID)
	if geomOID == 0 {
		return cat, nil // no PostGIS: nothing to serve as tiles
	}
	rows, err := q.Query(ctx, loadSQL)
	if err != nil {
		return nil, fmt.Errorf("listing spatial tables of %s: %w", conn, err)
	}
	var cur *Table
	for rows.Next() {
		var (
			schema, name, relkind, attname, pgtype, typname, typcat, gtype string
			oid, filenode, reltuples, nmod                                 int64
			isGeom, isKey                                                  bool
			srid                                                           int
		)
		if err := rows.Scan(&schema, &name, &relkind, &oid, &filenode, &reltuples, &nmod,
			&attname, &pgtype, &typname, &typcat, &isGeom, &srid, &gtype, &isKey); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading catalog of %s: %w", conn, err)
		}
		if cur == nil || cur.Schema != schema || cur.Name != name {
			cur = &Table{Schema: schema, Name: name, Kind: kindOf(relkind), OID: uint32(oid), EstRows: reltuples}
			if cur.Kind != KindView {
				cur.Fingerprint = fingerprint(uint64(oid), uint64(filenode), uint64(nmod))
			}
			cat.Tables = append(cat.Tables, cur)
		}
		col := Column{Name: attname, PGType: pgtype, Type: MapType(typname, typcat)}
		cur.Columns = append(cur.Columns, col)
		if isKey {
			cur.Key = attname
		}
		if isGeom {
			cur.Geoms = append(cur.Geoms, GeomColumn{Name: attname, SRID: srid, GeomType: strings.ToUpper(gtype)})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading catalog of %s: %w", conn, err)
	}
	if err := sampleGeoms(ctx, q, cat.Tables); err != nil {
		return nil, err
	}
	h := fnv.New64a()
	for _, t := range cat.Tables {
		cat.byName[t.Schema+"."+t.Name] = t
		var b [8]byte
		putUint64(b[:], t.Fingerprint^uint64(t.OID))
		h.Write(b[:])
	}
	cat.Fingerprint = h.Sum64()
	return cat, nil
}

// sampleGeoms fills in SRID and type of untyped geometry columns from one
// non-null row. A failing sample (an unreadable view) leaves them unknown.
func sampleGeoms(ctx context.Context, q Querier, tables []*Table) error {
	for _, t := range tables {
		for i := range t.Geoms {
			g := &t.Geoms[i]
			if g.SRID != 0 && g.GeomType != "" && g.GeomType != "GEOMETRY" {
				continue
			}
			col := pgx.Identifier{g.Name}.Sanitize()
			rel := pgx.Identifier{t.Schema, t.Name}.Sanitize()
			var srid int
			var gt string
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := q.QueryRow(sctx, "SELECT ST_SRID("+col+"), GeometryType("+col+") FROM "+rel+" WHERE "+col+" IS NOT NULL LIMIT 1").Scan(&srid, &gt)
			cancel()
			switch {
			case err == nil:
				if g.SRID == 0 {
					g.SRID = srid
				}
				if g.GeomType == "" || g.GeomType == "GEOMETRY" {
					g.GeomType = strings.ToUpper(gt)
				}
			case errors.Is(err, pgx.ErrNoRows):
			case ctx.Err() != nil:
				return fmt.Errorf("sampling %s: %w", t.FQN(), ctx.Err())
			}
			if g.GeomType == "" {
				g.GeomType = "GEOMETRY"
			}
		}
	}
	return nil
}

func kindOf(relkind string) Kind {
	switch relkind {
	case "v":
		return KindView
	case "m":
		return KindMatView
	case "f":
		return KindForeignTable
	}
	return KindTable
}

// MapType maps a PostgreSQL type (name of the base type and its
// pg_type.typcategory) to the CARTO vocabulary: int2/int4/float/numeric →
// number, int8 → bigint, text-like and uuid → string, geometry/geography →
// geometry, date/timestamp(tz) → timestamp, json/jsonb/arrays/composites →
// object, bool → boolean, anything else → unknown.
func MapType(typname, category string) Type {
	switch typname {
	case "int8":
		return TypeBigint
	case "int2", "int4", "float4", "float8", "numeric", "oid", "money":
		return TypeNumber
	case "text", "varchar", "bpchar", "name", "uuid", "citext", "char":
		return TypeString
	case "geometry", "geography":
		return TypeGeometry
	case "date", "timestamp", "timestamptz":
		return TypeTimestamp
	case "json", "jsonb":
		return TypeObject
	case "bool":
		return TypeBoolean
	}
	switch category {
	case "A", "C":
		return TypeObject
	case "S":
		return TypeString
	case "N":
		return TypeNumber
	}
	return TypeUnknown
}

// fingerprintSQL reads what Fingerprint is made of for relation $1.
const fingerprintSQL = `SELECT c.relfilenode::int8, coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::int8
FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = $1::int8::oid`

// ReadFingerprint returns the current Fingerprint of the table whose OID
// is oid, as Load computes it.
func ReadFingerprint(ctx context.Context, q Querier, oid uint32) (uint64, error) {
	var filenode, nmod int64
	if err := q.QueryRow(ctx, fingerprintSQL, int64(oid)).Scan(&filenode, &nmod); err != nil {
		return 0, fmt.Errorf("reading fingerprint of relation %d: %w", oid, err)
	}
	return fingerprint(uint64(oid), uint64(filenode), uint64(nmod)), nil
}

func fingerprint(vals ...uint64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, v := range vals {
		putUint64(b[:], v)
		h.Write(b[:])
	}
	return h.Sum64()
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// Extent returns the lon/lat bounds of geometry column geom of t: the
// planner's estimate (ST_EstimatedExtent, from ANALYZE statistics) when
// there is one, else ST_Extent over the rows when t is small (or a view),
// within ctx. Sources without rows or whose extent cannot be computed get
// the whole world.
func Extent(ctx context.Context, q Querier, t *Table, geom GeomColumn) (tile.Bounds, error) {
	world := tile.Bounds{MinX: -180, MinY: -90, MaxX: 180, MaxY: 90}
	col := pgx.Identifier{geom.Name}.Sanitize()
	rel := pgx.Identifier{t.Schema, t.Name}.Sanitize()
	var box *string
	if t.Kind == KindTable || t.Kind == KindMatView {
		err := q.QueryRow(ctx, "SELECT ST_EstimatedExtent($1, $2, $3)::text", t.Schema, t.Name, geom.Name).Scan(&box)
		if err != nil && ctx.Err() != nil {
			return world, fmt.Errorf("estimating extent of %s: %w", t.FQN(), err)
		}
	}
	if box == nil && t.EstRows < 200_000 {
		if err := q.QueryRow(ctx, "SELECT ST_Extent("+col+")::text FROM "+rel).Scan(&box); err != nil {
			return world, fmt.Errorf("computing extent of %s: %w", t.FQN(), err)
		}
	}
	if box == nil {
		return world, nil
	}
	b, err := boxToLonLat(ctx, q, *box, geom.SRID)
	if err != nil || b.MaxX-b.MinX <= 180 || t.EstRows >= 200_000 {
		return b, err
	}
	return acrossAntimeridian(ctx, q, b, "SELECT "+col+" FROM "+rel, geom.Name, geom.SRID, nil)
}

// acrossAntimeridian returns b, or — when the geometries of column geom
// of the rows of sql fit in a narrower band of longitudes across the
// antimeridian (the Aleutians and Alaska, Fiji, Chukotka…) — b with that
// band (a tenth narrower at least): MinX > MaxX then, as TileJSON writes
// such bounds.
func acrossAntimeridian(ctx context.Context, q Querier, b tile.Bounds, sql, geom string, srid int, args []any) (tile.Bounds, error) {
	g := "q." + pgx.Identifier{geom}.Sanitize()
	if srid != 4326 && srid != 0 {
		g = "ST_Transform(" + g + ", 4326)"
	}
	var lo, hi *float64
	err := q.QueryRow(ctx, "SELECT ST_XMin(e), ST_XMax(e) FROM (SELECT ST_Extent(ST_ShiftLongitude("+g+")) AS e FROM (\n"+sql+"\n) q) s", args...).
		Scan(&lo, &hi)
	if err != nil {
		return b, fmt.Errorf("computing the extent across the antimeridian: %w", err)
	}
	if lo == nil || hi == nil || *hi-*lo > 0.9*(b.MaxX-b.MinX) || *lo > 180 || *hi <= 180 {
		return b, nil
	}
	b.MinX, b.MaxX = *lo, *hi-360
	return b, nil
}

// QueryExtent returns the lon/lat extent of column geom of the query
// sql (with args), or the world when it has no rows.
func QueryExtent(ctx context.Context, q Querier, sql, geom string, args []any) (tile.Bounds, error) {
	world := tile.Bounds{MinX: -180, MinY: -90, MaxX: 180, MaxY: 90}
	col := pgx.Identifier{geom}.Sanitize()
	var box *string
	var srid *int
	err := q.QueryRow(ctx, "SELECT ST_Extent(q."+col+")::text, min(ST_SRID(q."+col+")) FROM (\n"+sql+"\n) q", args...).Scan(&box, &srid)
	if err != nil {
		return world, fmt.Errorf("computing extent of query: %w", err)
	}
	if box == nil || srid == nil {
		return world, nil
	}
	b, err := boxToLonLat(ctx, q, *box, *srid)
	if err != nil || b.MaxX-b.MinX <= 180 {
		return b, err
	}
	return acrossAntimeridian(ctx, q, b, sql, geom, *srid, args)
}

func boxToLonLat(ctx context.Context, q Querier, box string, srid int) (tile.Bounds, error) {
	world := tile.Bounds{MinX: -180, MinY: -90, MaxX: 180, MaxY: 90}
	var b tile.Bounds
	if srid == 0 {
		srid = 4326
	}
	err := q.QueryRow(ctx, `SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
		FROM (SELECT ST_Transform(ST_SetSRID($1::box2d::geometry, $2), 4326) AS e) s`, box, srid).
		Scan(&b.MinX, &b.MinY, &b.MaxX, &b.MaxY)
	if err != nil {
		return world, fmt.Errorf("transforming extent: %w", err)
	}
	b.MinX, b.MaxX = max(b.MinX, -180), min(b.MaxX, 180)
	b.MinY, b.MaxY = max(b.MinY, -90), min(b.MaxY, 90)
	if b.MinX > b.MaxX || b.MinY > b.MaxY {
		return world, nil
	}
	return b, nil
}

// Preparer is what DescribeQuery needs: a single connection.
type Preparer interface {
	Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error)
	Querier
}

// DescribeQuery returns the result columns of sql without running it
// (the statement is only prepared). Types are mapped like table columns.
func DescribeQuery(ctx context.Context, c Preparer, sql string) ([]Column, error) {
	sd, err := c.Prepare(ctx, "", sql)
	if err != nil {
		return nil, fmt.Errorf("describing query: %w", err)
	}
	oids := make([]uint32, 0, len(sd.Fields))
	for _, f := range sd.Fields {
		if !slices.Contains(oids, f.DataTypeOID) {
			oids = append(oids, f.DataTypeOID)
		}
	}
	type info struct{ pgtype, name, cat string }
	types := map[uint32]info{}
	rows, err := c.Query(ctx, `SELECT t.oid::int8, format_type(t.oid, NULL), coalesce(bt.typname, t.typname),
		coalesce(bt.typcategory, t.typcategory)::text
		FROM pg_type t LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
		WHERE t.oid = ANY($1)`, oids)
	if err != nil {
		return nil, fmt.Errorf("describing query types: %w", err)
	}
	for rows.Next() {
		var oid int64
		var in info
		if err := rows.Scan(&oid, &in.pgtype, &in.name, &in.cat); err != nil {
			rows.Close()
			return nil, fmt.Errorf("describing query types: %w", err)
		}
		types[uint32(oid)] = in
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describing query types: %w", err)
	}
	cols := make([]Column, len(sd.Fields))
	for i, f := range sd.Fields {
		in := types[f.DataTypeOID]
		cols[i] = Column{Name: f.Name, PGType: in.pgtype, Type: MapType(in.name, in.cat)}
	}
	return cols, nil
}

// StoreConfig tunes a Store. Zero fields take the defaults given.
type StoreConfig struct {
	// MissRefreshGap is the least time between two reloads triggered by a
	// lookup miss on the same connection. Default: 5s.
	MissRefreshGap time.Duration
	// LoadTimeout bounds one catalog load. Default: 30s.
	LoadTimeout time.Duration
}

// Store holds the current Catalog of each connection.
type Store struct {
	cfg   StoreConfig
	pools func(ctx context.Context, conn string) (Querier, error)

	mu   sync.Mutex
	cats map[string]*storeEntry
}

type storeEntry struct {
	mu       sync.Mutex // serializes loads of this connection
	cat      *Catalog
	lastMiss time.Time
	// loaded is set once cat is: Conns reads it without waiting for a
	// load in progress (which holds mu).
	loaded atomic.Bool
}

// NewStore returns a Store loading catalogs through pools.
func NewStore(cfg StoreConfig, pools func(ctx context.Context, conn string) (Querier, error)) *Store {
	if cfg.MissRefreshGap <= 0 {
		cfg.MissRefreshGap = 5 * time.Second
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = 30 * time.Second
	}
	return &Store{cfg: cfg, pools: pools, cats: map[string]*storeEntry{}}
}

func (s *Store) entry(conn string) *storeEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.cats[conn]
	if e == nil {
		e = &storeEntry{}
		s.cats[conn] = e
	}
	return e
}

// Get returns the catalog of conn, loading it on first use.
func (s *Store) Get(ctx context.Context, conn string) (*Catalog, error) {
	e := s.entry(conn)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cat != nil {
		return e.cat, nil
	}
	return s.loadLocked(ctx, conn, e)
}

// Current returns the loaded catalog of conn, or nil when none is loaded.
func (s *Store) Current(conn string) *Catalog {
	s.mu.Lock()
	e := s.cats[conn]
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cat
}

// Refresh reloads the catalog of conn now.
func (s *Store) Refresh(ctx context.Context, conn string) (*Catalog, error) {
	e := s.entry(conn)
	e.mu.Lock()
	defer e.mu.Unlock()
	return s.loadLocked(ctx, conn, e)
}

func (s *Store) loadLocked(ctx context.Context, conn string, e *storeEntry) (*Catalog, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LoadTimeout)
	defer cancel()
	q, err := s.pools(ctx, conn)
	if err != nil {
		return nil, err
	}
	cat, err := Load(ctx, q, conn)
	if err != nil {
		return nil, err
	}
	e.cat = cat
	e.loaded.Store(true)
	return cat, nil
}

// Lookup finds table name on conn. When it is missing from the current
// snapshot the catalog is reloaded first, at most once per MissRefreshGap.
func (s *Store) Lookup(ctx context.Context, conn, name string) (*Catalog, *Table, error) {
	cat, err := s.Get(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	t, err := cat.Lookup(name)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return cat, t, err
	}
	e := s.entry(conn)
	e.mu.Lock()
	if e.cat != cat || time.Since(e.lastMiss) < s.cfg.MissRefreshGap {
		cat = e.cat
		e.mu.Unlock()
		t, err := cat.Lookup(name)
		return cat, t, err
	}
	e.lastMiss = time.Now()
	cat, err = s.loadLocked(ctx, conn, e)
	e.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	t, err = cat.Lookup(name)
	return cat, t, err
}

// Conns lists the connections with a loaded catalog.
func (s *Store) Conns() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.cats))
	for c, e := range s.cats {
		if e.loaded.Load() {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}
