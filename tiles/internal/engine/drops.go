package engine

import (
	"context"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/render"
)

// dropSampleRows is the number of rows above which the drop statistics
// read a (repeatable) sample of a table rather than all of it.
const dropSampleRows = 500_000

// dropTimeout bounds computing them.
const dropTimeout = 20 * time.Second

// DropFractions returns TileJSON's fraction_dropped_per_zoom of src for
// zooms 0..maxZoom: per zoom, the share of the source's features that its
// tiles leave out. It is computed from the source's rows (a repeatable
// sample of a large table), so every node answers the same, and once per
// compiled source (its generation). Two rules drop lines and polygons:
// the cull of lines smaller than a pixel, counted exactly (polygons are
// kept as a pixel instead), and the per-tile feature cap, counted as the
// features beyond the cap of every tile of the zoom (4^z tiles: a lower
// bound). Points are aggregated, not dropped: zeros.
func (e *Engine) DropFractions(ctx context.Context, src *Source, maxZoom int) []float64 {
	if p := src.drops.Load(); p != nil && len(*p) == maxZoom+1 {
		return *p
	}
	out := make([]float64, maxZoom+1)
	sample := 100.0
	if src.Table != nil && src.EstRows > dropSampleRows {
		sample = 100 * float64(dropSampleRows) / float64(src.EstRows)
	}
	sql, ok := mvt.BuildDropStats(src.Layer, sample, maxZoom)
	if !ok || src.Index != nil {
		src.drops.Store(&out)
		return out
	}
	culledFrom, total, err := e.dropCounts(ctx, src, sql, maxZoom)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("computing dropped fractions", "source", src.ID, "err", err)
		}
		return out // not kept: the next TileJSON tries again
	}
	if src.Layer.KeepSmall {
		// Polygons under a pixel are kept as a pixel, from the table or
		// its overview: only the cap drops.
		clear(culledFrom)
	}
	if total > 0 {
		// culledFrom[k]: features culled at every zoom below k.
		var culled int64
		for k := maxZoom + 1; k > 0; k-- {
			culled += culledFrom[k]
			z := k - 1
			dropped := float64(culled)
			if cap := src.Layer.MaxFeatures; cap > 0 && z < 31 {
				visible := float64(total - culled)
				dropped += math.Max(0, visible-float64(cap)*math.Pow(4, float64(z)))
			}
			out[z] = math.Round(dropped/float64(total)*1e4) / 1e4
		}
	}
	src.drops.Store(&out)
	return out
}

// dropCounts runs the drop statistics statement: per k, the features
// culled at every zoom below k, and their total.
func (e *Engine) dropCounts(ctx context.Context, src *Source, sql string, maxZoom int) ([]int64, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, dropTimeout)
	defer cancel()
	pool, err := e.pool(ctx, src.Spec.Conn)
	if err != nil {
		return nil, 0, err
	}
	var rows pgx.Rows
	if src.ReadOnlyTx {
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: render.BeginReadOnly(ctx, 0)})
		if err != nil {
			return nil, 0, err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		rows, err = tx.Query(ctx, sql, src.Args...)
		if err != nil {
			return nil, 0, err
		}
	} else if rows, err = pool.Query(ctx, sql, src.Args...); err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	counts := make([]int64, maxZoom+2)
	var total int64
	for rows.Next() {
		var k int
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, 0, err
		}
		counts[min(max(k, 0), maxZoom+1)] += n
		total += n
	}
	return counts, total, rows.Err()
}
