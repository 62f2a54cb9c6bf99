package tiles

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

// ovStatements are a source's tile statements over one overview, a band
// each.
type ovStatements struct {
	table string // the overview's name stem
	sql   []string
}

// overviewTable returns the overview identity of c's table, or false when
// c cannot be served from one: query sources, filtered sources, points,
// views and sources in other SRIDs render from their table.
func overviewTable(c *compiled) (overview.Table, bool) {
	src := c.src
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

// overviewSQL returns the statement rendering tile co of c from its
// overview when one is ready; ok is false otherwise (and the overview is
// looked for, or built, in the background).
func (s *Server) overviewSQL(c *compiled, co tile.Coord) (sql string, t overview.Table, ok bool) {
	if s.overviews == nil {
		return "", t, false
	}
	t, ok = overviewTable(c)
	if !ok || s.overviewsHeld(t.Conn) {
		return "", t, false
	}
	ov, ok := s.overviews.Get(t)
	if !ok {
		return "", t, false
	}
	if ov.Points && int(co.Z)+c.src.Layer.AggLevel > ov.Bands {
		return "", t, false // finer than the overview's finest level
	}
	st := c.ov.Load()
	if st == nil || st.table != ov.Table {
		st = &ovStatements{table: ov.Table}
		if ov.Points {
			q, err := mvt.BuildPointOverview(c.src.Layer, ov)
			if err != nil {
				s.log.Warn("overview: building statement", "source", c.src.ID, "err", err)
				return "", t, false
			}
			st.sql = []string{q}
		}
		for band := 0; !ov.Points && band <= ov.Bands; band++ {
			q, err := mvt.BuildOverview(c.src.Layer, ov, band)
			if err != nil {
				s.log.Warn("overview: building statement", "source", c.src.ID, "err", err)
				return "", t, false
			}
			st.sql = append(st.sql, q)
		}
		c.ov.Store(st)
	}
	if ov.Points {
		return st.sql[0], t, true
	}
	return st.sql[ov.Band(int(co.Z), c.src.Layer.Extent)], t, true
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
func (s *Server) holdOverviews(conn string) {
	if s.overviews == nil {
		return
	}
	s.mu.Lock()
	s.ovHold[conn] = time.Now().Add(overviewHold)
	s.mu.Unlock()
	time.AfterFunc(overviewHold-time.Second, func() {
		ctx, cancel := context.WithTimeout(s.base, 30*time.Second)
		defer cancel()
		if s.catalogs.Current(conn) == nil || ctx.Err() != nil {
			return
		}
		cat, err := s.catalogs.Refresh(ctx, conn)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("refreshing catalog after an invalidation hold", "conn", conn, "err", err)
			}
			return
		}
		s.noteCatalog(cat)
	})
}

// overviewsHeld reports whether conn's tiles render from tables for now.
func (s *Server) overviewsHeld(conn string) bool {
	s.mu.Lock()
	until, ok := s.ovHold[conn]
	if ok && time.Now().After(until) {
		delete(s.ovHold, conn)
		ok = false
	}
	s.mu.Unlock()
	return ok
}

// isUndefinedTable reports a statement that found a relation gone (an
// overview dropped by a node that built a newer one).
func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}
