package source

// Spatial-index sources (spatialDataType quadbin or h3, CARTO_API.md
// §2.1, §2.4): a cell column instead of a geometry, aggregated per tile
// cell with aggregationExp. The tile statement is built by package
// spatialindex; this file parses and compiles the source.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/tiles/internal/aggexp"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// DefaultIndexAggregation is what the clients send for a spatial-index
// dataset without one (fetchMap's DEFAULT_AGGREGATION_EXP).
const DefaultIndexAggregation = "1 AS __aggregationValue"

// MaxIndexCells caps the cells of one spatial-index tile.
const MaxIndexCells = 1 << 18

// maxResLevel bounds aggregationResLevel: 4^10 quadbin or 7^7 H3 cells
// per tile at most.
var maxResLevel = map[spatialindex.Kind]int{spatialindex.Quadbin: 10, spatialindex.H3: 7}

// Index is the compiled part of a spatial-index source.
type Index struct {
	// Kind is quadbin or h3.
	Kind spatialindex.Kind
	// Column is the cell column; Text when it holds hex text (H3).
	Column catalog.Column
	Text   bool
	// Columns are the source's rows' columns, the cell column among them
	// (what widgets read).
	Columns []catalog.Column
	// DataRes is the resolution of the stored cells, sampled from one
	// row (the source's cells are assumed to share it); -1 when the
	// source has no cells.
	DataRes int
	// ResLevel is aggregationResLevel: the tile's cells are
	// ResLevel finer than the tile cell.
	ResLevel int
	// Query is the tile statement's description (spatialindex.Build).
	Query spatialindex.Query
}

// parseIndexSpec completes s for spatialDataType kind: the default cell
// column and aggregationResLevel (CARTO's client defaults, shifted by
// log2(tileResolution/0.5) when a tileResolution is given without a level).
func parseIndexSpec(s *Spec, kind spatialindex.Kind, p Params) error {
	s.Index = string(kind)
	if strings.TrimSpace(p.String("spatialDataColumn")) == "" {
		s.Geom = string(kind)
	}
	lvl := p.String("aggregationResLevel")
	if lvl == "" {
		s.ResLevel = kind.DefaultResLevel()
		if r := p.String("tileResolution"); r != "" {
			f, err := strconv.ParseFloat(r, 64)
			if _, ok := Resolutions[f]; err != nil || !ok {
				return clienterr.Errorf(ErrBadParams, ": tileResolution %q: want 0.25, 0.5, 1, 2 or 4", r)
			}
			s.ResLevel += int(math.Round(math.Log2(f / 0.5)))
		}
	} else {
		f, err := strconv.ParseFloat(lvl, 64)
		if err != nil || f != math.Trunc(f) || f < 0 || int(f) > maxResLevel[kind] {
			return clienterr.Errorf(ErrBadParams, ": aggregationResLevel %q: want an integer from 0 to %d", lvl, maxResLevel[kind])
		}
		s.ResLevel = int(f)
	}
	s.ResLevel = max(0, min(s.ResLevel, maxResLevel[kind]))
	return nil
}

// compileIndex is Compile for a spatial-index source.
func compileIndex(ctx context.Context, env Env, s Spec) (*Source, error) {
	kind, ok := spatialindex.ParseKind(s.Index)
	if !ok {
		return nil, clienterr.Errorf(ErrBadParams, ": spatialDataType %q", s.Index)
	}
	src := &Source{Spec: s, Key: s.Key(), EstRows: -1}
	src.ID = ID(src.Key)
	pool, err := env.Pool(ctx, s.Conn)
	if err != nil {
		return nil, err
	}
	var cols []catalog.Column
	var from string
	switch s.Type {
	case TypeTable:
		t, cat, err := indexTable(ctx, env, pool, s)
		if err != nil {
			return nil, err
		}
		src.Table, src.FQN, src.EstRows, src.Fingerprint = t, t.FQN(), t.EstRows, t.Fingerprint
		if t.Kind == catalog.KindView {
			src.Fingerprint = cat.Fingerprint
		}
		cols = t.Columns
		from = pgx.Identifier{t.Schema, t.Name}.Sanitize()
		src.Tags = []string{cachetag.Source(s.Conn, src.FQN), cachetag.Conn(s.Conn)}
	case TypeQuery:
		cat, err := env.Catalogs.Get(ctx, s.Conn)
		if err != nil {
			return nil, err
		}
		src.Fingerprint = cat.Fingerprint
		src.ReadOnlyTx = true
		src.Args = s.Args()
		from = "(\n" + s.SQL() + "\n)"
		var rels []string
		cols, src.EstRows, rels, err = describeIndexQuery(ctx, pool, s, env.Limits)
		if err != nil {
			return nil, err
		}
		for _, rel := range rels {
			src.Tags = append(src.Tags, cachetag.Source(s.Conn, rel))
		}
		src.Tags = append(src.Tags, cachetag.Conn(s.Conn))
	default:
		return nil, clienterr.Errorf(ErrBadParams, ": source type %q", s.Type)
	}
	lookup := func(name string) (catalog.Column, bool) {
		for _, c := range cols {
			if c.Name == name {
				return c, true
			}
		}
		return catalog.Column{}, false
	}
	col, ok := lookup(s.Geom)
	if !ok {
		return nil, clienterr.Errorf(catalog.ErrUnknownColumn, " %q: no such %s column", s.Geom, kind)
	}
	ix := &Index{Kind: kind, Column: col, Columns: cols, ResLevel: s.ResLevel, DataRes: -1}
	switch {
	case isIntType(col.PGType):
	case kind == spatialindex.H3 && col.Type == catalog.TypeString:
		ix.Text = true
	default:
		return nil, clienterr.Errorf(ErrBadParams, ": column %q is %s: a %s column must be bigint%s", col.Name, col.PGType, kind,
			map[bool]string{true: " or hex text", false: ""}[kind == spatialindex.H3])
	}
	for _, name := range s.Columns {
		if _, ok := lookup(name); !ok {
			return nil, clienterr.Errorf(catalog.ErrUnknownColumn, " %q", name)
		}
	}
	agg := s.Aggregation
	if agg == "" {
		agg = DefaultIndexAggregation
	}
	items, err := aggexp.Parse(agg, lookup)
	if err != nil {
		if errors.Is(err, catalog.ErrUnknownColumn) {
			return nil, err
		}
		return nil, clienterr.Errorf(ErrBadParams, ": %w", err)
	}
	typ := catalog.TypeBigint
	if ix.Text {
		typ = catalog.TypeString
	}
	src.Schema = []catalog.Column{{Name: col.Name, Type: typ, PGType: col.PGType}}
	q := spatialindex.Query{Kind: kind, From: from, Column: col.Name, Text: ix.Text, Limit: MaxIndexCells}
	for _, it := range items {
		q.Aggs = append(q.Aggs, spatialindex.Agg{SQL: it.Agg.SQL, Alias: it.Agg.Alias})
		src.Schema = append(src.Schema, catalog.Column{Name: it.Agg.Alias, Type: it.Type})
	}
	if q.Filter, err = src.addFilters(s.Filters, lookup); err != nil {
		return nil, err
	}
	q.ArgsBefore = len(src.Args)
	ix.Query = q
	src.SQL = spatialindex.Build(q)
	if ix.DataRes, err = sampleRes(ctx, pool, src, ix, env.Limits.QueryTimeout); err != nil {
		return nil, err
	}
	src.Index = ix
	return src, nil
}

func isIntType(pgType string) bool {
	switch pgType {
	case "bigint", "integer", "smallint":
		return true
	}
	return false
}

// indexTable finds a table source's relation: in the catalog when it has a
// geometry column too, else straight from pg_catalog (the catalog lists
// spatial tables only).
func indexTable(ctx context.Context, env Env, pool *pgxpool.Pool, s Spec) (*catalog.Table, *catalog.Catalog, error) {
	cat, t, err := env.Catalogs.Lookup(ctx, s.Conn, s.Name)
	if err == nil || !errors.Is(err, catalog.ErrNotFound) {
		return t, cat, err
	}
	if cat == nil {
		if cat, err = env.Catalogs.Get(ctx, s.Conn); err != nil {
			return nil, nil, err
		}
	}
	schema, name, ok := catalog.SplitName(s.Name)
	if !ok {
		return nil, nil, clienterr.Errorf(catalog.ErrNotFound, ": %q", s.Name)
	}
	for _, cand := range [][2]string{{schema, name}, {strings.ToLower(schema), strings.ToLower(name)}} {
		t, err := readTable(ctx, pool, cand[0], cand[1])
		if err != nil || t != nil {
			return t, cat, err
		}
	}
	return nil, nil, clienterr.Errorf(catalog.ErrNotFound, ": %q on connection %s", s.Name, s.Conn)
}

const tableSQL = `
SELECT c.oid::int8, c.relkind::text, c.reltuples::int8, a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(bt.typname, t.typname), coalesce(bt.typcategory, t.typcategory)::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY a.attnum`

// readTable reads one relation's columns; nil when it does not exist or
// may not be read.
func readTable(ctx context.Context, pool *pgxpool.Pool, schema, name string) (*catalog.Table, error) {
	rows, err := pool.Query(ctx, tableSQL, schema, name)
	if err != nil {
		return nil, fmt.Errorf("reading relation %s.%s: %w", schema, name, err)
	}
	defer rows.Close()
	var t *catalog.Table
	for rows.Next() {
		var oid, reltuples int64
		var relkind, attname, pgtype, typname, typcat string
		if err := rows.Scan(&oid, &relkind, &reltuples, &attname, &pgtype, &typname, &typcat); err != nil {
			return nil, fmt.Errorf("reading relation %s.%s: %w", schema, name, err)
		}
		if t == nil {
			t = &catalog.Table{Schema: schema, Name: name, OID: uint32(oid), EstRows: reltuples, Kind: relKind(relkind)}
		}
		t.Columns = append(t.Columns, catalog.Column{Name: attname, PGType: pgtype, Type: catalog.MapType(typname, typcat)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading relation %s.%s: %w", schema, name, err)
	}
	if t != nil && t.Kind != catalog.KindView {
		if t.Fingerprint, err = catalog.ReadFingerprint(ctx, pool, t.OID); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func relKind(k string) catalog.Kind {
	switch k {
	case "v":
		return catalog.KindView
	case "m":
		return catalog.KindMatView
	case "f":
		return catalog.KindForeignTable
	}
	return catalog.KindTable
}

// describeIndexQuery describes a query source's columns, row estimate and
// relations inside a READ ONLY transaction.
func describeIndexQuery(ctx context.Context, pool *pgxpool.Pool, s Spec, l Limits) ([]catalog.Column, int64, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.QueryTimeout)
	defer cancel()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: render.BeginReadOnly(ctx, l.QueryTimeout)})
	if err != nil {
		return nil, 0, nil, fmt.Errorf("starting read-only transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	cols, err := catalog.DescribeQuery(ctx, tx, s.SQL())
	if err != nil {
		return nil, 0, nil, &QueryError{Err: err}
	}
	rows, rels := explain(ctx, tx, s.SQL(), s.Args())
	return cols, rows, rels, nil
}

// sampleRes reads the resolution of one stored cell (-1: none).
func sampleRes(ctx context.Context, pool *pgxpool.Pool, src *Source, ix *Index, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	col := "g." + pgx.Identifier{ix.Column.Name}.Sanitize()
	sql := "SELECT " + col + "::text FROM " + ix.Query.From + " g WHERE " + col + " IS NOT NULL LIMIT 1"
	var tx pgx.Tx
	var err error
	if src.ReadOnlyTx {
		tx, err = pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: render.BeginReadOnly(ctx, timeout)})
	} else {
		tx, err = pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	}
	if err != nil {
		return 0, fmt.Errorf("starting read-only transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var v string
	err = tx.QueryRow(ctx, sql, src.Spec.Args()...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, nil
	}
	if err != nil {
		if src.ReadOnlyTx {
			return 0, &QueryError{Err: err}
		}
		return 0, fmt.Errorf("sampling %s: %w", ix.Column.Name, err)
	}
	var c uint64
	if ix.Text {
		c, err = ix.Kind.Parse(strings.ToLower(strings.TrimSpace(v)))
	} else {
		var n int64
		if n, err = strconv.ParseInt(v, 10, 64); err == nil {
			c = uint64(n)
			err = ix.Kind.Check(c)
		}
	}
	if err != nil {
		return 0, clienterr.Errorf(ErrBadParams, ": column %q does not hold %s cells (%s: %v)", ix.Column.Name, ix.Kind, v, err)
	}
	return ix.Kind.Res(c), nil
}
