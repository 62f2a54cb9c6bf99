// Package edgeapp is the Caddy app "meridian": what Meridian's edge
// modules share in one Caddy process — the metadata database pool, the
// broker, and a token verifier kept current (signing keys reloaded,
// revocations applied as they arrive on the broker). Handlers reach it
// through ctx.App("meridian"), never through a package variable.
package edgeapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokerconfig"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/noderegistry"
	"github.com/meridian-gis/meridian/internal/opsmetrics"
	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

func init() {
	caddy.RegisterModule(App{})
}

// App holds the edge's connections to the rest of Meridian.
type App struct {
	// DatabaseURL is the metadata database: signing keys, revoked tokens,
	// and the postgres broker's messages. Placeholders such as
	// {env.MERIDIAN_DATABASE_URL} are expanded. Required.
	DatabaseURL string `json:"database_url,omitempty"`
	// Broker chooses the broker driver. Default: postgres on DatabaseURL.
	Broker brokerconfig.Config `json:"broker,omitempty"`
	// Node names this edge in its own fan-out subscriptions
	// ("edge-<node>-…"). Default: the host name.
	Node string `json:"node,omitempty"`
	// Address is this edge's host:port as other nodes and operators
	// reach it, recorded in the node registry. Optional.
	Address string `json:"address,omitempty"`
	// Version is recorded in the node registry. Default: the meridian
	// module's build version.
	Version string `json:"version,omitempty"`
	// Heartbeat is how often this edge refreshes its node registry row.
	// Default: 5s.
	Heartbeat caddy.Duration `json:"heartbeat,omitempty"`
	// MaxConns caps connections to the metadata database. Default: 4.
	MaxConns int32 `json:"max_conns,omitempty"`
	// ReloadInterval is how often signing keys and revocations are
	// reloaded as a backstop to broker messages. Default: 30s.
	ReloadInterval caddy.Duration `json:"reload_interval,omitempty"`

	log     *slog.Logger
	metrics prometheus.Gatherer
	pool    *pgxpool.Pool
	broker  broker.Broker
	tokens  *tokenstore.Watcher

	// ctx lives from Provision to Stop; background work runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     *sync.WaitGroup
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "meridian", New: func() caddy.Module { return new(App) }}
}

// Provision opens the pool and the broker and loads keys and revocations.
func (a *App) Provision(ctx caddy.Context) error {
	a.log = ctx.Slogger()
	a.metrics = ctx.GetMetricsRegistry()
	// Runtime placeholders ({env.X}) keep secrets out of the adapted JSON.
	repl := caddy.NewReplacer()
	a.DatabaseURL = repl.ReplaceAll(a.DatabaseURL, "")
	a.Node = repl.ReplaceAll(a.Node, "")
	a.Address = repl.ReplaceAll(a.Address, "")
	a.Version = repl.ReplaceAll(a.Version, "")
	a.Broker.Driver = repl.ReplaceAll(a.Broker.Driver, "")
	a.Broker.PubSubProject = repl.ReplaceAll(a.Broker.PubSubProject, "")
	a.Broker.PubSubEndpoint = repl.ReplaceAll(a.Broker.PubSubEndpoint, "")
	if a.Node == "" {
		a.Node, _ = os.Hostname()
	}
	if a.MaxConns == 0 {
		a.MaxConns = 4
	}
	if a.Heartbeat == 0 {
		a.Heartbeat = caddy.Duration(5 * time.Second)
	}
	if a.Version == "" {
		a.Version = buildVersion()
	}
	if a.ReloadInterval == 0 {
		a.ReloadInterval = caddy.Duration(30 * time.Second)
	}
	a.Broker.SetDefaults()
	if err := a.Validate(); err != nil {
		return err
	}
	pool, err := pgdb.NewPool(ctx, a.DatabaseURL, pgdb.PoolConfig{MaxConns: a.MaxConns, ApplicationName: "meridian-edge"}, a.log)
	if err != nil {
		return fmt.Errorf("meridian app: metadata database: %w", err)
	}
	a.pool = pool
	if err := ctx.GetMetricsRegistry().Register(opsmetrics.NewPoolCollector(pool, "metadata")); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return fmt.Errorf("meridian app: registering pool metrics: %w", err)
		}
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.wg = new(sync.WaitGroup)
	b, err := brokerconfig.Open(ctx, a.Broker, pool, a.log)
	if err != nil {
		return fmt.Errorf("meridian app: %w", err)
	}
	a.broker = b
	a.tokens = tokenstore.NewWatcher(tokenstore.New(pool, nil, nil), grant.NewVerifier(nil, nil, grant.VerifierConfig{}),
		tokenstore.WatcherConfig{Interval: time.Duration(a.ReloadInterval)}, a.log)
	if err := a.tokens.Reload(ctx); err != nil {
		return fmt.Errorf("meridian app: loading signing keys and revocations: %w", err)
	}
	return nil
}

// Validate checks the configuration.
func (a *App) Validate() error {
	var errs []error
	if a.DatabaseURL == "" {
		errs = append(errs, errors.New("meridian app: database_url is required (MERIDIAN_DATABASE_URL)"))
	}
	if err := a.Broker.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("meridian app: %w", err))
	}
	if !broker.ValidName("edge-" + a.Node) {
		errs = append(errs, fmt.Errorf("meridian app: node %q: letters, digits, '.', '_' and '-' only", a.Node))
	}
	return errors.Join(errs...)
}

// Start runs the periodic reload and this node's revocation subscription.
func (a *App) Start() error {
	a.Go("token reload", a.tokens.Run)
	sub := broker.Subscription{
		Topic:       broker.TopicTokenRevocations,
		Name:        a.SubscriptionName("revocations"),
		ExpireAfter: 7 * 24 * time.Hour,
	}
	// Created before Start returns, so no revocation published from now on
	// is missed; the receiver retries if the broker is unreachable.
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	if err := a.broker.CreateSubscription(ctx, sub); err != nil {
		a.log.Error("creating the revocation subscription; retrying in the background", "err", err)
	}
	a.Go("revocations", func(ctx context.Context) error {
		return a.broker.Receive(ctx, sub, a.tokens.HandleRevocation)
	})
	hb := &noderegistry.Heartbeater{
		Node:     noderegistry.Node{Component: noderegistry.Edge, Name: a.Node, Version: a.Version, Address: a.Address, StartedAt: time.Now()},
		Interval: time.Duration(a.Heartbeat),
		Stats:    a.cacheStats,
		Log:      a.log,
	}
	a.Go("node registry", func(ctx context.Context) error { return hb.Run(ctx, a.pool) })
	return nil
}

// cacheStats sums this edge's meridian_cache_* metrics (any labels) from
// Caddy's metrics registry, for the admin console's per-node cache view.
func (a *App) cacheStats() map[string]float64 {
	mfs, err := a.metrics.Gather()
	if err != nil && len(mfs) == 0 {
		return nil
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		name, ok := strings.CutPrefix(mf.GetName(), "meridian_cache_")
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[name] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// BinaryVersion is the meridian binary's version (its -X main.version),
// set by its main before Caddy starts; the default for App.Version, so an
// edge reports the same version as the binary's other components.
var BinaryVersion string

// buildVersion is BinaryVersion, else the main module's version as the Go
// toolchain recorded it (a VCS pseudo-version, or "(devel)").
func buildVersion() string {
	if BinaryVersion != "" {
		return BinaryVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return ""
}

// Go runs fn until the app stops; other modules use it for their own
// background work (the cache's invalidation subscription). Call it after
// Provision.
func (a *App) Go(what string, fn func(context.Context) error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := fn(a.ctx); err != nil && a.ctx.Err() == nil {
			a.log.Error("background task stopped", "task", what, "err", err)
		}
	}()
}

// Stop ends the background work and waits for it.
func (a *App) Stop() error {
	if a.cancel != nil {
		a.cancel()
	}
	if a.wg != nil {
		a.wg.Wait()
	}
	return nil
}

// Cleanup closes the broker and the pool.
func (a *App) Cleanup() error {
	a.Stop()
	if a.broker != nil {
		a.broker.Close()
	}
	if a.pool != nil {
		a.pool.Close()
	}
	return nil
}

// Tokens verifies access tokens (cached, zero-allocation on repeats).
func (a *App) Tokens() *tokenstore.Watcher { return a.tokens }

// Pool is the edge's metadata database pool (the node registry, keys).
func (a *App) Pool() *pgxpool.Pool { return a.pool }

// Messages is the edge's broker connection.
func (a *App) Messages() broker.Broker { return a.broker }

// SubscriptionName names this node's own subscription for purpose.
func (a *App) SubscriptionName(purpose string) string { return "edge-" + a.Node + "-" + purpose }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
