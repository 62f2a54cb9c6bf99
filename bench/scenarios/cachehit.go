package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/peers"
)

// cacheHitConfig is the cache-hit setup, recorded in the report.
type cacheHitConfig struct {
	BodyBytes   int    `json:"body_bytes"`
	Path        string `json:"path"`
	Threads     int    `json:"wrk_threads"`
	Connections int    `json:"connections"`
	Duration    string `json:"duration,omitempty"`
	WrkVersion  string `json:"wrk_version,omitempty"`
	Varnish     string `json:"varnish_version,omitempty"`
	VCL         string `json:"vcl,omitempty"`
	// CacheCaddyfile is the meridian-cache configuration (the static one
	// differs by the respond directive holding the body).
	CacheCaddyfile string `json:"meridian_cache_caddyfile,omitempty"`
	// MeridianCache says whether the meridian-cache variant runs, or why
	// not.
	MeridianCache     string `json:"meridian_cache"`
	MaxOriginRequests int    `json:"max_origin_requests"`
}

// cacheHit is issue 4's HTTP/1.1 cache target: a HIT of a 30 KiB tile
// through Meridian's edge cache against a Caddy static_response of the
// same bytes (the ceiling of any Caddy module) and against Varnish caching
// the same origin, wrk -t2 -c64 on keep-alive connections.
type cacheHit struct {
	cfg     cacheHitConfig
	env     *bench.Env
	wrk     string
	targets map[string]*cacheTarget
}

func newCacheHit() bench.Scenario {
	return &cacheHit{cfg: cacheHitConfig{
		BodyBytes: objectSize, Path: tilePath, Threads: 2, Connections: 64,
		MeridianCache: "not checked yet", MaxOriginRequests: maxOriginRequests,
	}}
}

func (s *cacheHit) Info() bench.Info {
	return bench.Info{
		Name: "cache-hit",
		Description: fmt.Sprintf("Cache HIT of a %d KiB tile over HTTP/1.1 keep-alive, wrk -t%d -c%d: Meridian's edge "+
			"(meridian_cache before reverse_proxy) vs a Caddy static_response of the same bytes from the same binary "+
			"vs Varnish (malloc 256 MiB, built-in VCL) caching the same in-process origin. Each cache is warmed and "+
			"checked for a HIT first; a run fails if its origin sees more than %d requests.",
			s.cfg.BodyBytes>>10, s.cfg.Threads, s.cfg.Connections, maxOriginRequests),
		Variants: []string{"caddy-static", "varnish", "meridian-cache"},
		Targets: []bench.Target{
			{Ratio: "meridian-cache/caddy-static", Min: 0.9},
			{Ratio: "meridian-cache/varnish", Min: 0.7},
		},
		Config: s.cfg,
	}
}

func (s *cacheHit) Setup(ctx context.Context, env *bench.Env) (_ bench.Teardown, err error) {
	s.env = env
	if s.wrk, err = load.LookWrk(); err != nil {
		return nil, bench.Skip("wrk is not installed (apt-get install wrk)")
	}
	varnishd, err := peers.LookVarnishd("")
	if err != nil {
		return nil, bench.Skip("varnishd is not installed (apt-get install varnish)")
	}
	s.cfg.WrkVersion = load.WrkVersion(ctx, s.wrk)
	s.cfg.Varnish = peers.VarnishVersion(ctx, varnishd)
	// wrk counts whole seconds.
	s.cfg.Duration = (time.Duration(math.Ceil(env.Duration.Seconds())) * time.Second).String()
	edge, err := buildEdge(ctx, env)
	if err != nil {
		return nil, err
	}

	var stop cleanup
	teardown := func(ctx context.Context) error { return stop.run(ctx) }
	lifetime := peerLifetime(env, 3)
	body := tileBody(s.cfg.BodyBytes)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	s.targets = make(map[string]*cacheTarget)

	// caddy-static: static_response of the body.
	dir, err := openScratch(env, "caddy-static")
	if err != nil {
		return teardown, err
	}
	addr, err := freeAddr()
	if err != nil {
		return teardown, err
	}
	srv, err := edge.Start(ctx, peers.EdgeSite{Listen: addr, Respond: body, WorkDir: dir, Lifetime: lifetime})
	if err != nil {
		return teardown, err
	}
	stop.add(srv.Stop)
	t := &cacheTarget{url: "http://" + srv.Addr + tilePath, server: srv}
	if err := verify(ctx, client, t.url, body, "HTTP/1.1", nil); err != nil {
		return teardown, err
	}
	s.targets["caddy-static"] = t

	// varnish in front of its own origin.
	if dir, err = openScratch(env, "varnish"); err != nil {
		return teardown, err
	}
	origin, err := startOrigin(body, &stop)
	if err != nil {
		return teardown, err
	}
	if addr, err = freeAddr(); err != nil {
		return teardown, err
	}
	v := peers.Varnish{Path: varnishd, Listen: addr, Backend: origin.Addr, WorkDir: dir, Lifetime: lifetime}
	if s.cfg.VCL, err = v.VCL(); err != nil {
		return teardown, err
	}
	if srv, err = v.Start(ctx); err != nil {
		return teardown, err
	}
	stop.add(srv.Stop)
	t = &cacheTarget{url: "http://" + srv.Addr + tilePath, server: srv, origin: origin}
	if err := verify(ctx, client, t.url, body, "HTTP/1.1", varnishHit); err != nil {
		return teardown, err
	}
	s.targets["varnish"] = t

	// meridian-cache in front of its own origin, when compiled in.
	if !edge.HasModule(peers.CacheHandlerModule) {
		s.cfg.MeridianCache = "skipped: " + noCacheModule
		s.targets["meridian-cache"] = &cacheTarget{skip: noCacheModule}
		return teardown, nil
	}
	site := peers.EdgeSite{Lifetime: lifetime}
	t, s.cfg.CacheCaddyfile, err = startMeridianCache(ctx, env, edge, site, body, client, "HTTP/1.1", &stop)
	if err != nil {
		return teardown, err
	}
	s.cfg.MeridianCache = "runs"
	s.targets["meridian-cache"] = t
	return teardown, nil
}

func (s *cacheHit) Run(ctx context.Context, variant string) (bench.Result, error) {
	t := s.targets[variant]
	if t == nil {
		return bench.Result{}, errors.New("unknown variant " + variant)
	}
	start, err := t.before()
	if err != nil {
		return bench.Result{}, err
	}
	wr, err := load.Wrk{
		Path:        s.wrk,
		Threads:     s.cfg.Threads,
		Connections: s.cfg.Connections,
		Duration:    s.env.Duration,
	}.Run(ctx, t.url)
	if err != nil {
		return bench.Result{}, err
	}
	res, err := fromWrk(wr)
	if err != nil {
		return bench.Result{}, err
	}
	return t.after(variant, start, res)
}
