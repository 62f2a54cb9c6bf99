package tiles

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/engine"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/source"
	"github.com/meridian-gis/meridian/tiles/internal/tilejson"
)

const mvtContentType = "application/vnd.mapbox-vector-tile"

// b2s views b as a string without copying; the result must not be kept.
func b2s(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// specFromRequest builds the Spec of a request that names its source
// with parameters (instantiation, or the stateless TileJSON/tile URLs).
func specFromRequest(rc *fasthttp.RequestCtx, conn, typ []byte) (source.Spec, error) {
	if !grant.ValidConnectionName(b2s(conn)) {
		return source.Spec{}, &apiError{status: http.StatusNotFound, code: "CONNECTION_NOT_FOUND", msg: "connection not found"}
	}
	switch string(typ) {
	case string(source.TypeTable), string(source.TypeQuery):
	default:
		return source.Spec{}, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST",
			msg: "source type " + strconv.Quote(string(typ)) + " is not supported (table or query)"}
	}
	p, err := params(rc)
	if err != nil {
		return source.Spec{}, err
	}
	return source.ParseSpec(string(conn), source.Type(typ), p)
}

// preauthorize checks the grant on what the client asked for before the
// catalog is consulted, so a token cannot probe for tables it may not see.
func preauthorize(claims *grant.Claims, spec source.Spec) error {
	if spec.Type == source.TypeTable {
		return claims.Allow(grant.APIMaps, spec.Conn, spec.Name)
	}
	return claims.AllowQuery(grant.APIMaps, spec.Conn, spec.Query)
}

// resolve finds the source of a TileJSON or tile request: k=… (the key
// handed out at instantiation), or inline parameters.
func (s *Server) resolve(ctx context.Context, rc *fasthttp.RequestCtx, claims *grant.Claims, conn, typ []byte) (*compiled, error) {
	var c *compiled
	if k := rc.QueryArgs().Peek("k"); len(k) > 0 {
		if c = s.engine.Lookup(k); c == nil {
			// Not compiled here yet: check the grant on the decoded source
			// first, so a key cannot make this node run ungranted SQL.
			spec, err := source.DecodeKey(string(k))
			if err != nil {
				return nil, err
			}
			if err := preauthorize(claims, spec); err != nil {
				return nil, err
			}
			if c, err = s.engine.Source(ctx, spec); err != nil {
				return nil, err
			}
		}
	} else {
		// A stateless URL: every parameter inline. Seen before, its source
		// is found by the raw query without parsing it again.
		var buf [512]byte
		qk := statelessKey(buf[:0], rc, conn, typ)
		if c = s.engine.LookupQuery(qk); c == nil {
			spec, err := specFromRequest(rc, conn, typ)
			if err != nil {
				return nil, err
			}
			if err := preauthorize(claims, spec); err != nil {
				return nil, err
			}
			if c, err = s.engine.Source(ctx, spec); err != nil {
				return nil, err
			}
			s.engine.RememberQuery(string(qk), c)
		}
	}
	if c.Spec.Conn != b2s(conn) || string(c.Spec.Type) != b2s(typ) {
		return nil, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "the source key does not belong to this connection and type"}
	}
	return c, authorize(claims, grant.APIMaps, c)
}

// statelessKey appends the registry key of a stateless tile request:
// "<conn>/<type>?<raw query>".
func statelessKey(dst []byte, rc *fasthttp.RequestCtx, conn, typ []byte) []byte {
	dst = append(append(append(append(dst, conn...), '/'), typ...), '?')
	return append(dst, rc.URI().QueryString()...)
}

// lookup finds an already compiled source for a tile request, by its key
// or by its stateless query, without parsing or allocating; nil when the
// source must be resolved.
func (s *Server) lookup(rc *fasthttp.RequestCtx, conn, typ []byte) *compiled {
	var c *compiled
	if k := rc.QueryArgs().Peek("k"); len(k) > 0 {
		c = s.engine.Lookup(k)
	} else {
		var buf [512]byte
		c = s.engine.LookupQuery(statelessKey(buf[:0], rc, conn, typ))
	}
	if c == nil || c.Spec.Conn != b2s(conn) || string(c.Spec.Type) != b2s(typ) {
		return nil
	}
	return c
}

// instantiate answers GET|POST /v3/maps/{conn}/{type} (CARTO_API.md §2.1).
func (s *Server) instantiate(rc *fasthttp.RequestCtx, conn, typ []byte) {
	claims, err := s.verify(rc)
	if err != nil {
		s.fail(rc, err)
		return
	}
	spec, err := specFromRequest(rc, conn, typ)
	if err != nil {
		s.fail(rc, err)
		return
	}
	if err := preauthorize(claims, spec); err != nil {
		s.fail(rc, err)
		return
	}
	ctx, cancel := s.clientContext(rc, s.cfg.RequestTimeout.D(), "source")
	defer cancel()
	c, err := s.engine.Source(ctx, spec)
	if err == nil {
		err = authorize(claims, grant.APIMaps, c)
	}
	if err != nil {
		s.fail(rc, err)
		return
	}
	type field struct {
		Name string       `json:"name"`
		Type catalog.Type `json:"type"`
	}
	resp := struct {
		NRows    int64   `json:"nrows"`
		Schema   []field `json:"schema"`
		TileJSON struct {
			URL []string `json:"url"`
		} `json:"tilejson"`
	}{NRows: max(c.EstRows, 0)}
	for _, col := range c.Schema {
		resp.Schema = append(resp.Schema, field{col.Name, col.Type})
	}
	resp.TileJSON.URL = []string{s.sourceURL(c, "/tilejson") + "?k=" + c.Key + "&cache=" + c.GenStr}
	s.cacheHeaders(rc, c, false)
	writeJSON(rc, resp)
}

// sourceURL is the absolute URL of c's endpoint suffix.
func (s *Server) sourceURL(c *compiled, suffix string) string {
	return s.publicURL + "/v3/maps/" + c.Spec.Conn + "/" + string(c.Spec.Type) + suffix
}

// cacheHeaders sets Cache-Control and Surrogate-Key for a response about
// c: long-lived when the URL names the current generation.
func (s *Server) cacheHeaders(rc *fasthttp.RequestCtx, c *compiled, versioned bool) {
	h := &rc.Response.Header
	if versioned {
		h.Set("Cache-Control", s.metrics.ccLong)
	} else {
		h.Set("Cache-Control", s.metrics.ccShort)
	}
	h.Set("Surrogate-Key", c.SurrogateKey)
}

// versioned reports whether the request's cache=… names c's generation.
func versioned(rc *fasthttp.RequestCtx, c *compiled) bool {
	v := rc.QueryArgs().Peek("cache")
	return len(v) > 0 && b2s(v) == c.GenStr
}

// tileJSON answers the TileJSON of a source (CARTO_API.md §2.2).
func (s *Server) tileJSON(rc *fasthttp.RequestCtx, conn, typ []byte) {
	claims, err := s.verify(rc)
	if err != nil {
		s.fail(rc, err)
		return
	}
	ctx, cancel := s.clientContext(rc, s.cfg.RequestTimeout.D(), "source")
	defer cancel()
	c, err := s.resolve(ctx, rc, claims, conn, typ)
	if err != nil {
		s.fail(rc, err)
		return
	}
	if c.Index != nil {
		s.indexTileJSON(rc, c) // spatialindex.go
		return
	}
	b := s.engine.Bounds(ctx, c)
	src := c.Source
	tiles := s.sourceURL(c, "/{z}/{x}/{y}") + "?k=" + src.Key + "&cache=" + c.GenStr + "&formatTiles=mvt"
	if c.GeomKind != "" {
		tiles += "&geomType=" + c.GeomKind
	}
	geom := src.Geom.Shape().String()
	vl := tilejson.VectorLayer{ID: mvt.LayerName, MaxZoom: s.cfg.MaxZoom, Fields: map[string]string{}, GeometryType: geom}
	ls := tilejson.LayerStats{Layer: mvt.LayerName, Count: max(src.EstRows, 0), Geometry: geom, Attributes: []tilejson.Attribute{}}
	for _, col := range src.Schema[1:] {
		t := tileStatsType(col.Type)
		vl.Fields[col.Name] = t
		ls.Attributes = append(ls.Attributes, tilejson.Attribute{Attribute: col.Name, Type: t})
	}
	ls.AttributeCount = len(ls.Attributes)
	resp := tilejson.TileJSON{
		TileJSON:               tilejson.Version,
		Name:                   sourceName(c),
		Version:                "1.0.0",
		Scheme:                 "xyz",
		Tiles:                  []string{tiles},
		MaxZoom:                s.cfg.MaxZoom,
		Bounds:                 [4]float64{b.MinX, b.MinY, b.MaxX, b.MaxY},
		Center:                 tilejson.Center(b.MinX, b.MinY, b.MaxX, b.MaxY, s.cfg.MaxZoom),
		TileResolution:         src.Spec.Resolution,
		VectorLayers:           []tilejson.VectorLayer{vl},
		TileStats:              tilejson.TileStats{LayerCount: 1, Layers: []tilejson.LayerStats{ls}},
		FractionDroppedPerZoom: s.engine.DropFractions(ctx, c, s.cfg.MaxZoom),
	}
	s.cacheHeaders(rc, c, versioned(rc, c))
	writeJSON(rc, resp)
}

// sourceName is a source's TileJSON name: its table, or "query".
func sourceName(c *compiled) string {
	if c.FQN == "" {
		return "query"
	}
	return c.FQN
}

func tileStatsType(t catalog.Type) string {
	switch t {
	case catalog.TypeNumber, catalog.TypeBigint:
		return "Number"
	case catalog.TypeBoolean:
		return "Boolean"
	case catalog.TypeTimestamp:
		return "Timestamp"
	}
	return "String"
}

// tile answers GET /v3/maps/{conn}/{type}/{z}/{x}/{y} (CARTO_API.md §2.3).
// A cached tile is served without allocating.
func (s *Server) tile(rc *fasthttp.RequestCtx, conn, typ, zxy []byte) {
	start := time.Now()
	// MapLibre users sometimes add an extension; the API hands out none.
	zxy = bytes.TrimSuffix(bytes.TrimSuffix(zxy, []byte(".mvt")), []byte(".pbf"))
	co, err := tile.ParseBytes(zxy)
	if err != nil {
		s.fail(rc, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "bad tile address: want {z}/{x}/{y} with z <= 24", err: err})
		return
	}
	if f := rc.QueryArgs().Peek("formatTiles"); len(f) > 0 && !bytes.Equal(f, []byte("mvt")) {
		s.fail(rc, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "formatTiles must be mvt"})
		return
	}
	c, err := s.tileSource(rc, conn, typ)
	if err == nil && c.Index != nil {
		err = errIsIndex // spatialindex.go
	}
	if err != nil {
		s.fail(rc, err)
		return
	}
	t, ok := s.engine.Cached(c, co)
	if !ok {
		ctx, cancel := s.clientContext(rc, s.cfg.TileTimeout.D(), "tile")
		t, err = s.engine.Tile(ctx, c, co)
		cancel()
		if err != nil {
			s.fail(rc, err)
			return
		}
	}
	s.writeTile(rc, c, t, versioned(rc, c))
	s.metrics.observeTile(co.Z, ok, start)
}

// tileSource verifies a tile request's token and finds its source,
// authorized; a source already compiled is found without allocating.
func (s *Server) tileSource(rc *fasthttp.RequestCtx, conn, typ []byte) (*compiled, error) {
	claims, err := s.verify(rc)
	if err != nil {
		return nil, err
	}
	if c := s.lookup(rc, conn, typ); c != nil {
		return c, authorize(claims, grant.APIMaps, c)
	}
	ctx, cancel := s.clientContext(rc, s.cfg.RequestTimeout.D(), "tile")
	defer cancel()
	return s.resolve(ctx, rc, claims, conn, typ)
}

// writeTile answers a finished tile: 204 when empty, 304 when the client
// has it, else the bytes in the best encoding the client accepts.
func (s *Server) writeTile(rc *fasthttp.RequestCtx, c *compiled, t *engine.Tile, versioned bool) {
	s.writeTileAs(rc, c, t, versioned, mvtContentType)
}

// writeTileAs is writeTile for content of type ct.
func (s *Server) writeTileAs(rc *fasthttp.RequestCtx, c *compiled, t *engine.Tile, versioned bool, ct string) {
	s.cacheHeaders(rc, c, versioned)
	h := &rc.Response.Header
	h.Set("Vary", "Accept-Encoding")
	if t.Empty() {
		rc.SetStatusCode(fasthttp.StatusNoContent)
		s.metrics.tiles204.Inc()
		return
	}
	if inm := rc.Request.Header.Peek("If-None-Match"); len(inm) > 0 && t.Matches(inm) {
		h.Set("ETag", t.ETag(engine.Gzip))
		rc.SetStatusCode(fasthttp.StatusNotModified)
		s.metrics.tiles304.Inc()
		return
	}
	enc := engine.Negotiate(rc.Request.Header.Peek("Accept-Encoding"))
	body, err := t.Body(enc)
	if err != nil {
		s.fail(rc, err)
		return
	}
	h.SetContentType(ct)
	if enc != engine.Identity {
		h.Set("Content-Encoding", enc.String())
	}
	h.Set("ETag", t.ETag(enc))
	rc.Response.SetBodyRaw(body)
	s.metrics.tiles200.Inc()
}
