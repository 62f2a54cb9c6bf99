package tiles

import (
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/tile"
)

// BenchmarkWarmTile serves a cached tile through the fasthttp handler:
// token check, source lookup, grant check, cache hit, response headers and
// body. The target is no allocation beyond fasthttp's own response write.
func BenchmarkWarmTile(b *testing.B) {
	e := newEnv(b)
	tmpl := e.tileTemplate(e.instantiate("table", e.all, "name", "admin1", "columns", "name,iso_3166_2"), e.all)
	c := tile.At(-74, 40.7, 4)
	u, _ := url.Parse(expand(tmpl, c.Z, c.X, c.Y))
	h := e.srv.Handler()

	var req fasthttp.Request
	req.SetRequestURI(u.RequestURI())
	req.Header.Set("Authorization", "Bearer "+e.all)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br;q=0")
	req.Header.Set("If-None-Match", `"0123456789abcdef01234567-gz"`)
	var rc fasthttp.RequestCtx
	rc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
	h(&rc) // fill the cache
	if rc.Response.StatusCode() != 200 || rc.Response.Header.ContentEncoding() == nil {
		b.Fatalf("warm-up: %d %s", rc.Response.StatusCode(), rc.Response.Body())
	}
	size := len(rc.Response.Body())
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		rc.Response.Reset()
		h(&rc)
		if rc.Response.StatusCode() != 200 {
			b.Fatalf("status %d", rc.Response.StatusCode())
		}
	}
}

// BenchmarkWarmTileStateless is BenchmarkWarmTile with the stateless URL
// form (every source parameter inline, no k=): the source is found by the
// raw query, without parsing or compiling again.
func BenchmarkWarmTileStateless(b *testing.B) {
	e := newEnv(b)
	c := tile.At(-74, 40.7, 4)
	h := e.srv.Handler()
	var req fasthttp.Request
	req.SetRequestURI(fmt.Sprintf("/api/v3/maps/pg/table/%d/%d/%d?name=public.admin1&columns=name,iso_3166_2&formatTiles=mvt", c.Z, c.X, c.Y))
	req.Header.Set("Authorization", "Bearer "+e.all)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br;q=0")
	var rc fasthttp.RequestCtx
	rc.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
	h(&rc) // compile the source and fill the cache
	if rc.Response.StatusCode() != 200 {
		b.Fatalf("warm-up: %d %s", rc.Response.StatusCode(), rc.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rc.Response.Reset()
		h(&rc)
		if rc.Response.StatusCode() != 200 {
			b.Fatalf("status %d", rc.Response.StatusCode())
		}
	}
}
