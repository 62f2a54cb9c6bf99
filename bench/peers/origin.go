package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/cachetag"
)

// OriginConfig configures an Origin.
type OriginConfig struct {
	// Body is the object served for every GET and HEAD. Required.
	Body []byte
	// ContentType of the object. Default: application/vnd.mapbox-vector-tile.
	ContentType string
	// CacheControl is sent with every response. Default:
	// "public, max-age=3600", which Varnish's built-in VCL, nginx
	// proxy_cache and meridian_cache all store.
	CacheControl string
	// Tags returns the cache tags of a request path; they are sent
	// space-separated in the Surrogate-Key header (cachetag.Header), which
	// meridian_cache indexes its entries by. It is called concurrently.
	// Nil, or an empty result, sends no header. Optional.
	Tags func(path string) []string
}

// Origin is an in-process fasthttp server on 127.0.0.1 that serves one
// object at every path, tagged by OriginConfig.Tags when set, and counts
// the requests it gets, so a scenario can tell whether a cache in front of
// it answered on its own.
type Origin struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// URL is "http://127.0.0.1:port".
	URL string

	requests atomic.Uint64
	srv      *fasthttp.Server
	done     chan error
}

// StartOrigin starts an Origin serving cfg.Body.
func StartOrigin(cfg OriginConfig) (*Origin, error) {
	if len(cfg.Body) == 0 {
		return nil, errors.New("starting origin: empty body")
	}
	if cfg.ContentType == "" {
		cfg.ContentType = "application/vnd.mapbox-vector-tile"
	}
	if cfg.CacheControl == "" {
		cfg.CacheControl = "public, max-age=3600"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting origin: %w", err)
	}
	o := &Origin{Addr: ln.Addr().String(), done: make(chan error, 1)}
	o.URL = "http://" + o.Addr
	lastModified := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	o.srv = &fasthttp.Server{
		Handler: func(rc *fasthttp.RequestCtx) {
			o.requests.Add(1)
			if !rc.IsGet() && !rc.IsHead() {
				rc.SetStatusCode(fasthttp.StatusMethodNotAllowed)
				return
			}
			rc.SetContentType(cfg.ContentType)
			rc.Response.Header.Set("Cache-Control", cfg.CacheControl)
			rc.Response.Header.Set("Last-Modified", lastModified)
			if cfg.Tags != nil {
				if tags := cfg.Tags(string(rc.Path())); len(tags) > 0 {
					rc.Response.Header.Set(cachetag.Header, cachetag.Join(tags...))
				}
			}
			rc.Response.SetBodyRaw(cfg.Body)
		},
		Name:         "bench-origin",
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  time.Minute,
	}
	go func() { o.done <- o.srv.Serve(ln) }()
	return o, nil
}

// Requests returns the number of requests served so far.
func (o *Origin) Requests() uint64 { return o.requests.Load() }

// Stop shuts the origin down within ctx.
func (o *Origin) Stop(ctx context.Context) error {
	err := o.srv.ShutdownWithContext(ctx)
	return errors.Join(err, <-o.done)
}
