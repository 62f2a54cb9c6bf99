package tiles

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/tiles/internal/engine"
	"github.com/meridian-gis/meridian/tiles/internal/overview"
)

// Config configures the tiles engine. Zero fields take the defaults given;
// every field can also be set from the environment variable in its env tag.
type Config struct {
	// Addr is where the engine listens (maps, SQL, /healthz, /readyz,
	// /metrics). Default: 127.0.0.1:8081.
	Addr string `json:"addr,omitempty" env:"MERIDIAN_TILES_ADDR"`
	// PathPrefix is the path the CARTO API is mounted under, matching the
	// public apiBaseUrl (https://host/api). Default: /api.
	PathPrefix string `json:"path_prefix,omitempty" env:"MERIDIAN_TILES_PATH_PREFIX"`
	// TileTimeout bounds rendering one tile (all levels of detail).
	// Default: 30s.
	TileTimeout config.Duration `json:"tile_timeout,omitempty" env:"MERIDIAN_TILES_TILE_TIMEOUT"`
	// RequestTimeout bounds instantiating a source and building its
	// TileJSON. Default: 30s.
	RequestTimeout config.Duration `json:"request_timeout,omitempty" env:"MERIDIAN_TILES_REQUEST_TIMEOUT"`
	// SQLTimeout is the statement_timeout of SQL API queries (CARTO
	// allows one minute). Default: 1m.
	SQLTimeout config.Duration `json:"sql_timeout,omitempty" env:"MERIDIAN_TILES_SQL_TIMEOUT"`
	// SQLMaxRows caps the rows of a SQL API answer in the default JSON
	// format, which is built in memory; the streamed formats (ndjson, csv,
	// geojson) are not capped. Default: 200000 (CARTO's limit).
	SQLMaxRows int `json:"sql_max_rows,omitempty" env:"MERIDIAN_TILES_SQL_MAX_ROWS"`
	// TileBudget is the largest gzipped tile before the engine renders a
	// coarser level of detail. Default: 512 KiB.
	TileBudget int `json:"tile_budget,omitempty" env:"MERIDIAN_TILES_TILE_BUDGET"`
	// MaxLOD is how many levels coarser than full detail a tile may get
	// to meet TileBudget. Default: 4.
	MaxLOD int `json:"max_lod,omitempty" env:"MERIDIAN_TILES_MAX_LOD"`
	// MaxPolygonFeatures caps polygons per tile at tileResolution 0.5
	// (CARTO's default; other resolutions scale it). Default: 5000.
	MaxPolygonFeatures int `json:"max_polygon_features,omitempty" env:"MERIDIAN_TILES_MAX_POLYGON_FEATURES"`
	// MaxLineFeatures caps lines per tile likewise. Default: 10000.
	MaxLineFeatures int `json:"max_line_features,omitempty" env:"MERIDIAN_TILES_MAX_LINE_FEATURES"`
	// MaxZoom is the maxzoom announced in TileJSON (clients overzoom
	// beyond it). Default: 20.
	MaxZoom int `json:"max_zoom,omitempty" env:"MERIDIAN_TILES_MAX_ZOOM"`
	// CacheBytes bounds the in-process cache of finished tiles. Default:
	// 256 MiB.
	CacheBytes int64 `json:"cache_bytes,omitempty" env:"MERIDIAN_TILES_CACHE_BYTES"`
	// MaxSources bounds the compiled sources kept in memory. Default: 10000.
	MaxSources int `json:"max_sources,omitempty" env:"MERIDIAN_TILES_MAX_SOURCES"`
	// CacheMaxAge is the Cache-Control max-age of versioned responses
	// (URLs carrying the current cache=…); the edge purges them by tag
	// when data changes. Default: 24h.
	CacheMaxAge config.Duration `json:"cache_max_age,omitempty" env:"MERIDIAN_TILES_CACHE_MAX_AGE"`
	// ShortMaxAge is the max-age of unversioned responses (instantiation,
	// tiles without cache= or with an old one). Default: 1m.
	ShortMaxAge config.Duration `json:"short_max_age,omitempty" env:"MERIDIAN_TILES_SHORT_MAX_AGE"`
	// CatalogRefresh is how often the catalogs of the data connections
	// in use are reloaded (new tables, changed data fingerprints).
	// Default: 1m.
	CatalogRefresh config.Duration `json:"catalog_refresh,omitempty" env:"MERIDIAN_TILES_CATALOG_REFRESH"`
	// CORSOrigins lists the origins allowed by CORS; "*" allows any.
	// Default: ["*"].
	CORSOrigins []string `json:"cors_origins,omitempty" env:"MERIDIAN_TILES_CORS_ORIGINS"`
	// MaxBodyBytes bounds request bodies (POSTed SQL and parameters).
	// Default: 8 MiB.
	MaxBodyBytes int `json:"max_body_bytes,omitempty" env:"MERIDIAN_TILES_MAX_BODY_BYTES"`
	// ShutdownTimeout bounds the graceful shutdown. Default: 20s.
	ShutdownTimeout config.Duration `json:"shutdown_timeout,omitempty" env:"MERIDIAN_TILES_SHUTDOWN_TIMEOUT"`
	// DataMaxConns caps this node's pool to each data connection, unless
	// the connection's own max_conns option says otherwise. Tiles are
	// CPU work in PostgreSQL, and every backend pays for loading PostGIS
	// and preparing the tile statements before its first tile: more
	// backends than the cores can run add that cost and no throughput.
	// Default: twice GOMAXPROCS, at least 4.
	DataMaxConns int32 `json:"data_max_conns,omitempty" env:"MERIDIAN_TILES_DATA_MAX_CONNS"`
	// WarmTimeout bounds the start-up warm-up of the data connections
	// (Deps.WarmConns): /readyz reports the node ready when the warm-up
	// is done or after this long, whichever comes first. Default: 15s.
	WarmTimeout config.Duration `json:"warm_timeout,omitempty" env:"MERIDIAN_TILES_WARM_TIMEOUT"`
	// Peers configures sharing tiles between tiles nodes.
	Peers PeersConfig `json:"peers"`
	// Overviews configures the tile-ready copies of large line and
	// polygon tables (see tiles/internal/overview).
	Overviews OverviewsConfig `json:"overviews"`
}

// OverviewsConfig configures overviews: copies of a large line or polygon
// table, simplified per zoom and cut into small pieces, that the engine
// builds in the data database (schema meridian_overviews) the first time
// the table is rendered, and renders tiles from once built. A copy serves
// only the state of the table it was made from; after a change, tiles
// render from the table until the new copy is built.
type OverviewsConfig struct {
	// Off turns overviews off: every tile renders from its table.
	Off bool `json:"off,omitempty" env:"MERIDIAN_TILES_OVERVIEWS_OFF"`
	// MinBytes is the smallest table (with its TOAST data) that gets an
	// overview. Default: 8 MiB.
	MinBytes int64 `json:"min_bytes,omitempty" env:"MERIDIAN_TILES_OVERVIEWS_MIN_BYTES"`
	// Bands is the number of simplified zoom levels; tiles deeper than
	// that read full-detail pieces. Default: 10.
	Bands int `json:"bands,omitempty" env:"MERIDIAN_TILES_OVERVIEWS_BANDS"`
}

// PeersConfig configures groupcache between tiles nodes. With no peers
// (neither List nor DNS) each node renders and caches on its own.
type PeersConfig struct {
	// Addr is where this node serves its peers; it must be reachable by
	// them and by no one else. Required when peers are configured.
	Addr string `json:"addr,omitempty" env:"MERIDIAN_TILES_PEER_ADDR"`
	// Self is this node's peer base URL as the others reach it. Default:
	// http://<Addr>.
	Self string `json:"self,omitempty" env:"MERIDIAN_TILES_PEER_SELF"`
	// List is a static list of peer base URLs (http://10.0.0.5:8091).
	List []string `json:"list,omitempty" env:"MERIDIAN_TILES_PEERS"`
	// DNS is a host name whose addresses are the peers (a Kubernetes
	// headless service), each at the port of Addr, re-resolved every
	// DNSRefresh.
	DNS string `json:"dns,omitempty" env:"MERIDIAN_TILES_PEER_DNS"`
	// DNSRefresh is how often DNS is resolved. Default: 10s.
	DNSRefresh config.Duration `json:"dns_refresh,omitempty" env:"MERIDIAN_TILES_PEER_DNS_REFRESH"`
	// Token is a shared secret that peers must present. Optional.
	Token string `json:"token,omitempty" env:"MERIDIAN_TILES_PEER_TOKEN"`
	// CacheBytes bounds the groupcache group. Default: 256 MiB.
	CacheBytes int64 `json:"cache_bytes,omitempty" env:"MERIDIAN_TILES_PEER_CACHE_BYTES"`
	// FillTimeout bounds one shared fill, detached from the request that
	// started it. Default: 30s.
	FillTimeout config.Duration `json:"fill_timeout,omitempty" env:"MERIDIAN_TILES_PEER_FILL_TIMEOUT"`
}

// Enabled reports whether peers are configured.
func (p PeersConfig) Enabled() bool { return len(p.List) > 0 || p.DNS != "" }

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	setDefault(&c.Addr, "127.0.0.1:8081")
	setDefault(&c.PathPrefix, "/api")
	setDefault(&c.TileTimeout, config.Duration(30*time.Second))
	setDefault(&c.RequestTimeout, config.Duration(30*time.Second))
	setDefault(&c.SQLTimeout, config.Duration(time.Minute))
	setDefault(&c.SQLMaxRows, 200_000)
	setDefault(&c.TileBudget, 512<<10)
	setDefault(&c.MaxLOD, 4)
	setDefault(&c.MaxPolygonFeatures, 5000)
	setDefault(&c.MaxLineFeatures, 10000)
	setDefault(&c.MaxZoom, 20)
	setDefault(&c.CacheBytes, 256<<20)
	setDefault(&c.MaxSources, 10000)
	setDefault(&c.CacheMaxAge, config.Duration(24*time.Hour))
	setDefault(&c.ShortMaxAge, config.Duration(time.Minute))
	setDefault(&c.CatalogRefresh, config.Duration(time.Minute))
	if len(c.CORSOrigins) == 0 {
		c.CORSOrigins = []string{"*"}
	}
	setDefault(&c.MaxBodyBytes, 8<<20)
	setDefault(&c.ShutdownTimeout, config.Duration(20*time.Second))
	setDefault(&c.WarmTimeout, config.Duration(15*time.Second))
	setDefault(&c.DataMaxConns, int32(max(4, 2*runtime.GOMAXPROCS(0))))
	setDefault(&c.Peers.DNSRefresh, config.Duration(10*time.Second))
	setDefault(&c.Peers.CacheBytes, 256<<20)
	setDefault(&c.Peers.FillTimeout, config.Duration(30*time.Second))
	setDefault(&c.Overviews.MinBytes, 8<<20)
	setDefault(&c.Overviews.Bands, 10)
	if c.Peers.Self == "" && c.Peers.Addr != "" {
		c.Peers.Self = "http://" + c.Peers.Addr
	}
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Validate reports every problem with c (after SetDefaults), each naming
// its environment variable.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("MERIDIAN_TILES_ADDR %q: want host:port", c.Addr)
	}
	if !strings.HasPrefix(c.PathPrefix, "/") || strings.HasSuffix(c.PathPrefix, "/") && c.PathPrefix != "/" {
		bad("MERIDIAN_TILES_PATH_PREFIX %q: want a path such as /api", c.PathPrefix)
	}
	for name, d := range map[string]config.Duration{
		"MERIDIAN_TILES_TILE_TIMEOUT": c.TileTimeout, "MERIDIAN_TILES_REQUEST_TIMEOUT": c.RequestTimeout,
		"MERIDIAN_TILES_SQL_TIMEOUT": c.SQLTimeout, "MERIDIAN_TILES_CACHE_MAX_AGE": c.CacheMaxAge,
		"MERIDIAN_TILES_SHORT_MAX_AGE": c.ShortMaxAge, "MERIDIAN_TILES_CATALOG_REFRESH": c.CatalogRefresh,
		"MERIDIAN_TILES_SHUTDOWN_TIMEOUT": c.ShutdownTimeout, "MERIDIAN_TILES_WARM_TIMEOUT": c.WarmTimeout,
	} {
		if d < 0 {
			bad("%s must not be negative", name)
		}
	}
	if c.TileBudget < 4096 {
		bad("MERIDIAN_TILES_TILE_BUDGET %d: want at least 4096 bytes", c.TileBudget)
	}
	if c.MaxLOD < 0 || c.MaxLOD > 10 {
		bad("MERIDIAN_TILES_MAX_LOD %d: want 0..10", c.MaxLOD)
	}
	if c.MaxZoom < 0 || c.MaxZoom > 24 {
		bad("MERIDIAN_TILES_MAX_ZOOM %d: want 0..24", c.MaxZoom)
	}
	if c.SQLMaxRows < 1 || c.MaxPolygonFeatures < 1 || c.MaxLineFeatures < 1 || c.MaxSources < 1 {
		bad("MERIDIAN_TILES_SQL_MAX_ROWS, _MAX_POLYGON_FEATURES, _MAX_LINE_FEATURES and _MAX_SOURCES must be positive")
	}
	if c.Overviews.Bands < 1 || c.Overviews.Bands > 20 || c.Overviews.MinBytes < 0 {
		bad("MERIDIAN_TILES_OVERVIEWS_BANDS %d: want 1..20 (and MERIDIAN_TILES_OVERVIEWS_MIN_BYTES not negative)", c.Overviews.Bands)
	}
	if c.DataMaxConns < 1 || c.DataMaxConns > 1000 {
		bad("MERIDIAN_TILES_DATA_MAX_CONNS %d: want 1..1000", c.DataMaxConns)
	}
	if c.CacheBytes < 1<<20 {
		bad("MERIDIAN_TILES_CACHE_BYTES %d: want at least 1 MiB", c.CacheBytes)
	}
	if c.Peers.Enabled() {
		if _, _, err := net.SplitHostPort(c.Peers.Addr); err != nil {
			bad("MERIDIAN_TILES_PEER_ADDR %q: want host:port (required with peers)", c.Peers.Addr)
		}
		if u, err := url.Parse(c.Peers.Self); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("MERIDIAN_TILES_PEER_SELF %q: want this node's peer URL, e.g. http://10.0.0.5:8091", c.Peers.Self)
		}
		for _, p := range c.Peers.List {
			if u, err := url.Parse(p); err != nil || u.Host == "" {
				bad("MERIDIAN_TILES_PEERS: %q is not a URL", p)
			}
		}
	}
	return errors.Join(errs...)
}

// engineConfig is the part of c that the tile path (package engine) uses.
func (c *Config) engineConfig() engine.EngineConfig {
	ec := engine.EngineConfig{
		TileTimeout:        c.TileTimeout.D(),
		RequestTimeout:     c.RequestTimeout.D(),
		TileBudget:         c.TileBudget,
		MaxLOD:             c.MaxLOD,
		MaxPolygonFeatures: c.MaxPolygonFeatures,
		MaxLineFeatures:    c.MaxLineFeatures,
		CacheBytes:         c.CacheBytes,
		MaxSources:         c.MaxSources,
		CatalogRefresh:     c.CatalogRefresh.D(),
	}
	if !c.Overviews.Off {
		ec.Overviews = &overview.Config{MinBytes: c.Overviews.MinBytes, Bands: c.Overviews.Bands}
	}
	if p := c.Peers; p.Enabled() {
		ec.Peers = &engine.PeersConfig{
			Self: p.Self, List: p.List, DNS: p.DNS, DNSRefresh: p.DNSRefresh.D(), Addr: p.Addr,
			Token: p.Token, CacheBytes: p.CacheBytes, FillTimeout: p.FillTimeout.D(),
		}
	}
	return ec
}
