package netcluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokerconfig"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// TestClusterBench measures the cluster on this machine (all hosts share
// its cores): tile throughput through both edges with 1, 2 and 3 tiles
// hosts (cold: tiles never asked before; warm: tiles cached by the tiles
// nodes, the edge cache bypassed), publish-to-purged latency across both
// edges under load, and the time from kill -9 of a tiles host to the
// requests it held being served by another node. It only runs with
// MERIDIAN_CLUSTER_BENCH set and prints a JSON report (also written to
// MERIDIAN_CLUSTER_BENCH_OUT when set): 1 runs everything (about 3
// minutes); purge only publish-to-purged (about 2 minutes with the default
// MERIDIAN_CLUSTER_BENCH_TRIALS), purge-pubsub the same on the Pub/Sub
// broker (the pstest emulator). MERIDIAN_CLUSTER_BENCH_TRIALS_OUT gets the
// timestamps of every trial.
func TestClusterBench(t *testing.T) {
	if os.Getenv("MERIDIAN_CLUSTER_BENCH") == "" {
		t.Skip("set MERIDIAN_CLUSTER_BENCH=1 to run the cluster benchmark")
	}
	only := os.Getenv("MERIDIAN_CLUSTER_BENCH")
	var opts []options
	if only == "purge-pubsub" {
		opts = append(opts, options{pubsub: true})
	}
	c := startCluster(t, opts...)
	ctx := context.Background()
	data, err := pgxpool.New(ctx, c.dataURL)
	if err != nil {
		t.Fatal(err)
	}
	// A denser table for rendering work: 200k points.
	if _, err := data.Exec(ctx, `CREATE TABLE public.bench_points (cartodb_id serial PRIMARY KEY, v int, geom geometry(Point, 4326));
		SELECT setseed(0.7);
		INSERT INTO public.bench_points (v, geom) SELECT (random()*100)::int, ST_SetSRID(ST_MakePoint(random()*340-170, random()*160-80), 4326) FROM generate_series(1, 200000);
		CREATE INDEX ON public.bench_points USING gist (geom); ANALYZE public.bench_points;`); err != nil {
		t.Fatal(err)
	}
	data.Close()
	tok, _, err := tokenstore.New(c.meta, mustKeyring(t, c.key), nil).Create(ctx, tokenstore.Spec{Owner: "bench",
		Grants: []grant.Grant{{Connection: "local", Source: "public.bench_points"}, {Connection: "local", Source: "public.places"}}, APIs: []grant.API{grant.APIMaps}})
	if err != nil {
		t.Fatal(err)
	}
	c.token = tok
	bench := func(z, x, y int) string {
		return fmt.Sprintf("/api/v3/maps/local/table/%d/%d/%d?name=public.bench_points&formatTiles=mvt", z, x, y)
	}
	report := map[string]any{"cores": "shared by every host of the cluster and the load generator"}

	// Throughput with 3, 2, 1 tiles hosts (stopping one at a time).
	const dur = 4 * time.Second
	warmSet := []string{}
	for i := 0; i < 64; i++ {
		warmSet = append(warmSet, bench(6, i%64, (i*7)%64))
	}
	if only == "purge" || only == "purge-pubsub" {
		for _, p := range warmSet { // what the background load asks for
			for _, e := range edgeNodes {
				c.get(e, p)
			}
		}
		report["broker"] = c.brokerName()
		report["publish_to_purged_ms"] = c.benchPurge(t, warmSet, benchTrials())
		c.writeReport(t, report)
		return
	}
	throughput := map[string]any{}
	seed := uint64(100)
	// Warm PostgreSQL's buffers and every process once, so the first
	// measurement is not the only one paying for it.
	c.timedLoad(16, 3*time.Second, func(i int64) (string, bool) {
		return strings.Replace(coldTiles(99)(i), "public.places", "public.bench_points", 1), false
	})
	for n := 3; n >= 1; n-- {
		if n < 3 {
			c.procs[tilesNodes[n]].stop(syscall.SIGTERM, 30*time.Second)
			time.Sleep(2 * time.Second) // edges drop it from their upstreams
		}
		seed++
		s := seed
		cold := c.timedLoad(16, dur, func(i int64) (string, bool) {
			p := coldTiles(s)(i)
			return strings.Replace(p, "public.places", "public.bench_points", 1), false
		})
		for _, p := range warmSet { // fill the tiles nodes' caches
			c.get("e1", p)
		}
		warm := c.timedLoad(16, dur, func(i int64) (string, bool) { return warmSet[i%int64(len(warmSet))], true })
		throughput[fmt.Sprintf("%d_tiles_hosts", n)] = map[string]any{"cold_rps": cold.rps(), "cold_p99_ms": cold.p(0.99), "cold_failed": cold.failed,
			"warm_rps": warm.rps(), "warm_p99_ms": warm.p(0.99), "warm_failed": warm.failed}
		t.Logf("%d tiles hosts: cold %.0f tiles/s (p99 %.1f ms, %d failed), warm %.0f tiles/s (p99 %.1f ms, %d failed)",
			n, cold.rps(), cold.p(0.99), cold.failed, warm.rps(), warm.p(0.99), warm.failed)
	}
	report["throughput_through_2_edges"] = throughput
	for _, name := range tilesNodes[1:] {
		c.procs[name].start(t, c.bin)
	}
	c.waitReady(t, tilesNodes, 60*time.Second)
	time.Sleep(2 * time.Second)

	// Publish-to-purged across both edges, under a background load.
	report["publish_to_purged_ms"] = c.benchPurge(t, warmSet, benchTrials())

	// Kill -9 of a tiles host: how long the requests it held took to be
	// served by another node.
	var kill time.Time
	killed := make(chan struct{})
	go func() {
		time.Sleep(1500 * time.Millisecond)
		kill = time.Now()
		c.procs["t2"].stop(syscall.SIGKILL, time.Second)
		close(killed)
	}()
	seed++
	s := seed
	kr := c.timedLoad(8, 4*time.Second, func(i int64) (string, bool) {
		return strings.Replace(coldTiles(s)(i), "public.places", "public.bench_points", 1), false
	})
	<-killed
	var held []float64
	for _, r := range kr.samples {
		if r.start.Before(kill) && r.end.After(kill) {
			held = append(held, float64(r.end.Sub(kill).Microseconds())/1000)
		}
	}
	slices.Sort(held)
	worst := 0.0
	if len(held) > 0 {
		worst = held[len(held)-1]
	}
	report["kill9"] = map[string]any{"requests_in_flight_at_kill": len(held), "kill_to_last_of_them_served_ms": worst,
		"load_failed": kr.failed, "load_requests": len(kr.samples)}
	t.Logf("kill -9 of t2: %d requests in flight, all served by other nodes within %.1f ms of the kill; %d of %d failed",
		len(held), worst, kr.failed, len(kr.samples))
	c.writeReport(t, report)
}

// writeReport logs the report and writes it to MERIDIAN_CLUSTER_BENCH_OUT
// when set.
func (c *cluster) writeReport(t *testing.T, report map[string]any) {
	out, _ := json.MarshalIndent(report, "", "  ")
	t.Logf("report:\n%s", out)
	if path := os.Getenv("MERIDIAN_CLUSTER_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// benchTrials is the number of publish-to-purged trials:
// MERIDIAN_CLUSTER_BENCH_TRIALS, default 40 (each about 2.5 s, the edges'
// purge quarantine included; two samples, one per edge).
func benchTrials() int {
	if n, err := strconv.Atoi(os.Getenv("MERIDIAN_CLUSTER_BENCH_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 40
}

// purgeTrial is one publish and what each edge did with it.
type purgeTrial struct {
	ID        string               `json:"id"`
	Start     int64                `json:"start_ns"`     // Publish called
	Published int64                `json:"published_ns"` // Publish returned
	Edges     map[string]purgeSeen `json:"edges"`
}

// purgeSeen is how one edge's probe saw a purge: the last probe answered
// from the cache started at LastHit, the first one that was not started at
// Start and returned at End; then a plain GET (a miss, filled from a tiles
// node) returned at Served.
type purgeSeen struct {
	LastHit int64 `json:"last_hit_ns"`
	Start   int64 `json:"start_ns"`
	End     int64 `json:"end_ns"`
	Served  int64 `json:"served_ns"`
}

// benchPurge measures publish-to-purged on both edges under a paced
// background load of the cached warmSet tiles, over trials publishes.
//
// Each edge is probed with Cache-Control: only-if-cached requests (a hit,
// or a 504 once purged: the probe never waits for the origin) one
// millisecond apart; the sample is the end of the first probe that was not
// a hit. The report also gives the probes' own latency, the publish round
// trip, and the time until a plain GET after the purge was served (the
// miss filled from a tiles node), which is what the probe measured before
// it used only-if-cached.
func (c *cluster) benchPurge(t *testing.T, warmSet []string, trials int) map[string]any {
	ctx := context.Background()
	b := c.publisher(t)
	defer b.Close()
	// The background load is paced (about 1000 requests/s through the
	// edges): an unpaced one saturates the two cores every host shares,
	// and then measures the CPU queue rather than the purge path.
	stop := make(chan struct{})
	bg := make(chan *timedResult)
	go func() {
		var n atomic.Int64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		bg <- c.timedLoad(4, 10*time.Minute, func(i int64) (string, bool) {
			select {
			case <-tick.C:
			case <-stop:
			}
			return warmSet[n.Add(1)%int64(len(warmSet))], false
		}, stop)
	}()
	p := tilePath(0, 0, 0)
	probe := func(e string) (hit bool, err error) {
		req, _ := http.NewRequest("GET", "http://"+c.hosts[e].Addr(edgePort)+p, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Cache-Control", "only-if-cached")
		res, err := c.client.Do(req)
		if err != nil {
			return false, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 && res.StatusCode != http.StatusGatewayTimeout {
			return false, fmt.Errorf("probe of %s: status %d", e, res.StatusCode)
		}
		return isHit(res.Header), nil
	}
	var (
		lat, served, probes, publish []float64
		mu                           sync.Mutex
		log                          []purgeTrial
	)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for trial := 0; trial < trials; trial++ {
		c.waitCached(t, p, 10*time.Second, edgeNodes...)
		msg, _ := json.Marshal(cachetag.Invalidation{Tags: []string{cachetag.Source("local", "public.places")}, Reason: "bench"})
		start := time.Now()
		id, err := b.Publish(ctx, "invalidations", msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr := purgeTrial{ID: id, Start: start.UnixNano(), Published: time.Now().UnixNano(), Edges: map[string]purgeSeen{}}
		publish = append(publish, ms(time.Since(start)))
		var wg sync.WaitGroup
		for _, e := range edgeNodes {
			wg.Go(func() {
				var seen purgeSeen
				for time.Since(start) < 10*time.Second {
					s := time.Now()
					hit, err := probe(e)
					end := time.Now()
					mu.Lock()
					probes = append(probes, ms(end.Sub(s)))
					mu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
					if hit {
						seen.LastHit = s.UnixNano()
						time.Sleep(time.Millisecond)
						continue
					}
					seen.Start, seen.End = s.UnixNano(), end.UnixNano()
					c.get(e, p)
					now := time.Now()
					seen.Served = now.UnixNano()
					mu.Lock()
					lat = append(lat, ms(end.Sub(start)))
					served = append(served, ms(now.Sub(start)))
					tr.Edges[e] = seen
					mu.Unlock()
					return
				}
				t.Errorf("%s still served %s from its cache 10 s after the publish", e, p)
			})
		}
		wg.Wait()
		log = append(log, tr)
		time.Sleep(2100 * time.Millisecond) // the edges' purge quarantine
	}
	close(stop)
	bgr := <-bg
	if path := os.Getenv("MERIDIAN_CLUSTER_BENCH_TRIALS_OUT"); path != "" {
		out, _ := json.Marshal(log)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Error(err)
		}
	}
	q := quantiles(lat)
	t.Logf("publish to purged on both edges: %d samples, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (background load %.0f req/s, %d failed)",
		len(lat), q["p50"], q["p95"], q["p99"], q["max"], bgr.rps(), bgr.failed)
	q["samples"] = float64(len(lat))
	return map[string]any{"purged": q, "miss_served": quantiles(served), "probe_request": quantiles(probes),
		"publish_round_trip": quantiles(publish), "background_load_rps": bgr.rps(), "background_failed": bgr.failed}
}

// brokerName is the cluster's broker driver.
func (c *cluster) brokerName() string {
	if c.pubsubAddr != "" {
		return "pubsub"
	}
	return "postgres"
}

// publisher returns a client of the cluster's broker, for publishing.
func (c *cluster) publisher(t *testing.T) broker.Broker {
	if c.pubsubAddr == "" {
		return pgbroker.New(c.meta, pgbroker.Config{}, nil)
	}
	b, err := brokerconfig.Open(context.Background(), brokerconfig.Config{Driver: "pubsub", PubSubProject: "meridian-cluster",
		PubSubEndpoint: c.pubsubAddr, PubSubInsecure: true}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quantiles returns the p50, p95, p99 and max of xs (nearest rank).
func quantiles(xs []float64) map[string]float64 {
	if len(xs) == 0 {
		return map[string]float64{}
	}
	s := slices.Sorted(slices.Values(xs))
	q := func(f float64) float64 { return s[max(0, int(math.Ceil(f*float64(len(s))))-1)] }
	return map[string]float64{"p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": s[len(s)-1]}
}

type sample struct{ start, end time.Time }

type timedResult struct {
	samples []sample
	failed  int
	dur     time.Duration
}

func (r *timedResult) rps() float64 { return float64(len(r.samples)) / r.dur.Seconds() }

// p returns the q-quantile latency in milliseconds.
func (r *timedResult) p(q float64) float64 {
	if len(r.samples) == 0 {
		return 0
	}
	ls := make([]float64, len(r.samples))
	for i, s := range r.samples {
		ls[i] = float64(s.end.Sub(s.start).Microseconds()) / 1000
	}
	slices.Sort(ls)
	return ls[min(len(ls)-1, int(q*float64(len(ls))))]
}

// timedLoad runs workers for dur (or until stop) through both edges,
// alternating; path returns the path and whether to bypass the edge
// cache (Cache-Control: no-store).
func (c *cluster) timedLoad(workers int, dur time.Duration, path func(i int64) (string, bool), stop ...chan struct{}) *timedResult {
	var mu sync.Mutex
	r := &timedResult{}
	var n int64
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if len(stop) > 0 {
					select {
					case <-stop[0]:
						return
					default:
					}
				}
				mu.Lock()
				n++
				i := n
				mu.Unlock()
				p, bypass := path(i)
				req, _ := http.NewRequest("GET", "http://"+c.hosts[edgeNodes[i%2]].Addr(edgePort)+p, nil)
				req.Header.Set("Authorization", "Bearer "+c.token)
				if bypass {
					req.Header.Set("Cache-Control", "no-store")
				}
				s := time.Now()
				res, err := c.client.Do(req)
				ok := err == nil && (res.StatusCode == 200 || res.StatusCode == 204)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				e := time.Now()
				mu.Lock()
				r.samples = append(r.samples, sample{s, e})
				if !ok {
					r.failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.dur = time.Since(start)
	return r
}
