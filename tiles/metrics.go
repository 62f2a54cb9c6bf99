package tiles

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
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

	// tileSeconds[cached][z] observes meridian_tiles_tile_seconds for
	// zoom z, served from this node's memory (cached = 1) or not: one
	// observer per zoom the tile parser accepts, resolved here so that
	// the warm path neither allocates nor looks a label up.
	tileSeconds [2][tile.MaxZoom + 1]prometheus.Observer
	// indexSeconds[kind][cached][res] observes
	// meridian_tiles_index_tile_seconds for spatial-index tiles (kind 0
	// h3, 1 quadbin) by the resolution of the tile's cell (a quadbin
	// tile's is its zoom), resolved here likewise.
	indexSeconds [2][2][27]prometheus.Observer

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
	tileSeconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + "tile_seconds",
		Help:    "Time to answer a vector tile (200, 204 or 304), from the request's arrival at the handler to its response, by zoom, and by cache: hit when this node had it in memory, miss when it was rendered here or fetched from a peer.",
		Buckets: tileBuckets}, []string{"zoom", "cache"})
	for z := range m.tileSeconds[0] {
		zs := strconv.Itoa(z)
		m.tileSeconds[0][z] = tileSeconds.WithLabelValues(zs, "miss")
		m.tileSeconds[1][z] = tileSeconds.WithLabelValues(zs, "hit")
	}
	indexSeconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + "index_tile_seconds",
		Help:    "Time to answer a spatial-index (h3, quadbin) tile, from the request's arrival at the handler to its response, by index, by the resolution of the tile's cell (a quadbin tile's is its zoom), and by cache as for tile_seconds.",
		Buckets: tileBuckets}, []string{"index", "res", "cache"})
	for k, kind := range []spatialindex.Kind{spatialindex.H3, spatialindex.Quadbin} {
		for r := 0; r <= kind.MaxRes(); r++ {
			rs := strconv.Itoa(r)
			m.indexSeconds[k][0][r] = indexSeconds.WithLabelValues(string(kind), rs, "miss")
			m.indexSeconds[k][1][r] = indexSeconds.WithLabelValues(string(kind), rs, "hit")
		}
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(tiles, m.errors, m.clientGone, tileSeconds, indexSeconds)
	return m
}

// tileBuckets span a warm tile (tens of microseconds) to a slow render
// (seconds): 50µs × 3^k, up to about 9s.
var tileBuckets = prometheus.ExponentialBuckets(50e-6, 3, 12)

// observeTile records the latency of a tile of zoom z answered after
// starting at start, cached or not. It does not allocate.
func (m *metrics) observeTile(z uint32, cached bool, start time.Time) {
	if z > tile.MaxZoom {
		return
	}
	i := 0
	if cached {
		i = 1
	}
	m.tileSeconds[i][z].Observe(time.Since(start).Seconds())
}

// observeIndexTile records the latency of a spatial-index tile whose
// cell has resolution res. It does not allocate.
func (m *metrics) observeIndexTile(kind spatialindex.Kind, res int, cached bool, start time.Time) {
	k := 0
	if kind == spatialindex.Quadbin {
		k = 1
	}
	if res < 0 || res > kind.MaxRes() {
		return
	}
	i := 0
	if cached {
		i = 1
	}
	m.indexSeconds[k][i][res].Observe(time.Since(start).Seconds())
}
