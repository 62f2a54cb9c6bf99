package netcluster_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokerconfig"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

// TestClusterPubSub runs the cluster on the Pub/Sub broker (the pstest
// emulator on its own host, as a managed Pub/Sub would be): an import
// purges every host, and while the broker host is cut off the edges keep
// serving from their caches, an invalidation published meanwhile is
// applied by both edges once the broker is reachable again, and an import
// queued before the outage completes after it.
func TestClusterPubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-host cluster test: not with -short")
	}
	start := time.Now()
	c := startCluster(t, options{pubsub: true})
	t.Logf("cluster on Pub/Sub up in %v (namespaces: %v)", time.Since(start).Round(time.Millisecond), !c.net.Fallback)

	t.Run("one import purges every edge and tiles host", func(t *testing.T) { c.importPurgesEverywhere(t) })
	t.Run("broker outage under load", func(t *testing.T) {
		if c.net.Fallback {
			t.Skip("a broker outage is a partition of its host: needs network namespaces")
		}
		c.brokerOutage(t)
	})
}

func (c *cluster) brokerOutage(t *testing.T) {
	ctx := context.Background()
	p := tilePath(0, 0, 0)
	old := c.tileEverywhere(t, p)
	c.waitCached(t, p, 30*time.Second, edgeNodes...)
	b, err := brokerconfig.Open(ctx, brokerconfig.Config{Driver: "pubsub", PubSubProject: "meridian-cluster",
		PubSubEndpoint: c.pubsubAddr, PubSubInsecure: true}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	stop := make(chan struct{})
	done := make(chan *loadResult)
	go func() {
		done <- c.load(4, 20000, 40*time.Second, func(int64) string { return p }, stop)
	}()
	time.Sleep(500 * time.Millisecond)
	// Into another table: the worker may take it before the partition
	// lands, and its invalidation must not change the tile watched here.
	queued := c.sendImportTo(t, "public.outage_places", geojsonPoints("queued", "before", "the", "broker", "outage"))
	if err := c.hosts["ps"].Partition(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	// Published while the broker is unreachable: the client retries until
	// it is back.
	published := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		data, _ := json.Marshal(cachetag.Invalidation{Tags: []string{cachetag.Source("local", "public.places")}, Reason: "during the broker outage"})
		_, err := b.Publish(pctx, broker.TopicInvalidations, data, nil)
		published <- err
	}()
	time.Sleep(4 * time.Second)
	// Both edges still answer from their caches.
	for _, e := range edgeNodes {
		if _, h, body, err := c.get(e, p); err != nil || !isHit(h) || digest(body) != old[e] {
			t.Errorf("%s during the broker outage: %v, Cache-Status %q", e, err, h.Get("Cache-Status"))
		}
	}
	if err := c.hosts["ps"].Heal(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker host cut off for %v", time.Since(down).Round(time.Millisecond))
	healed := time.Now()
	if err := <-published; err != nil {
		t.Fatalf("publishing across the outage: %v", err)
	}
	for e, d := range c.waitPurged(t, p, healed, 30*time.Second, edgeNodes...) {
		t.Logf("%s applied the invalidation published during the outage %v after the broker came back", e, d.Round(time.Millisecond))
	}
	close(stop)
	(<-done).check(t, "tiles through both edges across the broker outage")
	c.waitImport(t, queued, 90*time.Second)
	t.Logf("the import queued before the broker outage succeeded %v after the broker came back", time.Since(healed).Round(time.Millisecond))
}
