package engine

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/overview"
)

// statement is the SQL that renders one tile: the source's own statement
// (built by source.Compile through mvt.Build) or, when an overview of its
// table is ready, the statement over that overview (mvt.BuildOverview).
// This file is the one place that chooses a tile's SQL.
type statement struct {
	sql      string
	overview bool
	table    overview.Table // with overview
}

// statement returns the statement rendering tile co of src.
func (e *Engine) statement(src *Source, co tile.Coord) statement {
	if sql, t, ok := e.overviewSQL(src, co); ok {
		return statement{sql: sql, overview: true, table: t}
	}
	return statement{sql: src.SQL}
}

// ovStatements are a source's tile statements over one overview, a band
// each.
type ovStatements struct {
	table string // the overview's name stem
	sql   []string
}

// overviewTable returns the overview identity of src's table, or false
// when src cannot be served from one: query sources, filtered sources,
// views and sources in other SRIDs render from their table.
func overviewTable(src *Source) (overview.Table, bool) {
	l := src.Layer
	if src.Table == nil || l.Query != "" || l.Filter != "" || len(l.Aggs) > 0 || l.NoPointAggregation ||
		(l.Shape != catalog.ShapeLine && l.Shape != catalog.ShapePolygon && l.Shape != catalog.ShapePoint) {
		return overview.Table{}, false
	}
	if l.Shape == catalog.ShapePoint && (l.Key == "" || len(l.Props) == 0) {
		return overview.Table{}, false // the cells' representatives are rows by key
	}
	t := overview.Table{
		Conn: src.Spec.Conn, Schema: src.Table.Schema, Name: src.Table.Name,
		OID: src.Table.OID, Fingerprint: src.Table.Fingerprint,
		Geom: src.Geom.Name, SRID: src.Geom.SRID, Shape: l.Shape,
	}
	return t, overview.Eligible(t)
}

// overviewSQL returns the statement rendering tile co of src from its
// overview when one is ready; ok is false otherwise (and the overview is
// looked for, or built, in the background).
func (e *Engine) overviewSQL(src *Source, co tile.Coord) (sql string, t overview.Table, ok bool) {
	if e.overviews == nil {
		return "", t, false
	}
	t, ok = overviewTable(src)
	if !ok || e.overviewsHeld(t.Conn) {
		return "", t, false
	}
	ov, ok := e.overviews.Get(t)
	if !ok {
		return "", t, false
	}
	if ov.Points && int(co.Z)+src.Layer.AggLevel > ov.Bands {
		return "", t, false // finer than the overview's finest level
	}
	st := src.ov.Load()
	if st == nil || st.table != ov.Table {
		st = &ovStatements{table: ov.Table}
		if ov.Points {
			q, err := mvt.BuildPointOverview(src.Layer, ov)
			if err != nil {
				e.log.Warn("overview: building statement", "source", src.ID, "err", err)
				return "", t, false
			}
			st.sql = []string{q}
		}
		for band := 0; !ov.Points && band <= ov.Bands; band++ {
			q, err := mvt.BuildOverview(src.Layer, ov, band)
			if err != nil {
				e.log.Warn("overview: building statement", "source", src.ID, "err", err)
				return "", t, false
			}
			st.sql = append(st.sql, q)
		}
		src.ov.Store(st)
	}
	if ov.Points {
		return st.sql[0], t, true
	}
	return st.sql[ov.Band(int(co.Z), src.Layer.Extent)], t, true
}

// overviewHold is how long tiles of a connection render from their
// tables after an invalidation. An overview serves the table state of the
// catalog fingerprint it was built for, and that fingerprint reads
// insert/update/delete counters, which a writing session publishes up to
// 10 s after its commit (PostgreSQL's idle statistics flush): an
// invalidation can arrive before the fingerprint moves. The catalog is
// read again when the hold ends; a changed fingerprint then retires the
// overview, an unchanged one (a purge with no write) lets it serve again.
const overviewHold = 12 * time.Second

// holdOverviews starts the hold of conn and the catalog read that ends it.
func (e *Engine) holdOverviews(conn string) {
	if e.overviews == nil {
		return
	}
	e.mu.Lock()
	e.ovHold[conn] = time.Now().Add(overviewHold)
	e.mu.Unlock()
	time.AfterFunc(overviewHold-time.Second, func() {
		ctx, cancel := context.WithTimeout(e.base, 30*time.Second)
		defer cancel()
		if e.catalogs.Current(conn) == nil || ctx.Err() != nil {
			return
		}
		cat, err := e.catalogs.Refresh(ctx, conn)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("refreshing catalog after an invalidation hold", "conn", conn, "err", err)
			}
			return
		}
		e.noteCatalog(cat)
	})
}

// overviewsHeld reports whether conn's tiles render from tables for now.
func (e *Engine) overviewsHeld(conn string) bool {
	e.mu.Lock()
	until, ok := e.ovHold[conn]
	if ok && time.Now().After(until) {
		delete(e.ovHold, conn)
		ok = false
	}
	e.mu.Unlock()
	return ok
}

// isUndefinedTable reports a statement that found a relation gone (an
// overview dropped by a node that built a newer one).
func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// OverviewStatus reports the state of the overview of src's table
// (overview.Status); false when src cannot have one or overviews are off.
func (e *Engine) OverviewStatus(src *Source) (overview.Status, bool) {
	if e.overviews == nil {
		return 0, false
	}
	t, ok := overviewTable(src)
	if !ok {
		return 0, false
	}
	return e.overviews.Status(t), true
}
