package netcluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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
// MERIDIAN_CLUSTER_BENCH=1 (about 1 minute) and prints a JSON report.
func TestClusterBench(t *testing.T) {
	if os.Getenv("MERIDIAN_CLUSTER_BENCH") == "" {
		t.Skip("set MERIDIAN_CLUSTER_BENCH=1 to run the cluster benchmark")
	}
	c := startCluster(t)
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
	b := pgbroker.New(c.meta, pgbroker.Config{}, nil)
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
		bg <- c.timedLoad(4, 2*time.Minute, func(i int64) (string, bool) {
			select {
			case <-tick.C:
			case <-stop:
			}
			return warmSet[n.Add(1)%int64(len(warmSet))], false
		}, stop)
	}()
	p := tilePath(0, 0, 0)
	var lat []float64
	for trial := 0; trial < 12; trial++ {
		c.waitCached(t, p, 10*time.Second, edgeNodes...)
		msg, _ := json.Marshal(cachetag.Invalidation{Tags: []string{cachetag.Source("local", "public.places")}, Reason: "bench"})
		start := time.Now()
		if _, err := b.Publish(ctx, "invalidations", msg, nil); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, e := range edgeNodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < 10*time.Second {
					if _, h, _, _ := c.get(e, p); !isHit(h) {
						mu.Lock()
						lat = append(lat, float64(time.Since(start).Microseconds())/1000)
						mu.Unlock()
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		wg.Wait()
		time.Sleep(2100 * time.Millisecond) // the edges' purge quarantine
	}
	close(stop)
	bgr := <-bg
	slices.Sort(lat)
	q := func(f float64) float64 { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	report["publish_to_purged_ms"] = map[string]any{"samples": len(lat), "p50": q(0.5), "p99": q(0.99), "max": lat[len(lat)-1],
		"background_load_rps": bgr.rps(), "background_failed": bgr.failed}
	t.Logf("publish to purged on both edges: %d samples, p50 %.1f ms, p99 %.1f ms (background load %.0f req/s, %d failed)",
		len(lat), q(0.5), q(0.99), bgr.rps(), bgr.failed)

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
	out, _ := json.MarshalIndent(report, "", "  ")
	t.Logf("report:\n%s", out)
	if path := os.Getenv("MERIDIAN_CLUSTER_BENCH_OUT"); path != "" {
		os.WriteFile(path, out, 0o644)
	}
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
