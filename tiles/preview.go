package tiles

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/static"
	"github.com/meridian-gis/meridian/tiles/internal/engine"
)

// preview answers GET {prefix}/v3/maps/{conn}/preview: a MapLibre GL JS map
// of the source its query names (name=<table>, or q=<SQL> with
// queryParameters, as at instantiation), for a token given as access_token
// (a browser address bar cannot send a header). The page is the same for
// every source and token (static.Preview): its script reads both from the
// URL, then instantiates the source through the maps API as the CARTO
// client does, so the grants are checked there, with the API's own errors
// shown on the page. Here only the token and its maps API are checked.
func (s *Server) preview(rc *fasthttp.RequestCtx, conn []byte) {
	if !rc.IsGet() && !rc.IsHead() {
		rc.Response.Header.Set("Allow", "GET, HEAD")
		s.fail(rc, &apiError{status: http.StatusMethodNotAllowed, code: "METHOD_NOT_ALLOWED", msg: "the preview page answers GET"})
		return
	}
	claims, err := s.verify(rc)
	if err != nil {
		s.fail(rc, err)
		return
	}
	if !claims.HasAPI(grant.APIMaps) {
		s.fail(rc, &apiError{status: http.StatusForbidden, code: "FORBIDDEN", msg: "Unauthorized access: the token does not allow the maps API"})
		return
	}
	if !grant.ValidConnectionName(b2s(conn)) {
		s.fail(rc, &apiError{status: http.StatusNotFound, code: "CONNECTION_NOT_FOUND", msg: "connection not found"})
		return
	}
	page, err := static.Preview()
	if err != nil {
		s.fail(rc, err)
		return
	}
	h := &rc.Response.Header
	// Browsers may keep it but must revalidate; shared caches (the edge)
	// must not store a response to a URL holding a token.
	h.Set("Cache-Control", "private, no-cache")
	h.Set("ETag", page.ETag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Referrer-Policy", "strict-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	// The validator is weak (one for both encodings): compare its opaque part.
	if inm := rc.Request.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, []byte(strings.TrimPrefix(page.ETag, "W/"))) {
		rc.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	h.SetContentType("text/html; charset=utf-8")
	if engine.Accepts(rc.Request.Header.Peek("Accept-Encoding"), engine.Gzip) {
		h.Set("Content-Encoding", "gzip")
		rc.Response.SetBodyRaw(page.Gzip)
		return
	}
	rc.Response.SetBodyRaw(page.Body)
}
