// Package source turns the parameters of a map source (CARTO_API.md §2.1)
// into a compiled source: the normalized Spec, checked against the
// connection's catalog (table, spatial column, columns, filters,
// aggregation), and the tile statement built by package mvt.
//
// A Spec has a stable, self-contained encoding, its Key: the compact JSON
// of the normalized parameters, deflated and base64url-encoded. The Key is
// what TileJSON and tile URLs carry as k=…, so every node can rebuild the
// source from the URL alone (no shared registry is needed), and equal
// sources get equal keys whichever way the client spelled them. ID is a
// short hash of the Key, used in cache keys.
package source

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/tiles/internal/aggexp"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
	"github.com/meridian-gis/meridian/tiles/internal/filter"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// Errors about source parameters; all are the client's fault (400).
var (
	// ErrBadParams: a parameter is missing, malformed or unsupported.
	ErrBadParams = clienterr.Kind("source", "bad parameters")
	// ErrBadKey: a k=… key does not decode.
	ErrBadKey = clienterr.Kind("source", "bad source key")
)

// Type is the kind of map source.
type Type string

// Source types served.
const (
	TypeTable Type = "table"
	TypeQuery Type = "query"
)

// Resolutions maps tileResolution to the per-resolution constants of
// CARTO's dynamic tiler: MVT extent (1024 × resolution), the point
// aggregation level offset (8 + log2(resolution / 0.5)) and the feature
// cap multiplier.
var Resolutions = map[float64]struct {
	Extent, AggLevel int
	CapMult          float64
}{
	0.25: {256, 7, 0.5},
	0.5:  {512, 8, 1},
	1:    {1024, 9, 2},
	2:    {2048, 10, 3},
	4:    {4096, 11, 3},
}

// Spec is the normalized definition of a source.
type Spec struct {
	// Conn is the data connection.
	Conn string `json:"c"`
	// Type is table or query.
	Type Type `json:"t"`
	// Name is the table as the client wrote it (table sources).
	Name string `json:"n,omitempty"`
	// Query is the SQL (query sources), trimmed, without a final ";".
	Query string `json:"q,omitempty"`
	// Params are the queryParameters, compact JSON array: bound to $1,
	// $2… as given, or, when ParamNames is set, in its order.
	Params json.RawMessage `json:"p,omitempty"`
	// ParamNames are the names of named queryParameters (an object
	// binding :name or @name in Query), in order of first use; SQL binds
	// them. Query keeps the text the client wrote, which grants name.
	ParamNames []string `json:"pn,omitempty"`
	// Geom is the spatial column. Default "geom".
	Geom string `json:"g,omitempty"`
	// Columns restrict the properties; empty: every non-spatial column.
	Columns []string `json:"cols,omitempty"`
	// Resolution is tileResolution (0.25, 0.5, 1, 2 or 4). Default 0.5.
	Resolution float64 `json:"r,omitempty"`
	// Filters are the canonical CARTO filters.
	Filters json.RawMessage `json:"f,omitempty"`
	// Aggregation is aggregationExp.
	Aggregation string `json:"a,omitempty"`
	// Index is the spatial index (quadbin or h3) of a spatial-index
	// source, whose Geom is then the cell column; "" for geometries.
	Index string `json:"si,omitempty"`
	// ResLevel is aggregationResLevel (spatial-index sources).
	ResLevel int `json:"rl,omitempty"`
}

// Params is a request's parameters by name: the raw JSON value for a POST
// body field, or a JSON string for a query-string or form value.
type Params map[string]json.RawMessage

// String returns parameter name as a string: a JSON string's content, or
// the raw text of another JSON value. Missing, null and "null" give "".
func (p Params) String(name string) string {
	raw, ok := p[name]
	if !ok {
		return ""
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s == "null" {
				return ""
			}
			return s
		}
	}
	if string(raw) == "null" {
		return ""
	}
	return string(raw)
}

// JSON returns parameter name as JSON: a JSON-encoded string (GET) is
// decoded once; "", "null" and missing give nil.
func (p Params) JSON(name string) json.RawMessage {
	raw, ok := p[name]
	if !ok {
		return nil
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil
		}
		raw = []byte(strings.TrimSpace(s))
	}
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return nil
	}
	return raw
}

// ParseSpec builds the Spec of a /v3/maps/{conn}/{type} request.
func ParseSpec(conn string, typ Type, p Params) (Spec, error) {
	s := Spec{Conn: conn, Type: typ, Geom: "geom", Resolution: 0.5}
	switch typ {
	case TypeTable:
		s.Name = strings.TrimSpace(p.String("name"))
		if s.Name == "" {
			return Spec{}, clienterr.Errorf(ErrBadParams, ": name is required for table sources")
		}
	case TypeQuery:
		q, err := NormalizeQuery(p.String("q"))
		if err != nil {
			return Spec{}, clienterr.Errorf(ErrBadParams, ": q: %w", err)
		}
		names, params, err := parseQueryParams(q, p.JSON("queryParameters"))
		if err != nil {
			return Spec{}, err
		}
		s.Query, s.Params, s.ParamNames = q, params, names
		if err := checkPlaceholders(s.SQL(), s.NumParams()); err != nil {
			return Spec{}, err
		}
	default:
		return Spec{}, clienterr.Errorf(ErrBadParams, ": source type %q is not supported (table or query)", typ)
	}
	if g := strings.TrimSpace(p.String("spatialDataColumn")); g != "" {
		s.Geom = g
	}
	if legacy := p.String("geo_column"); legacy != "" {
		return Spec{}, clienterr.Errorf(ErrBadParams, ": geo_column is not supported, use spatialDataColumn")
	}
	switch t := p.String("spatialDataType"); t {
	case "", "geo", "geometry":
	case string(spatialindex.Quadbin), string(spatialindex.H3):
		if err := parseIndexSpec(&s, spatialindex.Kind(t), p); err != nil {
			return Spec{}, err
		}
	default:
		return Spec{}, clienterr.Errorf(ErrBadParams, ": spatialDataType %q is not supported yet (geo only)", t)
	}
	if r := p.String("tileResolution"); r != "" {
		f, err := strconv.ParseFloat(r, 64)
		if _, ok := Resolutions[f]; err != nil || !ok {
			return Spec{}, clienterr.Errorf(ErrBadParams, ": tileResolution %q: want 0.25, 0.5, 1, 2 or 4", r)
		}
		s.Resolution = f
	}
	cols, err := parseColumns(p)
	if err != nil {
		return Spec{}, err
	}
	s.Columns = cols
	fl, err := filter.Parse(p.JSON("filters"))
	if err != nil {
		return Spec{}, clienterr.Errorf(ErrBadParams, ": %w", err)
	}
	s.Filters = fl.Canonical()
	s.Aggregation = strings.TrimSpace(p.String("aggregationExp"))
	return s, nil
}

func parseColumns(p Params) ([]string, error) {
	raw := p.JSON("columns")
	if raw == nil {
		return nil, nil
	}
	var list []string
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, clienterr.Errorf(ErrBadParams, ": columns: want a list of names")
		}
	} else {
		list = strings.Split(p.String("columns"), ",")
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range list {
		c = strings.TrimSpace(c)
		if c == "" || seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	return out, nil
}

// parseQueryParams reads queryParameters for the query sql: an array
// binds $1, $2… as they are; an object binds names, written :name or
// @name in sql (BigQuery's and Snowflake's styles), bound as $1, $2… in
// order of first use (Spec.SQL). It returns the names bound (none for
// an array) and the values in bind order as compact JSON.
func parseQueryParams(sql string, raw json.RawMessage) ([]string, json.RawMessage, error) {
	if raw == nil {
		return nil, nil, nil
	}
	switch raw[0] {
	case '[':
		var vals []any
		if err := json.Unmarshal(raw, &vals); err != nil {
			return nil, nil, clienterr.Errorf(ErrBadParams, ": queryParameters: %v", err)
		}
		if len(vals) == 0 {
			return nil, nil, nil
		}
		for i, v := range vals {
			if !scalar(v) {
				return nil, nil, clienterr.Errorf(ErrBadParams, ": queryParameters[%d]: want a string, number, boolean or null", i)
			}
		}
		b, _ := json.Marshal(vals)
		return nil, b, nil
	case '{':
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var named map[string]any
		if err := dec.Decode(&named); err != nil {
			return nil, nil, clienterr.Errorf(ErrBadParams, ": queryParameters: %v", err)
		}
		if len(named) == 0 {
			return nil, nil, nil
		}
		for k, v := range named {
			if !scalar(v) {
				return nil, nil, clienterr.Errorf(ErrBadParams, ": queryParameters.%s: want a string, number, boolean or null", k)
			}
		}
		if n, err := MaxPlaceholder(sql); err != nil {
			return nil, nil, clienterr.Errorf(ErrBadParams, ": q: %w", err)
		} else if n > 0 {
			return nil, nil, clienterr.Errorf(ErrBadParams, ": named queryParameters (an object) bind :name or @name; the query uses $%d: give an array for $1, $2…", n)
		}
		_, order, err := BindNamed(sql, named)
		if err != nil {
			return nil, nil, clienterr.Errorf(ErrBadParams, ": q: %w", err)
		}
		vals := make([]any, len(order))
		for i, name := range order {
			vals[i] = named[name]
		}
		if len(order) == 0 {
			return nil, nil, nil
		}
		b, _ := json.Marshal(vals)
		return order, b, nil
	}
	return nil, nil, clienterr.Errorf(ErrBadParams, ": queryParameters: want an array ($1, $2…) or an object (:name, @name)")
}

func scalar(v any) bool {
	switch v.(type) {
	case nil, string, float64, json.Number, bool:
		return true
	}
	return false
}

// ParseQuery reads q and queryParameters (SQL API requests) into a
// query Spec: Query is the SQL as written (normalized), which grants
// name; SQL and Args are what to run.
func ParseQuery(p Params) (Spec, error) {
	sql, err := NormalizeQuery(p.String("q"))
	if err != nil {
		return Spec{}, clienterr.Errorf(ErrBadParams, ": q: %w", err)
	}
	names, params, err := parseQueryParams(sql, p.JSON("queryParameters"))
	if err != nil {
		return Spec{}, err
	}
	s := Spec{Type: TypeQuery, Query: sql, Params: params, ParamNames: names}
	if err := checkPlaceholders(s.SQL(), s.NumParams()); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// SQL is the query to run: Query with its named parameters bound as
// $1, $2… (Query itself when it has none).
func (s Spec) SQL() string {
	if len(s.ParamNames) == 0 {
		return s.Query
	}
	names := make(map[string]any, len(s.ParamNames))
	for _, n := range s.ParamNames {
		names[n] = nil
	}
	sql, _, err := BindNamed(s.Query, names)
	if err != nil {
		return s.Query // ParseSpec scanned it already
	}
	return sql
}

// NumParams returns the number of queryParameters.
func (s Spec) NumParams() int {
	if len(s.Params) == 0 {
		return 0
	}
	var vals []json.RawMessage
	json.Unmarshal(s.Params, &vals)
	return len(vals)
}

// Args returns the queryParameters as bind arguments: strings, float64
// (integral numbers as int64), booleans and nils.
func (s Spec) Args() []any {
	if len(s.Params) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(s.Params))
	dec.UseNumber()
	var vals []any
	dec.Decode(&vals)
	for i, v := range vals {
		if n, ok := v.(json.Number); ok {
			if iv, err := n.Int64(); err == nil {
				vals[i] = iv
			} else {
				f, _ := n.Float64()
				vals[i] = f
			}
		}
	}
	return vals
}

// flateWriters are reused: a flate.Writer allocates about 800 KB.
var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestCompression)
	return w
}}

// Key returns the self-contained encoding of s.
func (s Spec) Key() string {
	js, _ := json.Marshal(s)
	var buf bytes.Buffer
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(&buf)
	w.Write(js)
	w.Close()
	flateWriters.Put(w)
	return "1" + base64.RawURLEncoding.EncodeToString(buf.Bytes())
}

// MaxKeyLen bounds an encoded key (and so the SQL it may carry).
const MaxKeyLen = 64 << 10

// DecodeKey reverses Key.
func DecodeKey(k string) (Spec, error) {
	if len(k) < 2 || k[0] != '1' || len(k) > MaxKeyLen {
		return Spec{}, ErrBadKey
	}
	raw, err := base64.RawURLEncoding.DecodeString(k[1:])
	if err != nil {
		return Spec{}, ErrBadKey
	}
	js, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), 4*MaxKeyLen))
	if err != nil {
		return Spec{}, ErrBadKey
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil || s.Conn == "" || (s.Type != TypeTable && s.Type != TypeQuery) {
		return Spec{}, ErrBadKey
	}
	if _, ok := Resolutions[s.Resolution]; !ok || s.Geom == "" {
		return Spec{}, ErrBadKey
	}
	return s, nil
}

// ID returns a short stable hash of the Key (16 hex digits).
func ID(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:8])
}

// Limits tune compilation. Zero fields take the defaults given.
type Limits struct {
	// MaxPolygonFeatures caps polygons per tile at tileResolution 0.5
	// (scaled by CARTO's multipliers for other resolutions). Default: 5000.
	MaxPolygonFeatures int
	// MaxLineFeatures caps lines per tile likewise. Default: 10000.
	MaxLineFeatures int
	// BufferFraction is the tile buffer as a fraction of the tile side.
	// Default: 1/32.
	BufferFraction float64
	// QueryTimeout bounds describing and sampling a query source.
	// Default: 10s.
	QueryTimeout time.Duration
}

func (l *Limits) setDefaults() {
	if l.MaxPolygonFeatures <= 0 {
		l.MaxPolygonFeatures = 5000
	}
	if l.MaxLineFeatures <= 0 {
		l.MaxLineFeatures = 10000
	}
	if l.BufferFraction <= 0 {
		l.BufferFraction = 1.0 / 32
	}
	if l.QueryTimeout <= 0 {
		l.QueryTimeout = 10 * time.Second
	}
}

// Source is a compiled source.
type Source struct {
	Spec Spec
	// Key is Spec.Key(); ID its short hash.
	Key, ID string
	// Table is the catalog entry of a table source (nil for queries).
	Table *catalog.Table
	// FQN is the table's schema.name ("" for queries).
	FQN string
	// Geom is the spatial column.
	Geom catalog.GeomColumn
	// Schema lists the columns of the source as clients see them:
	// the spatial column, then the properties of the tiles.
	Schema []catalog.Column
	// Layer is what package mvt renders.
	Layer mvt.Layer
	// SQL is the tile statement; Args the arguments bound before the
	// tile arguments.
	SQL  string
	Args []any
	// ReadOnlyTx: the statement carries client SQL.
	ReadOnlyTx bool
	// EstRows estimates the number of rows (-1: unknown).
	EstRows int64
	// Fingerprint changes when the data behind the source may have.
	Fingerprint uint64
	// Tags are the cache tags of the source (src:… then conn:…).
	Tags []string
	// Index is set for spatial-index sources (index.go); SQL is then
	// their tile statement and Layer is unused.
	Index *Index
}

// Env is what Compile needs.
type Env struct {
	// Catalogs resolves tables.
	Catalogs *catalog.Store
	// Pool returns the pool of a data connection.
	Pool func(ctx context.Context, conn string) (*pgxpool.Pool, error)
	// Limits tune the tile statements.
	Limits Limits
}

// Compile checks s against the catalog and builds its tile statement.
// Unknown tables and columns give errors wrapping catalog.ErrNotFound or
// catalog.ErrUnknownColumn; bad parameters wrap ErrBadParams.
func Compile(ctx context.Context, env Env, s Spec) (*Source, error) {
	env.Limits.setDefaults()
	if s.Index != "" {
		return compileIndex(ctx, env, s)
	}
	src := &Source{Spec: s, Key: s.Key(), EstRows: -1}
	src.ID = ID(src.Key)
	var lookup func(string) (catalog.Column, bool)
	var available []catalog.Column
	switch s.Type {
	case TypeTable:
		cat, t, err := env.Catalogs.Lookup(ctx, s.Conn, s.Name)
		if err != nil {
			return nil, err
		}
		g, err := t.Geom(s.Geom)
		if err != nil {
			if len(t.Geoms) != 1 || s.Geom != "geom" {
				return nil, err
			}
			g = t.Geoms[0] // the default name did not match but the choice is obvious
		}
		src.Table, src.FQN, src.Geom = t, t.FQN(), g
		src.EstRows = t.EstRows
		src.Fingerprint = t.Fingerprint
		if t.Kind == catalog.KindView {
			src.Fingerprint = cat.Fingerprint
		}
		lookup, available = t.Column, t.Columns
		src.Layer = mvt.Layer{Schema: t.Schema, Table: t.Name, Key: t.Key}
		src.Tags = []string{cachetag.Source(s.Conn, src.FQN), cachetag.Conn(s.Conn)}
	case TypeQuery:
		cat, err := env.Catalogs.Get(ctx, s.Conn)
		if err != nil {
			return nil, err
		}
		pool, err := env.Pool(ctx, s.Conn)
		if err != nil {
			return nil, err
		}
		qi, err := describe(ctx, pool, s, env.Limits.QueryTimeout)
		if err != nil {
			return nil, err
		}
		src.Geom, src.EstRows, src.ReadOnlyTx = qi.geom, qi.rows, true
		src.Fingerprint = cat.Fingerprint
		available = qi.cols
		lookup = func(name string) (catalog.Column, bool) {
			for _, c := range qi.cols {
				if c.Name == name {
					return c, true
				}
			}
			return catalog.Column{}, false
		}
		src.Layer = mvt.Layer{Query: s.SQL()}
		src.Args = s.Args()
		for _, rel := range qi.relations {
			src.Tags = append(src.Tags, cachetag.Source(s.Conn, rel))
		}
		src.Tags = append(src.Tags, cachetag.Conn(s.Conn))
	}

	res := Resolutions[s.Resolution]
	l := &src.Layer
	l.Geom, l.SRID, l.Shape = src.Geom.Name, src.Geom.SRID, src.Geom.Shape()
	l.Extent = res.Extent
	l.Buffer = int(math.Round(float64(res.Extent) * env.Limits.BufferFraction))
	l.AggLevel = res.AggLevel
	// Polygons under a pixel stay as a pixel (mvt.Layer.KeepSmall).
	l.KeepSmall = l.Shape == catalog.ShapePolygon
	switch l.Shape {
	case catalog.ShapeLine:
		l.MaxFeatures = int(float64(env.Limits.MaxLineFeatures) * res.CapMult)
	default:
		l.MaxFeatures = int(float64(env.Limits.MaxPolygonFeatures) * res.CapMult)
	}
	src.Schema = []catalog.Column{{Name: src.Geom.Name, Type: catalog.TypeGeometry, PGType: "geometry"}}

	// Properties: the requested columns, or every non-spatial one.
	if len(s.Columns) > 0 {
		for _, name := range s.Columns {
			if name == mvt.FeatureIDProp {
				// Asked for picking: the id of each feature (a hash of its
				// geometry, matched again by the pick model).
				l.Props = append(l.Props, mvt.Prop{Name: name, Kind: mvt.PropFeatureID, Of: src.Geom.Name})
				src.Schema = append(src.Schema, catalog.Column{Name: name, Type: catalog.TypeString, PGType: "text"})
				continue
			}
			c, ok := lookup(name)
			if !ok {
				return nil, clienterr.Errorf(catalog.ErrUnknownColumn, " %q", name)
			}
			if p, ok := mvt.PropOf(c); ok && c.Name != src.Geom.Name {
				l.Props = append(l.Props, p)
				src.Schema = append(src.Schema, c)
			}
		}
	} else {
		for _, c := range available {
			if p, ok := mvt.PropOf(c); ok {
				l.Props = append(l.Props, p)
				src.Schema = append(src.Schema, c)
			}
		}
	}

	if s.Aggregation != "" {
		if l.Shape != catalog.ShapePoint {
			return nil, clienterr.Errorf(ErrBadParams, ": aggregationExp is supported on point sources only")
		}
		items, err := aggexp.Parse(s.Aggregation, lookup)
		if err != nil {
			if errors.Is(err, catalog.ErrUnknownColumn) {
				return nil, err
			}
			return nil, clienterr.Errorf(ErrBadParams, ": %w", err)
		}
		src.Schema = src.Schema[:1]
		for _, it := range items {
			l.Aggs = append(l.Aggs, it.Agg)
			src.Schema = append(src.Schema, catalog.Column{Name: it.Agg.Alias, Type: it.Type})
		}
	}
	if l.Shape == catalog.ShapePoint {
		src.Schema = append(src.Schema, catalog.Column{Name: mvt.DensityProp, Type: catalog.TypeNumber, PGType: "bigint"})
	}

	where, err := src.addFilters(s.Filters, lookup)
	if err != nil {
		return nil, err
	}
	l.Filter = where
	l.ArgsBefore = len(src.Args)
	sql, err := mvt.Build(*l)
	if err != nil {
		return nil, fmt.Errorf("building tile statement: %w", err)
	}
	src.SQL = sql
	return src, nil
}

// addFilters turns the CARTO filters into a boolean SQL expression over
// the row alias g, its values bound after src.Args (to which they are
// appended). No filters give "". Unknown columns wrap
// catalog.ErrUnknownColumn; other faults ErrBadParams.
func (src *Source) addFilters(filters json.RawMessage, lookup func(string) (catalog.Column, bool)) (string, error) {
	if len(filters) == 0 {
		return "", nil
	}
	fl, err := filter.Parse(filters)
	if err != nil {
		return "", clienterr.Errorf(ErrBadParams, ": %w", err)
	}
	where, args, err := fl.SQL("g", lookup, len(src.Args), false)
	if err != nil {
		if errors.Is(err, catalog.ErrUnknownColumn) {
			return "", err
		}
		return "", clienterr.Errorf(ErrBadParams, ": %w", err)
	}
	src.Args = append(src.Args, args...)
	return where, nil
}

type queryInfo struct {
	cols      []catalog.Column
	geom      catalog.GeomColumn
	rows      int64
	relations []string
}

// describe prepares the query (column names and types), samples the
// spatial column's SRID and type from one row, and reads the planner's row
// estimate and the relations it scans (for cache tags), all inside a READ
// ONLY transaction bounded by timeout.
func describe(ctx context.Context, pool *pgxpool.Pool, s Spec, timeout time.Duration) (queryInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var qi queryInfo
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return qi, fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: render.BeginReadOnly(ctx, timeout)})
	if err != nil {
		return qi, fmt.Errorf("starting read-only transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	cols, err := catalog.DescribeQuery(ctx, tx, s.SQL())
	if err != nil {
		return qi, &QueryError{Err: err}
	}
	qi.cols = cols
	var geomCol *catalog.Column
	for i := range cols {
		if cols[i].Name == s.Geom {
			geomCol = &cols[i]
		}
	}
	if geomCol == nil {
		return qi, clienterr.Errorf(catalog.ErrUnknownColumn, " %q: the query has no such column", s.Geom)
	}
	if geomCol.Type != catalog.TypeGeometry || geomCol.PGType != "geometry" {
		return qi, clienterr.Errorf(catalog.ErrNoGeometry, ": column %q of the query is %s", s.Geom, geomCol.PGType)
	}
	g := pgx.Identifier{s.Geom}.Sanitize()
	args := s.Args()
	var srid *int
	var gt *string
	err = tx.QueryRow(ctx, "SELECT ST_SRID(q."+g+"), GeometryType(q."+g+") FROM (\n"+s.SQL()+"\n) q WHERE q."+g+" IS NOT NULL LIMIT 1", args...).Scan(&srid, &gt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return qi, &QueryError{Err: err}
	}
	qi.geom = catalog.GeomColumn{Name: s.Geom, GeomType: "GEOMETRY"}
	if srid != nil {
		qi.geom.SRID = *srid
	}
	if gt != nil {
		qi.geom.GeomType = strings.ToUpper(*gt)
	}
	qi.rows, qi.relations = explain(ctx, tx, s.SQL(), args)
	if err := tx.Commit(ctx); err != nil {
		return qi, fmt.Errorf("describing query: %w", err)
	}
	return qi, nil
}

// explain returns the planner's row estimate and the relations scanned,
// or -1 and nil when EXPLAIN fails.
func explain(ctx context.Context, tx pgx.Tx, sql string, args []any) (int64, []string) {
	var plan []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON, VERBOSE) "+sql, args...).Scan(&plan); err != nil {
		return -1, nil
	}
	var doc []struct {
		Plan json.RawMessage `json:"Plan"`
	}
	if json.Unmarshal(plan, &doc) != nil || len(doc) == 0 {
		return -1, nil
	}
	var root planNode
	json.Unmarshal(doc[0].Plan, &root)
	seen := map[string]bool{}
	var rels []string
	var walk func(n *planNode)
	walk = func(n *planNode) {
		if n.Relation != "" && n.Schema != "" {
			fqn := n.Schema + "." + n.Relation
			if !seen[fqn] {
				seen[fqn] = true
				rels = append(rels, fqn)
			}
		}
		for i := range n.Plans {
			walk(&n.Plans[i])
		}
	}
	walk(&root)
	return int64(root.Rows), rels
}

type planNode struct {
	Relation string     `json:"Relation Name"`
	Schema   string     `json:"Schema"`
	Rows     float64    `json:"Plan Rows"`
	Plans    []planNode `json:"Plans"`
}

// QueryError is an error PostgreSQL reported for client SQL: its message
// may be shown to the client, who wrote the SQL.
type QueryError struct{ Err error }

func (e *QueryError) Error() string { return "query: " + e.Err.Error() }
func (e *QueryError) Unwrap() error { return e.Err }
