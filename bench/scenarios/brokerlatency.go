package scenarios

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokertest"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/broker/pubsubbroker"
	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/pgdb"
)

// brokerLatencyConfig is the broker-latency setup, recorded in the report.
type brokerLatencyConfig struct {
	Messages int `json:"messages"`
}

// brokerLatency measures publish-to-handler latency of both broker drivers:
// postgres on a private cluster started for the run, and pubsub against the
// in-process pstest server (whose delivery loop ticks every 10 ms, so its
// figures are a floor of the test server, not of Google's service). The
// invalidation path rides on this, so its p99 must stay well under the
// 100 ms publish-to-purged budget.
type brokerLatency struct {
	cfg     brokerLatencyConfig
	brokers map[string]broker.Broker
}

func newBrokerLatency() bench.Scenario {
	return &brokerLatency{cfg: brokerLatencyConfig{Messages: 300}}
}

func (s *brokerLatency) Info() bench.Info {
	return bench.Info{
		Name: "broker-latency",
		Description: fmt.Sprintf("Publish-to-handler latency of %d messages sent one at a time, postgres driver "+
			"(private cluster, LISTEN/NOTIFY) vs pubsub driver (in-process pstest).", s.cfg.Messages),
		Variants: []string{"postgres", "pubsub-pstest"},
		Targets: []bench.Target{
			{Variant: "postgres", Metric: "p99", Max: 100},
			{Variant: "pubsub-pstest", Metric: "p99", Max: 100},
		},
		Config: s.cfg,
	}
}

func (s *brokerLatency) Setup(ctx context.Context, env *bench.Env) (bench.Teardown, error) {
	// The cluster runs as the postgres user when we are root: it must be
	// able to enter the scratch folder.
	if err := os.Chmod(env.TempDir, 0o755); err != nil {
		return nil, err
	}
	c, err := pgcluster.Open(ctx, env.TempDir+"/pg", pgcluster.Options{Fast: true})
	if errors.Is(err, pgcluster.ErrNoBinaries) {
		return nil, bench.Skip("no PostgreSQL server binaries")
	}
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	stopPG := func(ctx context.Context) error { return c.Stop(ctx) }
	admin, err := pgx.Connect(ctx, c.SuperuserURL("postgres"))
	if err == nil {
		_, err = admin.Exec(ctx, "CREATE DATABASE bench_broker")
		admin.Close(ctx)
	}
	if err != nil {
		return nil, errors.Join(err, stopPG(ctx))
	}
	log := slog.New(slog.DiscardHandler)
	pool, err := pgdb.NewPool(ctx, c.SuperuserURL("bench_broker"), pgdb.PoolConfig{}, log)
	if err == nil {
		_, err = pgdb.Migrate(ctx, pool)
	}
	if err != nil {
		return nil, errors.Join(err, stopPG(ctx))
	}
	srv := pstest.NewServer()
	ps, err := pubsubbroker.New(ctx, pubsubbroker.Config{ProjectID: "bench", Endpoint: srv.Addr, Insecure: true, ClientBackoff: true}, log)
	if err != nil {
		pool.Close()
		srv.Close()
		return nil, errors.Join(err, stopPG(ctx))
	}
	pg := pgbroker.New(pool, pgbroker.Config{}, log)
	s.brokers = map[string]broker.Broker{"postgres": pg, "pubsub-pstest": ps}
	return func(ctx context.Context) error {
		errs := []error{pg.Close(), ps.Close()}
		pool.Close()
		srv.Close()
		return errors.Join(append(errs, stopPG(ctx))...)
	}, nil
}

func (s *brokerLatency) Run(ctx context.Context, variant string) (bench.Result, error) {
	b := s.brokers[variant]
	if b == nil {
		return bench.Result{}, fmt.Errorf("unknown variant %q", variant)
	}
	p50, p99, err := brokertest.MeasureLatency(ctx, b, s.cfg.Messages)
	if err != nil {
		return bench.Result{}, err
	}
	return bench.Result{
		Primary:   latencyMetric("p99", p99.Seconds()),
		Secondary: []bench.Metric{latencyMetric("p50", p50.Seconds())},
	}, nil
}
