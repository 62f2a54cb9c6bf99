// Package engine is the tile path of the tiles node: it turns a source
// spec into a compiled Source and a tile coordinate into a finished Tile.
// It owns everything between the HTTP handler and PostGIS: the registry
// of compiled sources, their generations (catalog fingerprints and
// invalidation stamps), the overview hold, the in-process tile cache, the
// shared fills and the groupcache peers. The fasthttp server (package
// tiles) keeps routing, authentication, CORS, error mapping and headers.
//
// The surface is small:
//
//	e.Source(ctx, spec)          compile (once per spec) and register a source
//	e.Lookup(k) / LookupQuery(k)  find a registered source without allocating
//	e.Cached(src, coord)          a cached tile, without allocating
//	e.Tile(ctx, src, coord)       a tile: cache, shared fill, peers, render
//	e.Invalidate(ctx, inv, at)    move generations after a data change
//	e.PeerHandler()               serve the other nodes' groupcache requests
//	e.Run(ctx)                    background work (catalog refresh, overviews, peers)
//
// Footguns avoided: no value the code needs rides in a context (the
// groupcache key is self-contained: it carries the source key, so the
// owner node rebuilds the source from the key alone); groupcache loads
// run under the first caller's context, so a fill that joined a cancelled
// load loads again; fills run detached from requests and stop only when
// no request waits for them (package flight).
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang/groupcache"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/flight"
	"github.com/meridian-gis/meridian/tiles/internal/overview"
	"github.com/meridian-gis/meridian/tiles/internal/peercache"
	"github.com/meridian-gis/meridian/tiles/internal/source"
	"github.com/meridian-gis/meridian/tiles/internal/tilecache"
)

// EngineConfig configures an Engine. The tiles server fills it from its
// own Config; zero fields take the defaults given.
type EngineConfig struct {
	// TileTimeout bounds one tile fill (all levels of detail) without
	// peers. Default: 30s.
	TileTimeout time.Duration
	// RequestTimeout bounds compiling a source (catalog lookups, query
	// description) and computing its extent. Default: 30s.
	RequestTimeout time.Duration
	// TileBudget is the largest gzipped tile before a coarser level of
	// detail is rendered. Zero: render.Render's default.
	TileBudget int
	// MaxLOD is how many levels coarser a tile may get to meet
	// TileBudget. Zero: render.Render's default.
	MaxLOD int
	// MaxPolygonFeatures and MaxLineFeatures cap features per tile at
	// tileResolution 0.5. Zero: package source's defaults.
	MaxPolygonFeatures, MaxLineFeatures int
	// CacheBytes bounds the in-process cache of finished tiles.
	// Default: 256 MiB.
	CacheBytes int64
	// MaxSources bounds the compiled sources kept. Default: 10000.
	MaxSources int
	// CatalogRefresh is how often the catalogs in use are reloaded.
	// Default: 1m.
	CatalogRefresh time.Duration
	// Overviews configures overviews of large tables; nil turns them off.
	Overviews *overview.Config
	// Peers configures the groupcache peers; nil: a single node.
	Peers *PeersConfig
}

// PeersConfig configures tile sharing between nodes.
type PeersConfig struct {
	// Self is this node's peer URL as the others reach it. Required.
	Self string
	// List are the static peer URLs (Self may be among them).
	List []string
	// DNS, when set, is a name resolved every DNSRefresh into more peers
	// (on Addr's port).
	DNS        string
	DNSRefresh time.Duration
	// Addr is where the peer server listens (for the port of DNS peers).
	Addr string
	// Token authenticates peers to each other.
	Token string
	// CacheBytes bounds the groupcache of this node.
	CacheBytes int64
	// FillTimeout bounds one fill through the owner node.
	FillTimeout time.Duration
}

func (c *EngineConfig) setDefaults() {
	if c.TileTimeout <= 0 {
		c.TileTimeout = 30 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = 256 << 20
	}
	if c.MaxSources <= 0 {
		c.MaxSources = 10000
	}
	if c.CatalogRefresh <= 0 {
		c.CatalogRefresh = time.Minute
	}
	if c.Peers != nil && c.Peers.FillTimeout <= 0 {
		c.Peers.FillTimeout = c.TileTimeout
	}
	if c.Peers != nil && c.Peers.DNSRefresh <= 0 {
		c.Peers.DNSRefresh = 30 * time.Second
	}
}

// Deps are the engine's collaborators.
type Deps struct {
	// Log receives the engine's logs. Required.
	Log *slog.Logger
	// Pool returns the pgx pool of a data connection. Required.
	Pool func(ctx context.Context, conn string) (*pgxpool.Pool, error)
	// Metrics is where the engine registers its metrics. Optional.
	Metrics *prometheus.Registry
}

// Engine is the tile path of one tiles node.
type Engine struct {
	cfg  EngineConfig
	log  *slog.Logger
	pool func(ctx context.Context, conn string) (*pgxpool.Pool, error)

	catalogs *catalog.Store
	env      source.Env
	// overviews finds and builds the overviews of large tables; nil when
	// they are off.
	overviews *overview.Manager
	sources   *registry
	gens      *generations
	cache     *tilecache.Cache[tileKey, *Tile]
	fills     flight.Group[tileKey, *Tile]
	compiles  flight.Group[string, *Source]
	metrics   *metrics

	peers *peercache.Pool
	group *groupcache.Group

	base context.Context // lifetime of the engine; detached work derives from it
	stop context.CancelFunc

	mu           sync.Mutex
	fingerprints map[string]uint64    // last seen catalog fingerprint per connection
	ovHold       map[string]time.Time // per connection: tiles render from tables until then
	warmed       map[*pgxpool.Pool]bool
}

// New builds an Engine. Close releases it.
func New(cfg EngineConfig, deps Deps) (*Engine, error) {
	cfg.setDefaults()
	switch {
	case deps.Log == nil:
		return nil, errors.New("engine: Deps.Log is required")
	case deps.Pool == nil:
		return nil, errors.New("engine: Deps.Pool is required")
	case cfg.Peers != nil && cfg.Peers.Self == "":
		return nil, errors.New("engine: Peers.Self is required with peers")
	}
	e := &Engine{
		cfg:          cfg,
		log:          deps.Log,
		pool:         deps.Pool,
		sources:      newRegistry(cfg.MaxSources),
		gens:         newGenerations(),
		cache:        tilecache.New[tileKey, *Tile](cfg.CacheBytes),
		fingerprints: map[string]uint64{},
		ovHold:       map[string]time.Time{},
	}
	e.base, e.stop = context.WithCancel(context.Background())
	e.catalogs = catalog.NewStore(catalog.StoreConfig{},
		func(ctx context.Context, conn string) (catalog.Querier, error) { return e.pool(ctx, conn) })
	e.env = source.Env{
		Catalogs: e.catalogs,
		Pool:     e.pool,
		Limits: source.Limits{
			MaxPolygonFeatures: cfg.MaxPolygonFeatures,
			MaxLineFeatures:    cfg.MaxLineFeatures,
			QueryTimeout:       cfg.RequestTimeout,
		},
	}
	if cfg.Overviews != nil {
		e.overviews = overview.NewManager(*cfg.Overviews, e.pool, e.log)
	}
	if p := cfg.Peers; p != nil {
		e.peers = peercache.New(peercache.Options{Self: p.Self, Token: p.Token})
		e.peers.Set(p.List...)
		var b [6]byte
		rand.Read(b[:])
		e.group = peercache.NewGroup("mvt-"+hex.EncodeToString(b[:]), p.CacheBytes, groupcache.GetterFunc(e.groupFill), e.peers)
	}
	e.metrics = newMetrics(deps.Metrics, e)
	if e.overviews != nil {
		e.overviews.OnBuilt = func(overview.Table, time.Duration) { e.metrics.overviewBuilds.Inc() }
	}
	return e, nil
}

// Close stops the engine's detached work (fills, holds). Run returns
// when its context ends; Close may come before or after.
func (e *Engine) Close() { e.stop() }

// Run does the engine's background work until ctx ends: catalog
// refreshes, overview builds and peer discovery.
func (e *Engine) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.base, cancel)()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.cfg.CatalogRefresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				e.refreshCatalogs(ctx)
			}
		}
	}()
	if e.overviews != nil {
		wg.Add(1)
		go func() { defer wg.Done(); e.overviews.Run(ctx) }()
	}
	if e.peers != nil && e.cfg.Peers.DNS != "" {
		wg.Add(1)
		go func() { defer wg.Done(); e.discoverPeers(ctx) }()
	}
	wg.Wait()
}

// Catalog returns the catalog of conn, loading it on first use.
func (e *Engine) Catalog(ctx context.Context, conn string) (*catalog.Catalog, error) {
	return e.catalogs.Get(ctx, conn)
}

// CheckConns pings the data connections in use (a readiness check).
func (e *Engine) CheckConns(ctx context.Context) error {
	var errs []error
	for _, conn := range e.catalogs.Conns() {
		pool, err := e.pool(ctx, conn)
		if err == nil {
			err = pool.Ping(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", conn, err))
		}
	}
	return errors.Join(errs...)
}

// HasPeers reports whether tiles are shared with other nodes.
func (e *Engine) HasPeers() bool { return e.peers != nil }

// PeerOwner returns the peer URL owning the tile co of src (tests).
func (e *Engine) PeerOwner(src *Source, co tile.Coord) string {
	return e.peers.Owner(groupKey(src, tileKey{id: src.ID, gen: src.Gen, c: co}))
}

func (e *Engine) discoverPeers(ctx context.Context) {
	_, port, _ := net.SplitHostPort(e.cfg.Peers.Addr)
	scheme := "http"
	if strings.HasPrefix(e.cfg.Peers.Self, "https://") {
		scheme = "https"
	}
	t := time.NewTicker(e.cfg.Peers.DNSRefresh)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		peers, err := peercache.Resolve(rctx, nil, scheme, e.cfg.Peers.DNS, port)
		cancel()
		if err != nil {
			e.log.Warn("resolving tiles peers", "dns", e.cfg.Peers.DNS, "err", err)
		} else {
			e.peers.Set(append(peers, e.cfg.Peers.List...)...)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshCatalogs reloads the catalogs in use and drops the compiled
// sources of connections whose data or schema changed.
func (e *Engine) refreshCatalogs(ctx context.Context) {
	for _, conn := range e.catalogs.Conns() {
		cat, err := e.catalogs.Refresh(ctx, conn)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("refreshing catalog", "conn", conn, "err", err)
			}
			continue
		}
		e.noteCatalog(cat)
	}
}

// noteCatalog drops the compiled sources of cat's connection when its
// fingerprint differs from the last one seen.
func (e *Engine) noteCatalog(cat *catalog.Catalog) {
	e.mu.Lock()
	old, seen := e.fingerprints[cat.Conn]
	e.fingerprints[cat.Conn] = cat.Fingerprint
	e.mu.Unlock()
	if seen && old != cat.Fingerprint {
		e.sources.dropConn(cat.Conn)
	}
}

// PeerHandler serves the other nodes' groupcache requests; nil without
// peers. The key names the source (see groupKey): no other state is
// needed to serve it.
func (e *Engine) PeerHandler() http.Handler {
	if e.peers == nil {
		return nil
	}
	return e.peers.Handler(func(ctx context.Context, key string) ([]byte, error) {
		src, tk, err := e.parseGroupKey(ctx, key)
		if err != nil {
			return nil, err
		}
		e.metrics.peerRequests.Inc()
		t, err := e.fetch(ctx, src, tk)
		if err != nil {
			return nil, err
		}
		return t.marshal(), nil
	})
}

// MaxPeerRequestBytes bounds the request head of a peer request (the key
// carries a source key).
const MaxPeerRequestBytes = 3*source.MaxKeyLen + 8<<10

// FillsInFlight is the number of tile fills running (tests, metrics).
func (e *Engine) FillsInFlight() int { return e.fills.InFlight() }

// PurgeCache empties the in-process tile cache (tests, benchmarks of
// renders).
func (e *Engine) PurgeCache() { e.cache.DeleteFunc(func(tileKey) bool { return true }) }
