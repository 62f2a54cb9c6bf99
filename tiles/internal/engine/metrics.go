package engine

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus metrics. Counters used on the warm
// path are resolved once so that incrementing them does not allocate.
type metrics struct {
	cacheHit, cacheMiss, fillShared prometheus.Counter
	coarsened, peerRequests         prometheus.Counter
	fillsAbandoned                  prometheus.Counter
	overviewTiles, overviewBuilds   prometheus.Counter
	warmBackends                    prometheus.Counter
	renderSeconds, renderBytes      prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry, e *Engine) *metrics {
	m := &metrics{}
	const ns = "meridian_tiles_"
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "cache_lookups_total",
		Help: "In-process tile cache lookups by result."}, []string{"result"})
	m.cacheHit, m.cacheMiss = cache.WithLabelValues("hit"), cache.WithLabelValues("miss")
	fills := prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "fills_shared_total",
		Help: "Tile requests that joined a fill already running for the same tile."})
	m.fillShared = fills
	m.coarsened = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "tiles_coarsened_total",
		Help: "Tiles rendered at a coarser level of detail to meet the byte budget."})
	m.peerRequests = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "peer_requests_total",
		Help: "Tile requests received from other tiles nodes."})
	m.fillsAbandoned = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "fills_abandoned_total",
		Help: "Tile fills cancelled because every request waiting for them had gone (hung up or timed out)."})
	m.overviewTiles = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "overview_tiles_total",
		Help: "Tiles rendered from an overview (a tile-ready copy of a large table) rather than from the table."})
	m.overviewBuilds = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "overview_builds_total",
		Help: "Overviews this node built."})
	m.warmBackends = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "warm_backends_total",
		Help: "Data connection backends readied for tiles when the node started (WarmUp)."})
	m.renderSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "render_seconds",
		Help: "Time to render one tile in PostGIS.", Buckets: prometheus.ExponentialBuckets(0.002, 2.5, 10)})
	m.renderBytes = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "render_bytes",
		Help: "Gzipped size of rendered tiles.", Buckets: prometheus.ExponentialBuckets(256, 4, 8)})
	if reg == nil {
		return m
	}
	reg.MustRegister(cache, fills, m.coarsened, m.peerRequests, m.renderSeconds, m.renderBytes,
		m.fillsAbandoned, m.overviewTiles, m.overviewBuilds, m.warmBackends)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_entries", Help: "Tiles in the in-process cache."},
			func() float64 { return float64(e.cache.Stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "cache_bytes", Help: "Bytes in the in-process cache."},
			func() float64 { return float64(e.cache.Stats().Bytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: ns + "cache_evictions_total", Help: "In-process cache evictions."},
			func() float64 { return float64(e.cache.Stats().Evictions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "sources", Help: "Compiled sources in memory."},
			func() float64 { return float64(e.sources.len()) }),
	)
	if e.group != nil {
		st := &e.group.Stats
		for name, v := range map[string]func() int64{
			"gets": st.Gets.Get, "cache_hits": st.CacheHits.Get, "peer_loads": st.PeerLoads.Get,
			"peer_errors": st.PeerErrors.Get, "loads": st.Loads.Get, "loads_deduped": st.LoadsDeduped.Get,
			"local_loads": st.LocalLoads.Get, "local_load_errors": st.LocalLoadErrs.Get, "server_requests": st.ServerRequests.Get,
		} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: ns + "groupcache_" + name + "_total", Help: "groupcache " + name + " of the tile group."},
				func() float64 { return float64(v()) }))
		}
	}
	return m
}
