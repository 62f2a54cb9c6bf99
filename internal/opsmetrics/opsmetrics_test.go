package opsmetrics_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/internal/noderegistry"
	"github.com/meridian-gis/meridian/internal/opsmetrics"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func TestClusterAndPoolMetrics(t *testing.T) {
	db := pgtest.Meta(t)
	ctx := context.Background()
	// One subscription with two unacked messages, one dead letter, two nodes.
	for _, q := range []string{
		`INSERT INTO broker_subscriptions (name, topic, ack_deadline, max_attempts, min_backoff, max_backoff)
		 VALUES ('edge-e1-invalidations', 'invalidations', '30s', 5, '1s', '1m')`,
		`INSERT INTO broker_messages (topic, data, published_at) VALUES ('invalidations', '{}', now() - interval '40 seconds'), ('invalidations', '{}', now())`,
		`INSERT INTO broker_deliveries (subscription, message_id) SELECT 'edge-e1-invalidations', id FROM broker_messages`,
		`INSERT INTO broker_dead_letters (subscription, message_id, topic, data, published_at, attempts)
		 VALUES ('imports-workers', 99, 'imports', '{}', now(), 5)`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	noderegistry.Beat(ctx, db.Pool, noderegistry.Node{Component: "tiles", Name: "t1", StartedAt: time.Now(), Ready: true})
	noderegistry.Beat(ctx, db.Pool, noderegistry.Node{Component: "tiles", Name: "t2", StartedAt: time.Now(), Ready: false})

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(opsmetrics.NewClusterCollector(db.Pool, nil), opsmetrics.NewPoolCollector(db.Pool, "metadata"))
	got := gather(t, reg)
	for k, want := range map[string]float64{
		`meridian_broker_backlog{subscription="edge-e1-invalidations",topic="invalidations"}`: 2,
		`meridian_broker_dead_letters{subscription="imports-workers",topic="imports"}`:        1,
		`meridian_cluster_scrape_ok{}`:                        1,
		`meridian_nodes{component="tiles",state="not_ready"}`: 1,
		`meridian_nodes{component="tiles",state="ready"}`:     1,
		`meridian_db_pool_max_conns{pool="metadata"}`:         20,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if v := got[`meridian_broker_oldest_unacked_seconds{subscription="edge-e1-invalidations",topic="invalidations"}`]; v < 39 || v > 120 {
		t.Errorf("oldest unacked = %v s, want about 40", v)
	}

	// With the database gone the scrape still answers, saying so.
	db.Pool.Close()
	if v := gather(t, reg)[`meridian_cluster_scrape_ok{}`]; v != 0 {
		t.Errorf("meridian_cluster_scrape_ok = %v with the database closed, want 0", v)
	}
}

// gather returns every sample as name{label="value",...} -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}
