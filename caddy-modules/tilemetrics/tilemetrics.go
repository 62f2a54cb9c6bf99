// Package tilemetrics is the Caddy handler "meridian_tile_metrics": it
// counts and times the tile requests that pass through it by zoom level and
// by how the edge cache answered (the Cache-Status header set by
// meridian_cache), for the operators' dashboard (deploy/grafana). A request
// whose path does not end in z/x/y passes untouched and uncounted.
package tilemetrics

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/internal/tile"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// MaxZoomLabel caps the zoom label: deeper tiles are counted as this zoom,
// so a client cannot grow the label set.
const MaxZoomLabel = 24

// Handler observes tile requests.
type Handler struct {
	seconds *prometheus.HistogramVec
	total   *prometheus.CounterVec
	zooms   [MaxZoomLabel + 1]string
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.meridian_tile_metrics", New: func() caddy.Module { return new(Handler) }}
}

// Provision registers the metrics (once per Caddy metrics registry).
func (h *Handler) Provision(ctx caddy.Context) error {
	for i := range h.zooms {
		h.zooms[i] = strconv.Itoa(i)
	}
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "meridian", Subsystem: "edge", Name: "tile_seconds",
		Help:    "Time the edge took to answer a tile request, by zoom and cache result (hit, stale, miss, none).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"zoom", "cache"})
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "meridian", Subsystem: "edge", Name: "tiles_total",
		Help: "Tile requests answered by the edge, by zoom, cache result and status class (2xx, 3xx, 4xx, 5xx).",
	}, []string{"zoom", "cache", "code"})
	reg := ctx.GetMetricsRegistry()
	var err error
	if h.seconds, err = register(reg, seconds); err != nil {
		return err
	}
	h.total, err = register(reg, total)
	return err
}

func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return c, err
		}
		return are.ExistingCollector.(T), nil
	}
	return c, nil
}

// ServeHTTP times the request when its path ends in a tile address.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	z, ok := zoom(r.URL.Path)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	start := time.Now()
	rec := &statusWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(rec, r)
	status := rec.status
	if err != nil {
		status = http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			status = he.StatusCode
		}
	}
	if status == 0 {
		status = http.StatusOK
	}
	zl := h.zooms[min(z, MaxZoomLabel)]
	cache := CacheResult(w.Header().Get("Cache-Status"))
	h.seconds.WithLabelValues(zl, cache).Observe(time.Since(start).Seconds())
	h.total.WithLabelValues(zl, cache, strconv.Itoa(status/100)+"xx").Inc()
	return err
}

// zoom returns z when path ends in /z/x/y (an optional extension on y).
func zoom(path string) (int, bool) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return 0, false
	}
	if dot := strings.IndexByte(path[i:], '.'); dot > 0 {
		path = path[:i+dot]
	}
	j := strings.LastIndexByte(path[:i], '/')
	if j < 0 {
		return 0, false
	}
	k := strings.LastIndexByte(path[:j], '/')
	if k < 0 {
		return 0, false
	}
	c, err := tile.Parse(path[k+1:])
	if err != nil {
		return 0, false
	}
	return int(c.Z), true
}

// CacheResult names how meridian_cache answered from its Cache-Status
// value ("meridian; hit", "meridian; fwd=miss", ...): hit, stale, miss, or
// none when the cache did not look the request up.
func CacheResult(cs string) string {
	switch {
	case cs == "":
		return "none"
	case strings.Contains(cs, "; hit"):
		if strings.Contains(cs, "stale") {
			return "stale"
		}
		return "hit"
	case strings.Contains(cs, "fwd="):
		return "miss"
	}
	return "none"
}

// statusWriter remembers the status code written.
type statusWriter struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriterWrapper.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.Write(b)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
