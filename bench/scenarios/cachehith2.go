package scenarios

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/peers"
)

// cacheHitH2Config is the cache-hit-h2 setup, recorded in the report.
type cacheHitH2Config struct {
	BodyBytes int    `json:"body_bytes"`
	Path      string `json:"path"`
	// Load is the load generator: "h2load" or, when it is missing, the
	// in-process net/http HTTP/2 client ("loadgen-h2").
	Load        string `json:"load"`
	LoadVersion string `json:"load_version,omitempty"`
	Threads     int    `json:"threads"`
	Connections int    `json:"connections"`
	// Streams is h2load -m: 10 streams per connection, as a map view
	// asks for tens of tiles at once over one HTTP/2 connection.
	Streams      int    `json:"streams_per_connection"`
	TLS13Ciphers string `json:"tls13_ciphers"`
	Nginx        string `json:"nginx_version,omitempty"`
	NginxConf    string `json:"nginx_conf,omitempty"`
	// CacheCaddyfile is the meridian-cache configuration.
	CacheCaddyfile    string `json:"meridian_cache_caddyfile,omitempty"`
	MeridianCache     string `json:"meridian_cache"`
	MaxOriginRequests int    `json:"max_origin_requests"`
}

// cacheHitH2 is issue 4's HTTPS/HTTP2 cache target: a HIT of a 30 KiB tile
// through Meridian's edge cache against nginx proxy_cache, both with TLS
// (the same self-signed certificate, the same TLS 1.3 cipher) on this
// machine, and a Caddy static_response over HTTP/2 for reference.
type cacheHitH2 struct {
	cfg     cacheHitH2Config
	env     *bench.Env
	h2load  string // path; "" means the in-process generator
	cert    peers.Cert
	targets map[string]*cacheTarget
}

func newCacheHitH2() bench.Scenario {
	return &cacheHitH2{cfg: cacheHitH2Config{
		BodyBytes: objectSize, Path: tilePath, Load: "h2load",
		Threads: 2, Connections: 64, Streams: 10, TLS13Ciphers: "TLS_AES_128_GCM_SHA256",
		MeridianCache: "not checked yet", MaxOriginRequests: maxOriginRequests,
	}}
}

func (s *cacheHitH2) Info() bench.Info {
	return bench.Info{
		Name: "cache-hit-h2",
		Description: fmt.Sprintf("Cache HIT of a %d KiB tile over HTTPS/HTTP2 (self-signed ECDSA P-256, TLS 1.3 %s), "+
			"h2load -t%d -c%d -m%d (in-process net/http HTTP/2 client when h2load is missing): Meridian's edge "+
			"(meridian_cache before reverse_proxy) vs nginx proxy_cache, each caching its own in-process origin, and a "+
			"Caddy static_response of the same bytes for reference. Caches are warmed and checked for a HIT first; a "+
			"run fails if its origin sees more than %d requests.",
			s.cfg.BodyBytes>>10, s.cfg.TLS13Ciphers, s.cfg.Threads, s.cfg.Connections, s.cfg.Streams, maxOriginRequests),
		Variants: []string{"nginx", "meridian-cache", "caddy-static"},
		Targets:  []bench.Target{{Ratio: "meridian-cache/nginx", Min: 1.0}},
		Config:   s.cfg,
	}
}

func (s *cacheHitH2) Setup(ctx context.Context, env *bench.Env) (_ bench.Teardown, err error) {
	s.env = env
	ngx, err := peers.LookNginx("")
	if err != nil {
		return nil, bench.Skip("nginx is not installed (apt-get install nginx)")
	}
	s.cfg.Nginx = peers.NginxVersion(ctx, ngx)
	if s.h2load, err = lookH2Load(); err == nil {
		s.cfg.LoadVersion = h2LoadVersion(ctx, s.h2load)
	} else {
		env.Logger.Warn("h2load not installed (apt-get install nghttp2-client): using the in-process HTTP/2 client")
		s.h2load, s.cfg.Load = "", "loadgen-h2"
	}
	edge, err := buildEdge(ctx, env)
	if err != nil {
		return nil, err
	}
	dir, err := openScratch(env, "tls")
	if err != nil {
		return nil, err
	}
	if s.cert, err = peers.SelfSigned(dir); err != nil {
		return nil, err
	}

	var stop cleanup
	teardown := func(ctx context.Context) error { return stop.run(ctx) }
	lifetime := peerLifetime(env, 3)
	body := tileBody(s.cfg.BodyBytes)
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: s.cert.Pool},
			ForceAttemptHTTP2: true,
		},
	}
	defer client.CloseIdleConnections()
	s.targets = make(map[string]*cacheTarget)

	// nginx proxy_cache in front of its own origin.
	if dir, err = openScratch(env, "nginx"); err != nil {
		return teardown, err
	}
	origin, err := startOrigin(body, &stop)
	if err != nil {
		return teardown, err
	}
	addr, err := freeAddr()
	if err != nil {
		return teardown, err
	}
	n := peers.Nginx{Path: ngx, Listen: addr, Backend: origin.Addr, WorkDir: dir,
		CertFile: s.cert.CertFile, KeyFile: s.cert.KeyFile, Lifetime: lifetime}
	if s.cfg.NginxConf, err = n.Config(); err != nil {
		return teardown, err
	}
	srv, err := n.Start(ctx)
	if err != nil {
		return teardown, err
	}
	stop.add(srv.Stop)
	t := &cacheTarget{url: "https://" + srv.Addr + tilePath, server: srv, origin: origin}
	if err := verify(ctx, client, t.url, body, "HTTP/2.0", nginxHit); err != nil {
		return teardown, err
	}
	s.targets["nginx"] = t

	// caddy-static over HTTPS.
	if dir, err = openScratch(env, "caddy-static"); err != nil {
		return teardown, err
	}
	if addr, err = freeAddr(); err != nil {
		return teardown, err
	}
	srv, err = edge.Start(ctx, peers.EdgeSite{Listen: addr, Respond: body, WorkDir: dir,
		CertFile: s.cert.CertFile, KeyFile: s.cert.KeyFile, Lifetime: lifetime})
	if err != nil {
		return teardown, err
	}
	stop.add(srv.Stop)
	t = &cacheTarget{url: "https://" + srv.Addr + tilePath, server: srv}
	if err := verify(ctx, client, t.url, body, "HTTP/2.0", nil); err != nil {
		return teardown, err
	}
	s.targets["caddy-static"] = t

	// meridian-cache over HTTPS in front of its own origin, when compiled in.
	if !edge.HasModule(peers.CacheHandlerModule) {
		s.cfg.MeridianCache = "skipped: " + noCacheModule
		s.targets["meridian-cache"] = &cacheTarget{skip: noCacheModule}
		return teardown, nil
	}
	site := peers.EdgeSite{CertFile: s.cert.CertFile, KeyFile: s.cert.KeyFile, Lifetime: lifetime}
	t, s.cfg.CacheCaddyfile, err = startMeridianCache(ctx, env, edge, site, body, client, "HTTP/2.0", &stop)
	if err != nil {
		return teardown, err
	}
	s.cfg.MeridianCache = "runs"
	s.targets["meridian-cache"] = t
	return teardown, nil
}

func (s *cacheHitH2) Run(ctx context.Context, variant string) (bench.Result, error) {
	t := s.targets[variant]
	if t == nil {
		return bench.Result{}, errors.New("unknown variant " + variant)
	}
	start, err := t.before()
	if err != nil {
		return bench.Result{}, err
	}
	var res bench.Result
	if s.h2load != "" {
		hr, err := h2Load{
			Path: s.h2load, Threads: s.cfg.Threads, Clients: s.cfg.Connections, Streams: s.cfg.Streams,
			Duration: s.env.Duration, TLS13Ciphers: s.cfg.TLS13Ciphers,
		}.run(ctx, t.url)
		if err != nil {
			return bench.Result{}, err
		}
		if res, err = fromH2Load(hr); err != nil {
			return bench.Result{}, err
		}
	} else {
		lr, err := load.HTTP{
			URLs:        []string{t.url},
			Concurrency: s.cfg.Connections * s.cfg.Streams,
			Duration:    s.env.Duration,
			Engine:      load.NetHTTP,
			HTTP2:       true,
			TLSConfig:   &tls.Config{RootCAs: s.cert.Pool},
		}.Run(ctx)
		if err != nil {
			return bench.Result{}, err
		}
		if res, err = fromLoad(lr); err != nil {
			return bench.Result{}, err
		}
	}
	return t.after(variant, start, res)
}
