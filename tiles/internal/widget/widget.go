// Package widget builds the SQL of CARTO's widget models and Stats API
// (CARTO_API.md §4) over a table or query source: formula, category,
// histogram, range, scatterplot, timeseries, table and aggregations, and
// the per-column statistics behind /v3/stats. It is pure: Build turns the
// request's params into a Plan (statements with bound arguments), the
// caller runs the statements in one read-only transaction and hands the
// rows back to Plan.Response, which shapes the JSON body the client reads.
//
// Every name in a statement comes from the source's columns (checked with
// Source.Column and written with pgx.Identifier), every value is bound,
// and custom aggregate expressions (operationExp, aggregations strings)
// are parsed by package aggexp and re-rendered, never copied. Rows are
// read as alias g:
//
//	SELECT <model expressions> FROM <table or (query)> g
//	WHERE <filters> AND <spatial filters> [AND <model conditions>] …
//
// A query source's own queryParameters are $1…$n (Source.Args); the
// filters, the spatial filters and the model's values follow.
package widget

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// Errors returned by Build, ParseScope and Plan.Response.
var (
	// ErrInvalid: the model name, its params or the scope are malformed
	// (the client's fault).
	ErrInvalid = clienterr.Kind("widget", "invalid request")
	// ErrUnknownModel: no such model.
	ErrUnknownModel = clienterr.Kind("widget", "unknown model")
	// ErrNotSupported: a CARTO feature this server does not offer here
	// (spatial filters given as cell lists on a geometry source, H3
	// covers without cgo).
	ErrNotSupported = clienterr.Kind("widget", "not supported")
	// ErrTooManyRows: the answer would hold more rows than Limits.MaxRows.
	ErrTooManyRows = clienterr.Kind("widget", "too many rows")
)

// ColumnError names a column the source does not have. It wraps
// catalog.ErrUnknownColumn.
type ColumnError struct{ Name string }

func (e *ColumnError) Error() string {
	return catalog.ErrUnknownColumn.Error() + " " + strconv.Quote(e.Name)
}

// Message is the client text (clienterr.Messager).
func (e *ColumnError) Message() string {
	return catalog.ErrUnknownColumn.Message() + " " + strconv.Quote(e.Name)
}

func (e *ColumnError) Unwrap() error { return catalog.ErrUnknownColumn }

// invalid returns an ErrInvalid error with a message for the client.
func invalid(format string, args ...any) error {
	return clienterr.Errorf(ErrInvalid, ": "+format, args...)
}

// Models lists the models Build knows, in CARTO's order.
var Models = []string{"formula", "category", "histogram", "range", "scatterplot", "timeseries", "table", "aggregations", "pick"}

// Source is the relation widgets read: a table (Schema, Table) or a
// query (Query, with Args bound as $1…$n).
type Source struct {
	// Schema and Table name a table source, as stored in PostgreSQL.
	Schema, Table string
	// Query is a query source's SQL (normalized: one statement, no final
	// semicolon); empty for tables.
	Query string
	// Args are the query's queryParameters.
	Args []any
	// Columns are the source's columns, geometry columns included.
	Columns []catalog.Column
	// Geoms are its geometry columns with their SRIDs (the first is the
	// source's spatial column).
	Geoms []catalog.GeomColumn
	// RowIDs: the relation has ctid (tables and materialized views), used
	// to make table pages deterministic.
	RowIDs bool
	// Index is set for a spatial-index source: spatial filters then keep
	// the rows whose cell meets the polygon.
	Index *Index
}

// Index is a spatial-index source's cell column.
type Index struct {
	Kind spatialindex.Kind
	// Column is the cell column; Text when it holds hex text, else
	// bigint.
	Column string
	Text   bool
	// DataRes is the resolution of the source's cells (-1: no cells).
	DataRes int
}

// Column finds a column by name: the exact name, else the only one equal
// ignoring case.
func (s *Source) Column(name string) (catalog.Column, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	var found catalog.Column
	n := 0
	for _, c := range s.Columns {
		if strings.EqualFold(c.Name, name) {
			found, n = c, n+1
		}
	}
	return found, n == 1
}

// column is Column with the error the client gets.
func (s *Source) column(name string) (catalog.Column, error) {
	if c, ok := s.Column(name); ok {
		return c, nil
	}
	return catalog.Column{}, &ColumnError{Name: name}
}

// from is the FROM item, aliased g.
func (s *Source) from() string {
	if s.Query != "" {
		return "(\n" + s.Query + "\n) g"
	}
	return pgx.Identifier{s.Schema, s.Table}.Sanitize() + " g"
}

// Limits bound what a plan may return.
type Limits struct {
	// MaxRows caps the rows of category, timeseries and table answers.
	// Default: 200000.
	MaxRows int
	// Covers, when set, shares the covers of spatial filters on
	// spatial-index sources between requests.
	Covers *spatialindex.Covers
}

func (l *Limits) setDefaults() {
	if l.MaxRows <= 0 {
		l.MaxRows = 200_000
	}
}

// Statement is one SQL statement and its arguments (Source.Args first).
type Statement struct {
	SQL  string
	Args []any
}

// Result is what a statement returned: column names and rows of values as
// pgx decodes them (the statements cast to float8, text, int8, bool,
// timestamp, jsonb).
type Result struct {
	Columns []string
	Rows    [][]any
}

// Plan is the work of one request: statements to run in order in one
// read-only transaction, and how to shape their results.
type Plan struct {
	Statements []Statement
	shape      func(res []Result) (any, error)
}

// Response shapes the results of the plan's statements (one Result per
// statement, in order) into the JSON body of the answer.
func (p *Plan) Response(res []Result) (any, error) {
	if len(res) != len(p.Statements) {
		return nil, fmt.Errorf("widget: %d results for %d statements", len(res), len(p.Statements))
	}
	return p.shape(res)
}

// builder accumulates one statement's arguments after the source's.
type builder struct {
	src   *Source
	scope *Scope
	args  []any
	// featureIDs restrict the rows to these features (pick.go); on a
	// spatial-index source, cells are the same ids read as cells
	// (pick_index.go).
	featureIDs []string
	cells      []pickedCell
}

func newBuilder(src *Source, scope *Scope) *builder {
	return &builder{src: src, scope: scope, args: append([]any(nil), src.Args...)}
}

// bind adds a value and returns its placeholder.
func (b *builder) bind(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

// where renders the scope's conditions and extra ones as a WHERE clause
// (empty when there is none).
func (b *builder) where(extra ...string) (string, error) {
	var conds []string
	if len(b.scope.Filters) > 0 {
		for _, name := range b.scope.Filters.Columns() {
			if _, err := b.src.column(name); err != nil {
				return "", err
			}
		}
		sql, args, err := b.scope.Filters.SQL("g", b.src.Column, len(b.args), b.scope.Or)
		if err != nil {
			return "", err
		}
		if sql != "" {
			b.args = append(b.args, args...)
			conds = append(conds, "("+sql+")")
		}
	}
	for _, sf := range b.scope.Spatial {
		cond, err := b.spatial(sf)
		if err != nil {
			return "", err
		}
		conds = append(conds, cond)
	}
	if len(b.featureIDs) > 0 {
		cond, err := b.featureCond()
		if err != nil {
			return "", err
		}
		conds = append(conds, cond)
	}
	conds = append(conds, extra...)
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), nil
}

// stmt finishes a statement with the builder's arguments.
func (b *builder) stmt(sql string) Statement {
	return Statement{SQL: sql, Args: b.args}
}

// ref is column c of row g.
func ref(c catalog.Column) string { return "g." + pgx.Identifier{c.Name}.Sanitize() }

// isNumeric: number or bigint.
func isNumeric(c catalog.Column) bool {
	return c.Type == catalog.TypeNumber || c.Type == catalog.TypeBigint
}

// value renders column c as a plain JSON-friendly value: numerics other
// than integers and floats as float8, geometries as GeoJSON text, objects
// as jsonb, strings and unknown types as text.
func value(c catalog.Column) string {
	r := ref(c)
	pg := strings.ToLower(c.PGType)
	switch c.Type {
	case catalog.TypeNumber:
		switch pg {
		case "integer", "smallint", "double precision", "real":
			return r
		}
		return r + "::float8"
	case catalog.TypeBigint, catalog.TypeBoolean, catalog.TypeTimestamp:
		return r
	case catalog.TypeGeometry:
		return "ST_AsGeoJSON(" + r + ")"
	case catalog.TypeObject:
		return "to_jsonb(" + r + ")"
	}
	return r + "::text"
}

// number renders numeric column c as float8 (timestamps as epoch
// milliseconds, as CARTO's time filters count).
func number(c catalog.Column) (string, error) {
	switch {
	case isNumeric(c):
		return ref(c) + "::float8", nil
	case c.Type == catalog.TypeTimestamp:
		return "(extract(epoch FROM " + ref(c) + ") * 1000)::float8", nil
	}
	return "", invalid("column %q is %s, not a number", c.Name, c.Type)
}

// ISOTime formats t as CARTO's clients print instants: UTC, milliseconds,
// Z (what JavaScript's Date.prototype.toISOString returns).
func ISOTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// maxExactInt is the largest integer a JavaScript number (a float64)
// holds exactly: Number.MAX_SAFE_INTEGER.
const maxExactInt = 1<<53 - 1

// Plain turns a decoded value into one encoding/json writes as the client
// expects: times as ISO strings, non-finite floats as null, byte arrays
// (uuid) as text, and integers JavaScript cannot hold exactly (quadbin
// and h3int cell ids, 64-bit hashes) as decimal strings, which the
// client can turn into a BigInt without loss, instead of numbers that
// JSON.parse would round.
func Plain(v any) any {
	switch x := v.(type) {
	case int64:
		if x > maxExactInt || x < -maxExactInt {
			return strconv.FormatInt(x, 10)
		}
	case uint64:
		if x > maxExactInt {
			return strconv.FormatUint(x, 10)
		}
	case time.Time:
		return ISOTime(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil
		}
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Plain(e)
		}
		return out
	case nil, bool, string, int, int8, int16, int32, uint8, uint16, uint32, map[string]any:
	case fmt.Stringer:
		return x.String()
	default:
		if _, err := json.Marshal(x); err != nil {
			return fmt.Sprint(x)
		}
	}
	return v
}

// Row is one answer row whose keys keep the order of the statement's
// columns.
type Row struct {
	Keys []string
	Vals []any
}

// MarshalJSON writes r as an object in key order.
func (r Row) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, k := range r.Keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		vb, err := json.Marshal(Plain(r.Vals[i]))
		if err != nil {
			return nil, err
		}
		b = append(b, vb...)
	}
	return append(b, '}'), nil
}

// rows turns a result into Rows.
func rows(r Result) []Row {
	out := make([]Row, len(r.Rows))
	for i, vals := range r.Rows {
		out[i] = Row{Keys: r.Columns, Vals: vals}
	}
	return out
}

// one returns the single row of a result.
func one(r Result) ([]any, error) {
	if len(r.Rows) != 1 {
		return nil, fmt.Errorf("widget: %d rows, want 1", len(r.Rows))
	}
	return r.Rows[0], nil
}

// body is the {"rows": …, "metadata": …} answer of the model API.
type body struct {
	Rows     any `json:"rows"`
	Metadata any `json:"metadata,omitempty"`
}
