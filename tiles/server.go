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
// The tile path (compiled sources, generations, the in-process cache,
// shared fills, groupcache peers, overviews) is package engine; this
// package routes, authenticates, maps errors and writes headers. A tile
// goes through: the in-process cache (a hit does not allocate), then one
// shared fill per key (concurrent requests wait for the same work,
// cancelled only when they have all given up: timed out, or hung up — see
// clientContext), then — with peers — the groupcache owner of the key,
// which renders it at most once across nodes.
package tiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/obs"
	"github.com/meridian-gis/meridian/tiles/internal/engine"
	"github.com/meridian-gis/meridian/tiles/internal/hangup"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
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
	// WarmConns lists the data connections to warm when the node starts
	// (engine.WarmUp): until that is done, or Config.WarmTimeout passed,
	// /readyz answers 503, so that a load balancer sends a restarted or
	// new node tiles only once its backends are ready. Optional: nil
	// warms nothing at start (pools open on first use).
	WarmConns func(ctx context.Context) ([]string, error)
}

// Server is one tiles node: routing, authentication, CORS, error mapping
// and headers around the tile path (package engine).
type Server struct {
	cfg       Config
	log       *slog.Logger
	conns     ConnPools
	auth      TokenVerifier
	publicURL string // PublicURL + PathPrefix, no trailing slash
	prefix    string

	engine  *engine.Engine
	metrics *metrics
	health  *obs.Health
	hangups hangup.Watcher      // clients that leave while their request waits (clientContext)
	covers  spatialindex.Covers // widgets' spatial filters on spatial-index sources, shared

	base      context.Context // lifetime of Run; detached work derives from it
	stop      context.CancelFunc
	handler   fasthttp.RequestHandler
	warmConns func(ctx context.Context) ([]string, error)
	warming   atomic.Bool // the start-up warm-up runs: not ready

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
		cfg:       cfg,
		log:       deps.Log,
		conns:     deps.Conns,
		auth:      deps.Auth,
		publicURL: strings.TrimRight(deps.PublicURL, "/") + prefix,
		prefix:    prefix,
		health:    obs.NewHealth(),
		warmConns: deps.WarmConns,
	}
	s.base, s.stop = context.WithCancel(context.Background())
	eng, err := engine.New(cfg.engineConfig(), engine.Deps{Log: deps.Log, Pool: deps.Conns.Pool, Metrics: deps.Metrics})
	if err != nil {
		return nil, err
	}
	s.engine = eng
	s.health.Add("data_connections", eng.CheckConns)
	if s.warmConns != nil {
		s.warming.Store(true)
		s.health.Add("warm_up", func(context.Context) error {
			if s.warming.Load() {
				return errWarming
			}
			return nil
		})
	}
	s.metrics = newMetrics(deps.Metrics, s)
	s.handler = s.handle
	return s, nil
}

// errWarming is the readiness of a node still warming its pools.
var errWarming = errors.New("warming the data connections")

// warmUp runs the start-up warm-up (Deps.WarmConns), bounded by
// Config.WarmTimeout, then reports the node ready.
func (s *Server) warmUp(ctx context.Context) {
	defer s.warming.Store(false)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WarmTimeout.D())
	defer cancel()
	start := time.Now()
	conns, err := s.warmConns(ctx)
	if err != nil {
		s.log.Warn("listing the data connections to warm", "err", err)
		return
	}
	n := s.engine.WarmUp(ctx, conns)
	s.log.Info("warm-up done", "backends", n, "seconds", time.Since(start).Seconds(), "timed_out", ctx.Err() != nil)
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
	if s.engine.HasPeers() {
		pln := s.peerLn
		if pln == nil {
			var err error
			if pln, err = net.Listen("tcp", s.cfg.Peers.Addr); err != nil {
				ln.Close()
				return fmt.Errorf("listening for peers on %s: %w", s.cfg.Peers.Addr, err)
			}
		}
		peerSrv = &http.Server{
			Handler:           s.engine.PeerHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    engine.MaxPeerRequestBytes,
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
	go func() { defer wg.Done(); s.engine.Run(bg) }()
	if s.warmConns != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.warmUp(bg) }()
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
	s.engine.Close()
	wg.Wait()
	return failed
}

// PeerHandler serves the other nodes' groupcache requests (mounted by
// Run on Peers.Addr; exposed for tests). It is nil without peers.
func (s *Server) PeerHandler() http.Handler { return s.engine.PeerHandler() }

// Invalidate applies a cache invalidation published at at (see
// engine.Engine.Invalidate).
func (s *Server) Invalidate(ctx context.Context, inv cachetag.Invalidation, at time.Time) {
	s.engine.Invalidate(ctx, inv, at)
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}
