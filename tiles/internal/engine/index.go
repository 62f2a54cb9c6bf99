package engine

// Spatial-index tiles (spatialDataType quadbin or h3; CARTO_API.md
// §2.3): a tile addressed by a cell id holds the source's cells
// aggregated to the children of that cell, as CARTO's spatial-index tile
// protobuf or as JSON. They go through the same in-process cache and
// shared fills as vector tiles (not through groupcache peers: they are
// rendered on the node that is asked).

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/source"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// indexTileZ marks the tile keys of spatial-index tiles: Coord.Z is
// indexTileZ (binary) or indexTileZ+1 (JSON), X and Y the high and low
// halves of the cell id. Such a Z is never a valid zoom.
const indexTileZ = 1 << 31

func indexKey(src *Source, cell uint64, asJSON bool) tileKey {
	z := uint32(indexTileZ)
	if asJSON {
		z++
	}
	return tileKey{id: src.ID, gen: src.Gen, c: tile.Coord{Z: z, X: uint32(cell >> 32), Y: uint32(cell)}}
}

// CachedIndex returns the cached tile of cell of the spatial-index
// source src, without allocating.
func (e *Engine) CachedIndex(src *Source, cell uint64, asJSON bool) (*Tile, bool) {
	t, ok := e.cache.Get(indexKey(src, cell, asJSON))
	if ok {
		e.metrics.cacheHit.Inc()
	}
	return t, ok
}

// IndexTile returns the tile of cell of the spatial-index source src,
// encoded as JSON or as CARTO's binary tile.
func (e *Engine) IndexTile(ctx context.Context, src *Source, cell uint64, asJSON bool) (*Tile, error) {
	tk := indexKey(src, cell, asJSON)
	if t, ok := e.cache.Get(tk); ok {
		e.metrics.cacheHit.Inc()
		return t, nil
	}
	e.metrics.cacheMiss.Inc()
	t, err, shared := e.fills.Do(ctx, tk, func(ctx context.Context) (*Tile, error) {
		return e.fill(ctx, src, tk, func(ctx context.Context, src *Source, _ tileKey) (*Tile, error) {
			return e.renderIndex(ctx, src, cell, asJSON)
		})
	})
	if shared {
		e.metrics.fillShared.Inc()
	}
	return t, err
}

// renderIndex computes the tile of cell t: the source's cells grouped to
// the descendants of t at Res(t)+ResLevel (no finer than the data), with
// the aggregated values. A tile with no cells is an empty entry (204).
func (e *Engine) renderIndex(ctx context.Context, c *Source, t uint64, asJSON bool) (*Tile, error) {
	ix := c.Index
	tr := ix.Kind.Res(t)
	if ix.DataRes < 0 || tr > ix.DataRes {
		return NewTile(nil), nil
	}
	res := min(tr+ix.ResLevel, ix.DataRes, ix.Kind.MaxRes())
	pool, err := e.pool(ctx, c.Spec.Conn)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	args := append(append([]any(nil), c.Args...), ix.Query.Args(t, res, ix.DataRes)...)
	tl, err := queryIndexTile(ctx, pool, c.Source, args)
	if err != nil {
		if c.ReadOnlyTx && ctx.Err() == nil {
			return nil, &source.QueryError{Err: err}
		}
		return nil, err
	}
	if len(tl.Cells) == 0 {
		return NewTile(nil), nil
	}
	var body []byte
	if asJSON {
		body = spatialindex.EncodeJSON(tl)
	} else {
		body = spatialindex.EncodeBinary(tl)
	}
	gz := render.Gzip(body)
	e.metrics.renderSeconds.Observe(time.Since(start).Seconds())
	e.metrics.renderBytes.Observe(float64(len(gz)))
	return NewTile(gz), nil
}

// indexDB is what queryIndexTile needs of a pool.
type indexDB interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryIndexTile runs the tile statement (client SQL in a READ ONLY
// transaction) and reads its rows into a Tile.
func queryIndexTile(ctx context.Context, db indexDB, src *source.Source, args []any) (*spatialindex.Tile, error) {
	var rows pgx.Rows
	var err error
	if src.ReadOnlyTx {
		tx, err := db.BeginTx(ctx, pgx.TxOptions{BeginQuery: render.BeginReadOnly(ctx, 0)})
		if err != nil {
			return nil, fmt.Errorf("starting read-only transaction: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		rows, err = tx.Query(ctx, src.SQL, args...)
		if err != nil {
			return nil, err
		}
	} else if rows, err = db.Query(ctx, src.SQL, args...); err != nil {
		return nil, err
	}
	defer rows.Close()
	tl := &spatialindex.Tile{Kind: src.Index.Kind}
	for _, col := range src.Schema[1:] {
		tl.Cols = append(tl.Cols, spatialindex.Column{Name: col.Name, Numeric: col.Type == catalog.TypeNumber || col.Type == catalog.TypeBigint})
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		id, ok := vals[0].(int64)
		if !ok || len(vals) != len(tl.Cols)+1 {
			return nil, fmt.Errorf("spatial-index tile: unexpected row %v", vals)
		}
		tl.Cells = append(tl.Cells, uint64(id))
		for j := range tl.Cols {
			col := &tl.Cols[j]
			v := vals[j+1]
			if col.Numeric {
				col.Num = append(col.Num, toFloat(v))
				continue
			}
			if v == nil {
				col.Str = append(col.Str, nil)
				continue
			}
			str := fmt.Sprint(v)
			col.Str = append(col.Str, &str)
		}
	}
	return tl, rows.Err()
}

// toFloat converts a numeric SQL value (NULL: NaN).
func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case int16:
		return float64(x)
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err == nil {
			return f
		}
	}
	return math.NaN()
}
