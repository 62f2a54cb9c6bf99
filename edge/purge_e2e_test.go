package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokerconfig"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/obs"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

// Two edge nodes: a purge by URL and a purge by prefix, published once as
// the admin API publishes them, purge exactly what they name on both.
func TestURLAndPrefixPurgesReachEveryEdgeNode(t *testing.T) {
	for _, driver := range []string{"postgres", "pubsub"} {
		t.Run(driver, func(t *testing.T) {
			db := pgtest.Meta(t)
			env := []string{"MERIDIAN_DATABASE_URL=" + db.URL, "MERIDIAN_BROKER=" + driver}
			bc := brokerconfig.Config{Driver: driver}
			if driver == "pubsub" {
				srv := pstest.NewServer()
				t.Cleanup(func() { srv.Close() })
				env = append(env, "MERIDIAN_PUBSUB_PROJECT=meridian-test", "PUBSUB_EMULATOR_HOST="+srv.Addr)
				bc.PubSubProject, bc.PubSubEndpoint, bc.PubSubInsecure = "meridian-test", srv.Addr, true
			}
			ctx := context.Background()
			b, err := brokerconfig.Open(ctx, bc, db.Pool, obs.NewLogger(io.Discard, obs.LogConfig{}))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			o := startOrigin(t)
			site := "meridian_cache\n\treverse_proxy %s"
			nodes := []*edgeNode{startEdgeNode(t, "a", env, site, o), startEdgeNode(t, "b", env, site, o)}
			publish := func(inv cachetag.Invalidation) time.Time {
				t.Helper()
				if err := inv.Validate(); err != nil {
					t.Fatal(err)
				}
				data, _ := json.Marshal(inv)
				start := time.Now()
				if _, err := b.Publish(ctx, broker.TopicInvalidations, data, nil); err != nil {
					t.Fatal(err)
				}
				return start
			}
			const (
				tile      = "/api/v3/maps/local/table/3/4/2?src=public.countries"
				sameQuery = "/api/v3/maps/local/table/3/4/2?src=public.rivers" // same path, another query
				column    = "/api/v3/maps/local/table/3/5/1?src=public.countries"
				otherMap  = "/api/v3/maps/other/table/3/5/1"
			)
			all := []string{tile, sameQuery, column, otherMap}
			warmAll := func() {
				for _, n := range nodes {
					for _, p := range all {
						n.warm(t, p)
					}
				}
			}
			// expectHits checks, once the purge has reached both nodes (the
			// purged paths are misses), that the others are still hits.
			expectHits := func(what string, purged map[string]bool) {
				t.Helper()
				for _, n := range nodes {
					for _, p := range all {
						if purged[p] {
							continue
						}
						if _, cs := n.get(t, p, ""); !isHit(cs) {
							t.Errorf("node %s after %s: %s is %q, want still a hit", n.name, what, p, cs)
						}
					}
				}
			}

			warmAll()
			start := publish(cachetag.Invalidation{URLs: []string{tile + "&access_token=ignored"}, Reason: "test url purge"})
			for _, n := range nodes {
				t.Logf("node %s purged the URL %v after publish", n.name, n.waitMiss(t, tile, start, 10*time.Second).Round(time.Millisecond))
			}
			expectHits("the URL purge", map[string]bool{tile: true})

			warmAll()
			start = publish(cachetag.Invalidation{Prefixes: []string{"/api/v3/maps/local/table/3/5"}, Reason: "test prefix purge"})
			for _, n := range nodes {
				t.Logf("node %s purged the prefix %v after publish", n.name, n.waitMiss(t, column, start, 10*time.Second).Round(time.Millisecond))
			}
			expectHits("the prefix purge", map[string]bool{column: true})

			// A URL with a host purges it on that host only: node a's.
			warmAll()
			start = publish(cachetag.Invalidation{URLs: []string{nodes[0].base + otherMap}, Prefixes: []string{strings.ToUpper(nodes[0].base) + "/api/v3/maps/local/table/3/4/"}, Reason: "test host purge"})
			nodes[0].waitMiss(t, otherMap, start, 10*time.Second)
			nodes[0].waitMiss(t, tile, start, 10*time.Second)
			nodes[0].waitMiss(t, sameQuery, start, 10*time.Second)
			time.Sleep(500 * time.Millisecond) // node b has had the message as long
			for _, p := range all {
				if _, cs := nodes[1].get(t, p, ""); !isHit(cs) {
					t.Errorf("node b after purges on node a's host: %s is %q, want a hit", p, cs)
				}
			}
		})
	}
}
