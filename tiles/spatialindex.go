package tiles

// Spatial-index sources (spatialDataType quadbin or h3; CARTO_API.md
// §2.2–2.4): their TileJSON, and tiles addressed by a cell id {i}
// holding the source's cells aggregated to the children of that cell, as
// CARTO's spatial-index tile protobuf or as JSON. Tiles go through the
// same in-process cache and shared fills as vector tiles (not through
// groupcache peers: they are rendered on the node that is asked).

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/source"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// indexTileZ marks the tile keys of spatial-index tiles: Coord.Z is
// indexTileZ (binary) or indexTileZ+1 (JSON), X and Y the high and low
// halves of the cell id. Such a Z is never a valid zoom.
const indexTileZ = 1 << 31

// isIndexPath reports whether a tile path is a spatial-index address:
// one segment, hexadecimal or with a spatialIndex parameter (as the
// TileJSON's template has). Other paths stay z/x/y tiles.
func isIndexPath(rc *fasthttp.RequestCtx, rest []byte) bool {
	if len(rest) == 0 || bytes.IndexByte(rest, '/') >= 0 {
		return false
	}
	if rc.QueryArgs().Has("spatialIndex") {
		return true
	}
	for _, b := range rest {
		if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F') {
			return false
		}
	}
	return true
}

// errNotIndex answers an {i} tile asked of a vector source, errIsIndex a
// z/x/y tile asked of a spatial-index source.
var (
	errNotIndex = &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST",
		msg: "bad tile address: want {z}/{x}/{y} (this source is not a spatial index)"}
	errIsIndex = &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST",
		msg: "bad tile address: this spatial-index source takes tiles by cell id ({i})"}
	// errIndexWidgets: the Model and Stats APIs serve geometry sources only.
	errIndexWidgets = &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST",
		msg: "widgets on spatial-index (h3, quadbin) sources are not supported yet"}
)

// indexTileJSON answers the TileJSON of a spatial-index source.
func (s *Server) indexTileJSON(rc *fasthttp.RequestCtx, c *compiled) {
	src, ix := c.src, c.src.Index
	tiles := s.sourceURL(c, "/{i}") + "?k=" + src.Key + "&cache=" + c.genStr +
		"&formatTiles=binary&spatialIndex=" + string(ix.Kind)
	maxRes := 0
	if ix.DataRes >= 0 {
		maxRes = max(0, ix.DataRes-ix.ResLevel)
	}
	maxZoom := s.cfg.MaxZoom
	if ix.Kind == spatialindex.Quadbin {
		maxZoom = maxRes
	}
	type attr struct {
		Attribute string `json:"attribute"`
		Type      string `json:"type"`
	}
	fields := map[string]string{}
	attrs := []attr{}
	for _, col := range src.Schema[1:] {
		t := tileStatsType(col.Type)
		fields[col.Name] = t
		attrs = append(attrs, attr{col.Name, t})
	}
	name := src.FQN
	if name == "" {
		name = "query"
	}
	resp := map[string]any{
		"tilejson":       "3.0.0",
		"name":           name,
		"description":    "",
		"version":        "1.0.0",
		"attribution":    "",
		"scheme":         string(ix.Kind),
		"tiles":          []string{tiles},
		"minresolution":  0,
		"maxresolution":  maxRes,
		"dataresolution": ix.DataRes,
		"minzoom":        0,
		"maxzoom":        maxZoom,
		"bounds":         []float64{-180, -85.0511, 180, 85.0511},
		"center":         []float64{0, 0, 0},
		"vector_layers":  []map[string]any{{"id": mvt.LayerName, "minzoom": 0, "maxzoom": maxZoom, "fields": fields}},
		"tilestats": map[string]any{"layerCount": 1, "layers": []map[string]any{{
			"layer": mvt.LayerName, "count": max(src.EstRows, 0), "geometry": "Polygon",
			"attributeCount": len(attrs), "attributes": attrs,
		}}},
	}
	s.cacheHeaders(rc, c, versioned(rc, c))
	writeJSON(rc, resp)
}

// indexTile answers GET /v3/maps/{conn}/{type}/{i} (CARTO_API.md §2.3).
func (s *Server) indexTile(rc *fasthttp.RequestCtx, conn, typ, cellHex []byte) {
	asJSON := false
	switch f := string(rc.QueryArgs().Peek("formatTiles")); f {
	case "", "binary":
	case "json":
		asJSON = true
	default:
		s.fail(rc, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "formatTiles must be binary or json for spatial-index tiles"})
		return
	}
	c, err := s.tileSource(rc, conn, typ) // maps.go
	if err != nil {
		s.fail(rc, err)
		return
	}
	ix := c.src.Index
	if ix == nil {
		s.fail(rc, errNotIndex)
		return
	}
	cell, err := ix.Kind.Parse(string(cellHex))
	if err != nil {
		s.fail(rc, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "bad tile address: " + trimIndexPkg(err.Error()), err: err})
		return
	}
	z := uint32(indexTileZ)
	if asJSON {
		z++
	}
	tk := tileKey{id: c.src.ID, gen: c.gen, c: tile.Coord{Z: z, X: uint32(cell >> 32), Y: uint32(cell)}}
	e, ok := s.cache.Get(tk)
	if ok {
		s.metrics.cacheHit.Inc()
	} else {
		s.metrics.cacheMiss.Inc()
		ctx, cancel := s.clientContext(rc, s.cfg.TileTimeout.D(), "tile")
		var shared bool
		e, err, shared = s.fills.Do(ctx, tk, func(ctx context.Context) (*entry, error) {
			ctx, cancel := context.WithTimeout(ctx, s.cfg.TileTimeout.D())
			defer cancel()
			defer context.AfterFunc(s.base, cancel)()
			e, err := s.renderIndex(ctx, c, cell, asJSON)
			if err != nil {
				return nil, err
			}
			s.cache.Put(tk, e, e.size())
			return e, nil
		})
		cancel()
		if shared {
			s.metrics.fillShared.Inc()
		}
		if err != nil {
			s.fail(rc, err)
			return
		}
	}
	ct := spatialindex.ContentType
	if asJSON {
		ct = "application/json"
	}
	s.writeTileAs(rc, c, e, versioned(rc, c), ct)
}

func trimIndexPkg(s string) string {
	const p = "spatialindex: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// renderIndex computes the tile of cell t: the source's cells grouped to
// the descendants of t at Res(t)+ResLevel (no finer than the data), with
// the aggregated values. A tile with no cells is an empty entry (204).
func (s *Server) renderIndex(ctx context.Context, c *compiled, t uint64, asJSON bool) (*entry, error) {
	ix := c.src.Index
	tr := ix.Kind.Res(t)
	if ix.DataRes < 0 || tr > ix.DataRes {
		return newEntry(nil), nil
	}
	res := min(tr+ix.ResLevel, ix.DataRes, ix.Kind.MaxRes())
	pool, err := s.conns.Pool(ctx, c.src.Spec.Conn)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	args := append(append([]any(nil), c.src.Args...), ix.Query.Args(t, res, ix.DataRes)...)
	tl, err := queryIndexTile(ctx, pool, c.src, args)
	if err != nil {
		if c.src.ReadOnlyTx && ctx.Err() == nil {
			return nil, &source.QueryError{Err: err}
		}
		return nil, err
	}
	if len(tl.Cells) == 0 {
		return newEntry(nil), nil
	}
	var body []byte
	if asJSON {
		body = spatialindex.EncodeJSON(tl)
	} else {
		body = spatialindex.EncodeBinary(tl)
	}
	gz := render.Gzip(body)
	s.metrics.renderSeconds.Observe(time.Since(start).Seconds())
	s.metrics.renderBytes.Observe(float64(len(gz)))
	return newEntry(gz), nil
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
