package tiles

// Spatial-index sources (spatialDataType quadbin or h3; CARTO_API.md
// §2.2–2.4): their TileJSON, and tiles addressed by a cell id {i}
// holding the source's cells aggregated to the children of that cell, as
// CARTO's spatial-index tile protobuf or as JSON. Tiles go through the
// same in-process cache and shared fills as vector tiles (not through
// groupcache peers: they are rendered on the node that is asked).

import (
	"bytes"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
	"github.com/meridian-gis/meridian/tiles/internal/tilejson"
)

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
)

// indexTileJSON answers the TileJSON of a spatial-index source.
func (s *Server) indexTileJSON(rc *fasthttp.RequestCtx, c *compiled) {
	src, ix := c.Source, c.Index
	tiles := s.sourceURL(c, "/{i}") + "?k=" + src.Key + "&cache=" + c.GenStr +
		"&formatTiles=binary&spatialIndex=" + string(ix.Kind)
	maxRes := 0
	if ix.DataRes >= 0 {
		maxRes = max(0, ix.DataRes-ix.ResLevel)
	}
	maxZoom := s.cfg.MaxZoom
	if ix.Kind == spatialindex.Quadbin {
		maxZoom = maxRes
	}
	fields := map[string]string{}
	attrs := []tilejson.Attribute{}
	for _, col := range src.Schema[1:] {
		t := tileStatsType(col.Type)
		fields[col.Name] = t
		attrs = append(attrs, tilejson.Attribute{Attribute: col.Name, Type: t})
	}
	minRes, dataRes := 0, ix.DataRes
	resp := tilejson.TileJSON{
		TileJSON:       tilejson.Version,
		Name:           sourceName(c),
		Version:        "1.0.0",
		Scheme:         string(ix.Kind),
		Tiles:          []string{tiles},
		MinResolution:  &minRes,
		MaxResolution:  &maxRes,
		DataResolution: &dataRes,
		MaxZoom:        maxZoom,
		Bounds:         tilejson.World,
		VectorLayers:   []tilejson.VectorLayer{{ID: mvt.LayerName, MaxZoom: maxZoom, Fields: fields}},
		TileStats: tilejson.TileStats{LayerCount: 1, Layers: []tilejson.LayerStats{{
			Layer: mvt.LayerName, Count: max(src.EstRows, 0), Geometry: "Polygon",
			AttributeCount: len(attrs), Attributes: attrs,
		}}},
	}
	s.cacheHeaders(rc, c, versioned(rc, c))
	writeJSON(rc, resp)
}

// indexTile answers GET /v3/maps/{conn}/{type}/{i} (CARTO_API.md §2.3).
func (s *Server) indexTile(rc *fasthttp.RequestCtx, conn, typ, cellHex []byte) {
	start := time.Now()
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
	ix := c.Index
	if ix == nil {
		s.fail(rc, errNotIndex)
		return
	}
	cell, err := ix.Kind.Parse(string(cellHex))
	if err != nil {
		s.fail(rc, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "bad tile address: " + clientMessage(err), err: err})
		return
	}
	t, ok := s.engine.CachedIndex(c, cell, asJSON)
	if !ok {
		ctx, cancel := s.clientContext(rc, s.cfg.TileTimeout.D(), "tile")
		t, err = s.engine.IndexTile(ctx, c, cell, asJSON)
		cancel()
		if err != nil {
			s.fail(rc, err)
			return
		}
	}
	ct := spatialindex.ContentType
	if asJSON {
		ct = "application/json"
	}
	s.writeTileAs(rc, c, t, versioned(rc, c), ct)
	s.metrics.observeIndexTile(ix.Kind, ix.Kind.Res(cell), ok, start)
}
