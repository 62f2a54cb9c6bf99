package tiles

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// metrics are the server's Prometheus metrics (the tile path has its
// own: package engine). Counters used on the warm
// path are resolved once so that incrementing them does not allocate.
type metrics struct {
	reg         *prometheus.Registry
	once        sync.Once
	httpHandler fasthttp.RequestHandler

	tiles200, tiles204, tiles304 prometheus.Counter
	errors                       *prometheus.CounterVec
	clientGone                   *prometheus.CounterVec

	// Cache-Control values, built once from the config.
	ccLong, ccShort string
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{reg: reg}
	m.ccLong = "max-age=" + strconv.FormatInt(int64(s.cfg.CacheMaxAge.D().Seconds()), 10)
	m.ccShort = "max-age=" + strconv.FormatInt(int64(s.cfg.ShortMaxAge.D().Seconds()), 10)
	const ns = "meridian_tiles_"
	tiles := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "tiles_served_total",
		Help: "Tiles answered, by status."}, []string{"status"})
	m.tiles200, m.tiles204, m.tiles304 = tiles.WithLabelValues("200"), tiles.WithLabelValues("204"), tiles.WithLabelValues("304")
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "errors_total",
		Help: "Requests answered with an error, by status."}, []string{"status"})
	m.clientGone = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "client_gone_total",
		Help: "Requests whose client closed its connection while they waited, by work (tile, sql, source: instantiation and TileJSON): the request stopped waiting, and its query or render was cancelled unless another request waited for it."},
		[]string{"work"})
	if reg == nil {
		return m
	}
	reg.MustRegister(tiles, m.errors, m.clientGone)
	return m
}
