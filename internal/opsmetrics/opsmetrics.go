// Package opsmetrics exports the Prometheus metrics operators watch that no
// single component owns: the saturation of a process's metadata database
// pool, and, read from the metadata database at scrape time, the postgres
// broker's backlog, delivery lag and dead letters per subscription and the
// node registry's counts. deploy/grafana and deploy/prometheus use them.
package opsmetrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exports the statistics of one or more pgx pools, labelled
// pool=<name>.
type PoolCollector struct {
	stats func() map[string]*pgxpool.Stat

	acquired, idle, total, max *prometheus.Desc
	acquires, emptyAcquires    *prometheus.Desc
	acquireSeconds             *prometheus.Desc
}

// NewPoolCollector returns a collector of pool, labelled name.
func NewPoolCollector(pool *pgxpool.Pool, name string) *PoolCollector {
	return NewPoolsCollector(func() map[string]*pgxpool.Stat { return map[string]*pgxpool.Stat{name: pool.Stat()} })
}

// NewPoolsCollector returns a collector of the pools stats lists at each
// scrape (the data connections' pools, opened and closed as they are
// used), labelled with their names.
func NewPoolsCollector(stats func() map[string]*pgxpool.Stat) *PoolCollector {
	d := func(n, help string) *prometheus.Desc {
		return prometheus.NewDesc("meridian_db_pool_"+n, help, []string{"pool"}, nil)
	}
	return &PoolCollector{stats: stats,
		acquired:       d("acquired_conns", "Connections in use."),
		idle:           d("idle_conns", "Idle connections."),
		total:          d("total_conns", "Open connections."),
		max:            d("max_conns", "The pool's connection limit."),
		acquires:       d("acquires_total", "Connections acquired."),
		emptyAcquires:  d("empty_acquires_total", "Acquires that had to wait: no idle connection was free."),
		acquireSeconds: d("acquire_seconds_total", "Time spent acquiring connections."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.emptyAcquires, c.acquireSeconds} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	for name, s := range c.stats() {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		k := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name)
		}
		g(c.acquired, float64(s.AcquiredConns()))
		g(c.idle, float64(s.IdleConns()))
		g(c.total, float64(s.TotalConns()))
		g(c.max, float64(s.MaxConns()))
		k(c.acquires, float64(s.AcquireCount()))
		k(c.emptyAcquires, float64(s.EmptyAcquireCount()))
		k(c.acquireSeconds, s.AcquireDuration().Seconds())
	}
}

// PoolSet gathers the pools of one process for one PoolCollector (a
// registry takes one collector per metric name): the metadata pool, the
// data connections' pools, whatever is added as components are built.
type PoolSet struct {
	mu      sync.Mutex
	sources []func() map[string]*pgxpool.Stat
}

// AddPool adds pool under name.
func (s *PoolSet) AddPool(name string, pool *pgxpool.Pool) {
	s.AddSource(func() map[string]*pgxpool.Stat { return map[string]*pgxpool.Stat{name: pool.Stat()} })
}

// AddSource adds pools listed at each scrape.
func (s *PoolSet) AddSource(fn func() map[string]*pgxpool.Stat) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources = append(s.sources, fn)
}

// Stats returns every pool's statistics by name.
func (s *PoolSet) Stats() map[string]*pgxpool.Stat {
	s.mu.Lock()
	sources := append([]func() map[string]*pgxpool.Stat(nil), s.sources...)
	s.mu.Unlock()
	out := map[string]*pgxpool.Stat{}
	for _, fn := range sources {
		for k, v := range fn() {
			out[k] = v
		}
	}
	return out
}

// ClusterCollector reads the postgres broker's tables and the node
// registry at scrape time. Register it on one kind of node only (control),
// since every node would report the same numbers.
type ClusterCollector struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	timeout time.Duration

	backlog, oldest, deadLetters, nodes, up *prometheus.Desc
}

// NewClusterCollector returns a collector reading pool. A failed scrape
// reports meridian_cluster_scrape_ok 0 and logs at debug level.
func NewClusterCollector(pool *pgxpool.Pool, log *slog.Logger) *ClusterCollector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ClusterCollector{pool: pool, log: log, timeout: 2 * time.Second,
		backlog: prometheus.NewDesc("meridian_broker_backlog",
			"Messages not yet acked by a subscription (postgres broker).", []string{"topic", "subscription"}, nil),
		oldest: prometheus.NewDesc("meridian_broker_oldest_unacked_seconds",
			"Age of the oldest message a subscription has not acked: on invalidation subscriptions, the purge lag of that node.", []string{"topic", "subscription"}, nil),
		deadLetters: prometheus.NewDesc("meridian_broker_dead_letters",
			"Messages a subscription gave up on (postgres broker).", []string{"topic", "subscription"}, nil),
		nodes: prometheus.NewDesc("meridian_nodes",
			"Nodes in the registry, by component and state (ready, not_ready, stale).", []string{"component", "state"}, nil),
		up: prometheus.NewDesc("meridian_cluster_scrape_ok",
			"1 when the broker tables and node registry could be read.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ClusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.backlog, c.oldest, c.deadLetters, c.nodes, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ClusterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	err := c.collect(ctx, ch)
	ok := 1.0
	if err != nil {
		ok = 0
		c.log.Debug("collecting cluster metrics", "err", err)
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, ok)
}

func (c *ClusterCollector) collect(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.pool.Query(ctx, `
SELECT s.topic, s.name, count(d.message_id),
       COALESCE(EXTRACT(EPOCH FROM now() - min(m.published_at)), 0)::float8
FROM broker_subscriptions s
LEFT JOIN broker_deliveries d ON d.subscription = s.name
LEFT JOIN broker_messages m ON m.id = d.message_id
GROUP BY s.topic, s.name`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var topic, sub string
		var n int64
		var age float64
		if err := rows.Scan(&topic, &sub, &n, &age); err != nil {
			rows.Close()
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n), topic, sub)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, topic, sub)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = c.pool.Query(ctx, `SELECT topic, subscription, count(*) FROM broker_dead_letters GROUP BY 1, 2`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var topic, sub string
		var n int64
		if err := rows.Scan(&topic, &sub, &n); err != nil {
			rows.Close()
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.deadLetters, prometheus.GaugeValue, float64(n), topic, sub)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = c.pool.Query(ctx, `
SELECT component,
       CASE WHEN heartbeat_at < now() - interval '15 seconds' THEN 'stale' WHEN ready THEN 'ready' ELSE 'not_ready' END,
       count(*)
FROM nodes GROUP BY 1, 2`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var comp, state string
		var n int64
		if err := rows.Scan(&comp, &state, &n); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(n), comp, state)
	}
	return rows.Err()
}
