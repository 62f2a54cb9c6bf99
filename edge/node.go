package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/obs"
	"github.com/meridian-gis/meridian/internal/opsmetrics"
	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// node holds what every component of one process shares: logs, metrics,
// the metadata pool, the keyring and the broker. main owns the wiring;
// packages receive the pieces they need.
type node struct {
	// ctx lives as long as the command: shared background work uses it.
	ctx     context.Context
	cfg     *Config
	log     *slog.Logger
	metrics *prometheus.Registry
	meta    *pgxpool.Pool
	keyring *secret.Keyring
	broker  broker.Broker
	health  *obs.Health
	// pools are the process's database pools, for their metrics.
	pools *opsmetrics.PoolSet

	// tokens verifies access tokens (set by prepareTokens).
	tokens *tokenstore.Watcher
	// tokenStore mints tokens (set by prepareTokens).
	tokenStore *tokenstore.Store
	// background components run beside the main ones (watchers,
	// subscriptions).
	background []component
}

// openNode builds a node for svc, opening only what the command needs.
// Errors name the setting at fault.
func openNode(ctx context.Context, cfg *Config, svc string, n needs, withBroker bool) (*node, error) {
	nd := &node{
		ctx:     ctx,
		cfg:     cfg,
		log:     obs.NewLogger(os.Stderr, cfg.Log).With("svc", svc, "node", cfg.Node),
		metrics: obs.NewRegistry(),
		health:  obs.NewHealth(),
		pools:   new(opsmetrics.PoolSet),
	}
	nd.metrics.MustRegister(opsmetrics.NewPoolsCollector(nd.pools.Stats))
	if n.secret {
		kr, err := secret.ParseKeyring(cfg.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("MERIDIAN_SECRET_KEY: %w", err)
		}
		nd.keyring = kr
	}
	if n.db {
		pool, err := pgdb.NewPool(ctx, cfg.DatabaseURL, pgdb.PoolConfig{MaxConns: cfg.MetaMaxConns, ApplicationName: "meridian-" + svc}, nd.log)
		if err != nil {
			return nil, fmt.Errorf("MERIDIAN_DATABASE_URL: %w", err)
		}
		nd.meta = pool
		nd.pools.AddPool("metadata", pool)
		nd.health.Add("metadata_db", func(ctx context.Context) error { return pool.Ping(ctx) })
	}
	if withBroker {
		b, err := openBroker(ctx, cfg, nd.meta, nd.log)
		if err != nil {
			nd.close()
			return nil, err
		}
		nd.broker = b
	}
	return nd, nil
}

func (nd *node) close() {
	if nd.broker != nil {
		nd.broker.Close()
	}
	if nd.meta != nil {
		nd.meta.Close()
	}
}
