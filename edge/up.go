package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"net"
	"os"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/meridian-gis/meridian"
	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/internal/noderegistry"
	"github.com/meridian-gis/meridian/internal/opsmetrics"
	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/workers"
)

// component is one long-running part of a process.
type component struct {
	name string
	run  func(ctx context.Context) error
}

func runUp(ctx context.Context, cfg *Config, _ []string) error {
	nd, err := openNode(ctx, cfg, "up", needs{db: true, secret: true}, true)
	if err != nil {
		return err
	}
	defer nd.close()
	if _, err := pgdb.Migrate(ctx, nd.meta); err != nil {
		return err
	}
	if err := nd.prepareTokens(ctx); err != nil {
		return err
	}
	comps, err := nd.components("tiles", "control", "worker")
	if err != nil {
		return err
	}
	return nd.runAll(ctx, comps, true)
}

func runTiles(ctx context.Context, cfg *Config, _ []string) error {
	return runOne(ctx, cfg, "tiles")
}

func runControl(ctx context.Context, cfg *Config, _ []string) error {
	return runOne(ctx, cfg, "control")
}

func runWorker(ctx context.Context, cfg *Config, _ []string) error {
	return runOne(ctx, cfg, "worker")
}

// runOne runs a single component, for one-component-per-container
// deployments. It does not migrate: run `meridian migrate` (a Kubernetes
// init container or job) first.
func runOne(ctx context.Context, cfg *Config, name string) error {
	nd, err := openNode(ctx, cfg, name, needs{db: true, secret: true}, true)
	if err != nil {
		return err
	}
	defer nd.close()
	if err := nd.prepareTokens(ctx); err != nil {
		return err
	}
	comps, err := nd.components(name)
	if err != nil {
		return err
	}
	return nd.runAll(ctx, comps, false)
}

// components builds the named components.
func (nd *node) components(names ...string) ([]component, error) {
	var out []component
	for _, name := range names {
		var c component
		var err error
		switch name {
		case "tiles":
			c, err = nd.tilesComponent()
		case "control":
			c, err = nd.controlComponent()
		case "worker":
			c, err = nd.workerComponent()
		default:
			err = fmt.Errorf("unknown component %q", name)
		}
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", name, err)
		}
		out = append(out, c)
		nd.register(name)
	}
	return out, nil
}

func (nd *node) controlComponent() (component, error) {
	var tokens control.TokenVerifier
	if nd.tokens != nil {
		tokens = nd.tokens
	}
	ccfg := nd.cfg.Control
	ccfg.Accounts.PublicURL = nd.cfg.PublicURL
	s, err := control.New(ccfg, control.Deps{
		Log:         nd.log.With("component", "control"),
		Meta:        nd.meta,
		Broker:      nd.broker,
		Tokens:      tokens,
		TokenStore:  nd.tokenStore,
		Connections: dataconn.New(nd.meta, nd.keyring),
		Metrics:     nd.metrics,
		Version:     version,
		Config:      nd.cfg,
	})
	if err != nil {
		return component{}, err
	}
	// The broker's backlog and the node registry, reported by control
	// nodes only (every node would report the same numbers).
	nd.metrics.MustRegister(opsmetrics.NewClusterCollector(nd.meta, nd.log.With("component", "opsmetrics")))
	return component{"control", s.Run}, nil
}

func (nd *node) workerComponent() (component, error) {
	r, err := workers.New(nd.cfg.Worker, workers.Deps{
		Log:     nd.log.With("component", "worker"),
		Broker:  nd.broker,
		Metrics: nd.metrics,
		Health:  nd.health,
	})
	if err != nil {
		return component{}, err
	}
	if err := registerJobs(r, nd); err != nil {
		return component{}, err
	}
	return component{"worker", r.Run}, nil
}

// runAll runs comps (and the edge when withEdge) until ctx ends or one of
// them fails, then stops the edge first, so no new request comes in, and
// lets the components drain.
func (nd *node) runAll(ctx context.Context, comps []component, withEdge bool) error {
	compCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(comps)+len(nd.background))
	for _, c := range append(comps, nd.background...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(compCtx); err != nil {
				errc <- fmt.Errorf("%s: %w", c.name, err)
				return
			}
			if compCtx.Err() == nil {
				errc <- fmt.Errorf("%s stopped unexpectedly", c.name)
			}
		}()
	}
	var failed error
	if withEdge {
		if err := startEdge(nd.cfg); err != nil {
			failed = fmt.Errorf("starting edge: %w", err)
		} else {
			nd.log.Info("meridian is up", "url", nd.cfg.PublicURL, "edge", nd.cfg.Edge.Addr)
		}
	}
	if failed == nil {
		select {
		case <-ctx.Done():
			nd.log.Info("shutting down")
		case failed = <-errc:
		}
	}
	if withEdge {
		if err := caddy.Stop(); err != nil {
			nd.log.Warn("stopping edge", "err", err)
		}
	}
	cancel()
	wg.Wait()
	close(errc)
	errs := []error{failed}
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// startEdge loads the Caddyfile into the in-process Caddy. The Caddyfile's
// {$MERIDIAN_*} placeholders are set from cfg where the environment does
// not set them already, so that the edge and the components agree on
// addresses.
func startEdge(cfg *Config) error {
	body, name := meridian.Caddyfile, "Caddyfile (embedded)"
	if cfg.Edge.Caddyfile != "" {
		b, err := os.ReadFile(cfg.Edge.Caddyfile)
		if err != nil {
			return fmt.Errorf("MERIDIAN_CADDYFILE: %w", err)
		}
		body, name = b, cfg.Edge.Caddyfile
	}
	host, port, _ := net.SplitHostPort(cfg.Edge.Addr)
	site := "http://:" + port
	if cfg.Edge.SiteAddress != "" {
		site = cfg.Edge.SiteAddress
	}
	defaults := map[string]string{
		"MERIDIAN_SITE_ADDRESS":      site,
		"MERIDIAN_EDGE_BIND":         host,
		"MERIDIAN_ADMIN_ADDR":        cfg.Edge.AdminAddr,
		"MERIDIAN_TILES_UPSTREAMS":   cfg.Tiles.Addr,
		"MERIDIAN_CONTROL_UPSTREAMS": cfg.Control.Addr,
		// read at load time by the meridian app ({env.…} placeholders)
		"MERIDIAN_DATABASE_URL":   cfg.DatabaseURL,
		"MERIDIAN_BROKER":         cfg.Broker.Driver,
		"MERIDIAN_PUBSUB_PROJECT": cfg.Broker.PubSubProject,
		"MERIDIAN_NODE":           cfg.Node,
		"MERIDIAN_EDGE_ADVERTISE": noderegistry.Advertised(cfg.Edge.Addr, cfg.Registry.Address, cfg.Node),
	}
	for k, v := range defaults {
		if _, ok := os.LookupEnv(k); !ok {
			os.Setenv(k, v)
		}
	}
	if host == "" {
		os.Setenv("MERIDIAN_EDGE_BIND", "0.0.0.0")
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	js, _, err := adapter.Adapt(body, map[string]any{"filename": name})
	if err != nil {
		return fmt.Errorf("adapting %s: %w", name, err)
	}
	return caddy.Load(js, true)
}
