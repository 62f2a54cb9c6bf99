// Package tiles is Meridian's maps and SQL engine: the CARTO 3 Maps API
// (source instantiation, TileJSON, Mapbox Vector Tiles rendered by
// PostGIS) and SQL API on the data connections, served with fasthttp.
//
// Requests under PathPrefix (default /api):
//
//	GET|POST /v3/maps/{conn}/{table|query}            instantiate a source
//	GET|POST /v3/maps/{conn}/{table|query}/tilejson   TileJSON (k=… or inline params)
//	GET      /v3/maps/{conn}/{table|query}/{z}/{x}/{y} tile (k=… or inline params)
//	GET|POST /v3/sql/{conn}/query                     run read-only SQL
//	GET      /v3/maps/{conn}/preview                  a MapLibre map of a source (preview.go)
//
// and /healthz, /readyz, /metrics at the root. Every maps and SQL request
// needs a token (Authorization: Bearer, or access_token=) whose grants
// cover the API and the source; see authorize for the matching rules.
//
// A tile goes through: the in-process cache (a hit does not allocate),
// then one shared fill per key (concurrent requests wait for the same
// work, cancelled only when they have all given up: timed out, or hung
// up — see clientContext), then — with peers —
// the groupcache owner of the key, which renders it at most once across
// nodes. Cache keys carry the source's generation, which changes when its
// data does (catalog fingerprints, invalidation messages), so stale tiles
// are never looked up again.
package tiles

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
	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/obs"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/flight"
	"github.com/meridian-gis/meridian/tiles/internal/hangup"
	"github.com/meridian-gis/meridian/tiles/internal/overview"
	"github.com/meridian-gis/meridian/tiles/internal/peercache"
	"github.com/meridian-gis/meridian/tiles/internal/source"
	"github.com/meridian-gis/meridian/tiles/internal/tilecache"
)

// ConnPools gives the pgx pool of a data connection (*dataconn.Pools).
// Errors wrapping dataconn.ErrNotFound mean the connection does not exist.
type ConnPools interface {
	Pool(ctx context.Context, name string) (*pgxpool.Pool, error)
}

// TokenVerifier verifies API access tokens (*grant.Verifier).
type TokenVerifier interface {
	VerifyBytes(token []byte, now time.Time) (*grant.Claims, error)
}

// Deps are the engine's collaborators, built by the caller.
type Deps struct {
	// Log receives the engine's logs. Required.
	Log *slog.Logger
	// Conns opens the data connections. Required.
	Conns ConnPools
	// Auth verifies tokens. Required.
	Auth TokenVerifier
	// Metrics is where the engine registers its metrics. Optional.
	Metrics *prometheus.Registry
	// PublicURL is the absolute base of the URLs handed out (TileJSON and
	// tile URLs), as clients reach the edge, e.g. http://localhost:8080;
	// PathPrefix is appended. Required.
	PublicURL string
}

// Server is one tiles engine node.
type Server struct {
	cfg       Config
	log       *slog.Logger
	conns     ConnPools
	auth      TokenVerifier
	publicURL string // PublicURL + PathPrefix, no trailing slash
	prefix    string

	catalogs *catalog.Store
	// overviews finds and builds the overviews of large tables; nil when
	// they are off.
	overviews *overview.Manager
	// ovHold: per connection, until when tiles render from tables rather
	// than overviews after an invalidation (see holdOverviews). Under mu.
	ovHold   map[string]time.Time
	env      source.Env
	sources  *registry
	gens     *generations
	cache    *tilecache.Cache[tileKey, *entry]
	fills    flight.Group[tileKey, *entry]
	compiles flight.Group[string, *compiled]
	stats    *dropStats
	metrics  *metrics
	health   *obs.Health
	hangups  hangup.Watcher // clients that leave while their request waits (clientContext)

	peers *peercache.Pool
	group *groupcache.Group

	base    context.Context // lifetime of Run; detached work derives from it
	stop    context.CancelFunc
	handler fasthttp.RequestHandler

	mu           sync.Mutex
	fingerprints map[string]uint64 // last seen catalog fingerprint per connection

	peerLn net.Listener // tests: a listener for the peer server
}

// New builds a Server. cfg gets its defaults and is validated.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Log == nil:
		return nil, errors.New("tiles: Deps.Log is required")
	case deps.Conns == nil:
		return nil, errors.New("tiles: Deps.Conns is required")
	case deps.Auth == nil:
		return nil, errors.New("tiles: Deps.Auth is required")
	case !strings.HasPrefix(deps.PublicURL, "http://") && !strings.HasPrefix(deps.PublicURL, "https://"):
		return nil, fmt.Errorf("tiles: Deps.PublicURL %q must be an absolute http(s) URL", deps.PublicURL)
	}
	prefix := cfg.PathPrefix
	if prefix == "/" {
		prefix = ""
	}
	s := &Server{
		cfg:          cfg,
		log:          deps.Log,
		conns:        deps.Conns,
		auth:         deps.Auth,
		publicURL:    strings.TrimRight(deps.PublicURL, "/") + prefix,
		prefix:       prefix,
		sources:      newRegistry(cfg.MaxSources),
		gens:         newGenerations(),
		cache:        tilecache.New[tileKey, *entry](cfg.CacheBytes),
		stats:        newDropStats(),
		health:       obs.NewHealth(),
		fingerprints: map[string]uint64{},
		ovHold:       map[string]time.Time{},
	}
	s.base, s.stop = context.WithCancel(context.Background())
	s.catalogs = catalog.NewStore(catalog.StoreConfig{},
		func(ctx context.Context, conn string) (catalog.Querier, error) { return s.conns.Pool(ctx, conn) })
	s.env = source.Env{
		Catalogs: s.catalogs,
		Pool:     s.conns.Pool,
		Limits: source.Limits{
			MaxPolygonFeatures: cfg.MaxPolygonFeatures,
			MaxLineFeatures:    cfg.MaxLineFeatures,
			QueryTimeout:       cfg.RequestTimeout.D(),
		},
	}
	s.health.Add("data_connections", s.checkConns)
	if !cfg.Overviews.Off {
		s.overviews = overview.NewManager(overview.Config{MinBytes: cfg.Overviews.MinBytes, Bands: cfg.Overviews.Bands},
			s.conns.Pool, s.log)
	}
	if cfg.Peers.Enabled() {
		s.peers = peercache.New(peercache.Options{Self: cfg.Peers.Self, Token: cfg.Peers.Token})
		s.peers.Set(cfg.Peers.List...)
		var b [6]byte
		rand.Read(b[:])
		s.group = peercache.NewGroup("mvt-"+hex.EncodeToString(b[:]), cfg.Peers.CacheBytes, groupcache.GetterFunc(s.groupFill), s.peers)
	}
	s.metrics = newMetrics(deps.Metrics, s)
	if s.overviews != nil {
		s.overviews.OnBuilt = func(overview.Table, time.Duration) { s.metrics.overviewBuilds.Inc() }
	}
	s.handler = s.handle
	return s, nil
}

// Handler returns the engine's request handler (for tests and embedding).
func (s *Server) Handler() fasthttp.RequestHandler { return s.handler }

// Run serves on cfg.Addr (and the peer address, with peers) until ctx
// ends, then shuts down gracefully: the listeners close, in-flight
// requests complete within ShutdownTimeout, background work stops.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener (tests listen on port 0).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &fasthttp.Server{
		Handler:            s.handler,
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       s.cfg.SQLTimeout.D() + time.Minute, // streamed SQL results
		IdleTimeout:        2 * time.Minute,
		MaxRequestBodySize: s.cfg.MaxBodyBytes,
		// The request line holds k=…, which carries a query source's SQL
		// (deflated): allow long URLs.
		ReadBufferSize:        64 << 10,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{s.log},
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	var peerSrv *http.Server
	if s.peers != nil {
		pln := s.peerLn
		if pln == nil {
			var err error
			if pln, err = net.Listen("tcp", s.cfg.Peers.Addr); err != nil {
				ln.Close()
				return fmt.Errorf("listening for peers on %s: %w", s.cfg.Peers.Addr, err)
			}
		}
		peerSrv = &http.Server{
			Handler:           s.PeerHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    source.MaxKeyLen + 8<<10,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := peerSrv.Serve(pln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving peers: %w", err)
			}
		}()
	}
	bg, stopBG := context.WithCancel(s.base)
	wg.Add(1)
	go func() { defer wg.Done(); s.background(bg) }()
	if s.overviews != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.overviews.Run(bg) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil {
			errc <- fmt.Errorf("serving: %w", err)
		}
	}()
	s.log.Info("tiles engine listening", "addr", ln.Addr().String(), "public_url", s.publicURL, "peers", s.cfg.Peers.Enabled())

	var failed error
	select {
	case <-ctx.Done():
	case failed = <-errc:
	}
	s.health.SetDraining()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.D())
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil && failed == nil {
		failed = fmt.Errorf("shutting down: %w", err)
	}
	if peerSrv != nil {
		peerSrv.Shutdown(sctx)
	}
	stopBG()
	s.stop()
	wg.Wait()
	return failed
}

// background refreshes catalogs and peers until ctx ends.
func (s *Server) background(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.CatalogRefresh.D())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.refreshCatalogs(ctx)
			}
		}
	}()
	if s.peers != nil && s.cfg.Peers.DNS != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.discoverPeers(ctx)
		}()
	}
	wg.Wait()
}

func (s *Server) discoverPeers(ctx context.Context) {
	_, port, _ := net.SplitHostPort(s.cfg.Peers.Addr)
	scheme := "http"
	if strings.HasPrefix(s.cfg.Peers.Self, "https://") {
		scheme = "https"
	}
	t := time.NewTicker(s.cfg.Peers.DNSRefresh.D())
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		peers, err := peercache.Resolve(rctx, nil, scheme, s.cfg.Peers.DNS, port)
		cancel()
		if err != nil {
			s.log.Warn("resolving tiles peers", "dns", s.cfg.Peers.DNS, "err", err)
		} else {
			s.peers.Set(append(peers, s.cfg.Peers.List...)...)
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
func (s *Server) refreshCatalogs(ctx context.Context) {
	for _, conn := range s.catalogs.Conns() {
		cat, err := s.catalogs.Refresh(ctx, conn)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("refreshing catalog", "conn", conn, "err", err)
			}
			continue
		}
		s.noteCatalog(cat)
	}
}

// noteCatalog drops the compiled sources of cat's connection when its
// fingerprint differs from the last one seen.
func (s *Server) noteCatalog(cat *catalog.Catalog) {
	s.mu.Lock()
	old, seen := s.fingerprints[cat.Conn]
	s.fingerprints[cat.Conn] = cat.Fingerprint
	s.mu.Unlock()
	if seen && old != cat.Fingerprint {
		s.sources.dropConn(cat.Conn)
	}
}

// checkConns pings the data connections in use.
func (s *Server) checkConns(ctx context.Context) error {
	var errs []error
	for _, conn := range s.catalogs.Conns() {
		pool, err := s.conns.Pool(ctx, conn)
		if err == nil {
			err = pool.Ping(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", conn, err))
		}
	}
	return errors.Join(errs...)
}

// PeerHandler serves the other nodes' groupcache requests (mounted by
// Run on Peers.Addr; exposed for tests). It is nil without peers.
func (s *Server) PeerHandler() http.Handler {
	if s.peers == nil {
		return nil
	}
	return s.peers.Handler(func(ctx context.Context, key string) ([]byte, error) {
		tk, err := parseGroupKey(key)
		if err != nil {
			return nil, err
		}
		s.metrics.peerRequests.Inc()
		e, err := s.fetch(ctx, tk, key)
		if err != nil {
			return nil, err
		}
		return e.marshal(), nil
	})
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}
