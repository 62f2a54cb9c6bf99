package netcluster_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCluster runs Meridian on eight hosts (PostgreSQL with the postgres
// broker; control; worker; edges e1, e2; tiles t1, t2, t3), every one the
// same meridian binary, and puts it through what clusters go through. The
// scenarios share the cluster and run in order; each load is bounded in
// requests and time.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-host cluster test: not with -short")
	}
	start := time.Now()
	c := startCluster(t)
	t.Logf("cluster up in %v (namespaces: %v)", time.Since(start).Round(time.Millisecond), !c.net.Fallback)

	t.Run("each tile rendered once across the cluster", func(t *testing.T) { c.renderedOnce(t) })
	t.Run("one import purges every edge and tiles host", func(t *testing.T) { c.importPurgesEverywhere(t) })
	t.Run("kill -9 of a tiles host under load", func(t *testing.T) { c.killTiles(t) })
	t.Run("rolling restart under load", func(t *testing.T) { c.rollingRestart(t) })
	t.Run("postgres and broker outage under load", func(t *testing.T) { c.postgresOutage(t) })
	t.Run("partitioned edge catches up on purges", func(t *testing.T) { c.partitionEdge(t) })
	t.Run("admin API sees every node and purges across the cluster", func(t *testing.T) { c.adminAPI(t) })
	t.Run("admin console in Chromium", func(t *testing.T) { c.adminConsole(t) })
}

// adminCall calls the admin API through edge e1.
func (c *cluster) adminCall(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+c.hosts["e1"].Addr(edgePort)+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v map[string]any
	json.NewDecoder(res.Body).Decode(&v)
	return res.StatusCode, v
}

// The admin API (through an edge, served by control) lists every node of
// every host, ready, with each edge's cache counters, and one purge by tag
// empties that source from both edges.
func (c *cluster) adminAPI(t *testing.T) {
	want := map[string]bool{"e1": true, "e2": true, "t1": true, "t2": true, "t3": true, "ctl": true, "wrk": true}
	var nodes []any
	for deadline := time.Now().Add(15 * time.Second); ; {
		_, v := c.adminCall(t, "GET", "/api/admin/nodes", "")
		nodes, _ = v["nodes"].([]any)
		ready := 0
		for _, n := range nodes {
			m := n.(map[string]any)
			if want[m["name"].(string)] && m["ready"] == true && m["alive"] == true {
				ready++
			}
		}
		if ready == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin nodes = %v, want %d ready nodes", v, len(want))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, n := range nodes {
		m := n.(map[string]any)
		if m["address"] == "" || m["version"] == nil {
			t.Errorf("node %v lacks address or version", m)
		}
	}
	p := tilePath(0, 0, 0)
	c.waitCached(t, p, 30*time.Second, edgeNodes...)
	if code, v := c.adminCall(t, "POST", "/api/admin/purge", `{"tags":["src:local/public.places"]}`); code != 202 {
		t.Fatalf("admin purge = %d %v", code, v)
	}
	c.waitPurged(t, p, time.Now(), 10*time.Second, edgeNodes...)
	// A purge by URL empties that URL only, and one by prefix the tiles
	// under it, from both edges.
	other, under, outside := tilePath(1, 0, 0), tilePath(1, 1, 0), tilePath(2, 0, 0)
	for _, q := range []string{p, other, under, outside} {
		c.waitCached(t, q, 30*time.Second, edgeNodes...)
	}
	start := time.Now()
	if code, v := c.adminCall(t, "POST", "/api/admin/purge", `{"urls":["`+p+`&access_token=ignored"]}`); code != 202 {
		t.Fatalf("admin purge by URL = %d %v", code, v)
	}
	t.Logf("purge by URL reached both edges: %v", c.waitPurged(t, p, start, 10*time.Second, edgeNodes...))
	stillCached := func(q string) {
		t.Helper()
		for _, e := range edgeNodes {
			if _, h, _, err := c.get(e, q); err != nil || !isHit(h) {
				t.Errorf("%s: %s is not a hit any more (%v %v)", e, q, h.Get("Cache-Status"), err)
			}
		}
	}
	stillCached(other)
	start = time.Now()
	if code, v := c.adminCall(t, "POST", "/api/admin/purge", `{"prefix":"/api/v3/maps/local/table/1/1"}`); code != 202 {
		t.Fatalf("admin purge by prefix = %d %v", code, v)
	}
	t.Logf("purge by prefix reached both edges: %v", c.waitPurged(t, under, start, 10*time.Second, edgeNodes...))
	stillCached(other)
	stillCached(outside)
	// Cache counters of both edges arrive with their heartbeats.
	for deadline := time.Now().Add(15 * time.Second); ; {
		_, v := c.adminCall(t, "GET", "/api/admin/cache", "")
		edges, _ := v["edges"].([]any)
		withStats := 0
		for _, e := range edges {
			st, _ := e.(map[string]any)["stats"].(map[string]any)
			if st["hits_total"] != nil && st["hits_total"].(float64) > 0 {
				withStats++
			}
		}
		if withStats == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin cache = %v, want hit counters of both edges", v)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Tiles asked through both edges (separate caches) are rendered once in
// the whole cluster: the second edge's miss is served from groupcache.
func (c *cluster) renderedOnce(t *testing.T) {
	loads := func() (sum float64) {
		for _, n := range tilesNodes {
			sum += c.tilesMetric(t, n, "meridian_tiles_groupcache_local_loads_total")
		}
		return sum
	}
	before := loads()
	const n = 12
	for i := 0; i < n; i++ {
		p := tilePath(4, i, (i*5)%16)
		var bodies []string
		for _, e := range []string{"e1", "e2", "e1", "e2"} {
			code, _, body, err := c.get(e, p)
			if err != nil || (code != 200 && code != 204) {
				t.Fatalf("%s %s = %d %v", e, p, code, err)
			}
			bodies = append(bodies, digest(body))
		}
		if bodies[0] != bodies[1] || bodies[0] != bodies[2] || bodies[0] != bodies[3] {
			t.Errorf("%s differs between edges: %v", p, bodies)
		}
	}
	// The tiles nodes that rendered report their data connection pool.
	reporting := 0
	for _, node := range tilesNodes {
		if max := c.metric(t, "http://"+c.hosts[node].Addr(tilesPort)+"/metrics", `meridian_db_pool_max_conns{pool="data/local"}`); max > 0 {
			reporting++
		}
	}
	if reporting == 0 {
		t.Error("no tiles node reports meridian_db_pool_max_conns for data/local")
	}
	if got := loads() - before; got != n {
		t.Errorf("tiles rendered (groupcache local loads) = %v for %d distinct tiles asked 4 times through 2 edges, want %d", got, n, n)
	}
}

// tileEverywhere fetches p from both edges and, directly, from every tiles
// node; it returns each answer's digest by node.
func (c *cluster) tileEverywhere(t *testing.T, p string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range edgeNodes {
		code, _, body, err := c.get(e, p)
		if err != nil || code != 200 {
			t.Fatalf("%s %s = %d %v", e, p, code, err)
		}
		out[e] = digest(body)
	}
	for _, n := range tilesNodes {
		code, body := c.direct(t, n, p)
		if code != 200 {
			t.Fatalf("tiles %s %s = %d", n, p, code)
		}
		out[n] = digest(body)
	}
	return out
}

// One import (through the edge, run by the worker) purges the tile on
// both edges and on every tiles node.
func (c *cluster) importPurgesEverywhere(t *testing.T) {
	p := tilePath(0, 0, 0)
	old := c.tileEverywhere(t, p)
	for _, e := range edgeNodes {
		if _, h, _, _ := c.get(e, p); !isHit(h) {
			t.Fatalf("%s: tile not cached before the import (Cache-Status %q)", e, h.Get("Cache-Status"))
		}
	}
	start := time.Now()
	c.upload(t, geojsonPoints("alpha", "beta", "gamma"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := c.tileEverywhere(t, p)
		stale := []string{}
		for node, d := range now {
			if d == old[node] || d != now["t1"] {
				stale = append(stale, node)
			}
		}
		if len(stale) == 0 {
			t.Logf("import done and purged on 2 edges + 3 tiles hosts %v after the upload", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the import, %v still serve the old tile (%v, before %v)", stale, now, old)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A bounded load through both edges loses no request when a tiles host is
// killed with SIGKILL; the host comes back and takes its share.
func (c *cluster) killTiles(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan *loadResult)
	go func() { done <- c.load(6, 6000, 12*time.Second, coldTiles(1), stop) }()
	time.Sleep(2 * time.Second)
	killed := time.Now()
	c.procs["t2"].stop(syscall.SIGKILL, time.Second)
	time.Sleep(2 * time.Second)
	c.procs["t2"].start(t, c.bin)
	c.waitReady(t, []string{"t2"}, 60*time.Second)
	t.Logf("t2 killed and back, ready in the registry, %v after the kill", time.Since(killed).Round(time.Millisecond))
	r := <-done
	r.check(t, "load across kill -9 of t2")

	// Back in rotation: t2 answers its share of a fresh load (once the
	// edges' passive failure marks of the kill, 2s, have expired).
	time.Sleep(2 * time.Second)
	before := c.tilesMetric(t, "t2", "meridian_tiles_tiles_served_total")
	r2 := c.load(6, 1500, 4*time.Second, coldTiles(2), nil)
	r2.check(t, "load after t2 came back")
	share := (c.tilesMetric(t, "t2", "meridian_tiles_tiles_served_total") - before) / float64(r2.total.Load())
	t.Logf("t2 answered %.0f%% of the load after it came back", share*100)
	if share < 0.15 {
		t.Errorf("t2 answered %.0f%% of the requests after coming back, want its share (>= 15%% of 3 nodes)", share*100)
	}
}

// Every component, one host at a time, restarts (SIGTERM, start, ready)
// while a load runs through the edges: no request fails.
func (c *cluster) rollingRestart(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan *loadResult)
	go func() { done <- c.load(4, 50000, 3*time.Minute, coldTiles(3), stop) }()
	for _, name := range []string{"t1", "t2", "t3", "ctl", "wrk", "e1", "e2"} {
		start := time.Now()
		c.procs[name].stop(syscall.SIGTERM, 30*time.Second)
		c.procs[name].start(t, c.bin)
		c.waitReady(t, []string{name}, 60*time.Second)
		t.Logf("%s restarted in %v", name, time.Since(start).Round(time.Millisecond))
	}
	close(stop)
	(<-done).check(t, "load across the rolling restart")
}

// PostgreSQL (the metadata database, data connection and broker) stops
// under load: cached tiles keep being served; after it is back an import
// purges both edges, whose broker connections had died.
func (c *cluster) postgresOutage(t *testing.T) {
	var warm []string
	for i := 0; i < 16; i++ {
		p := tilePath(3, i%8, (i*3)%8)
		warm = append(warm, p)
		for _, e := range edgeNodes {
			for k := 0; k < 2; k++ {
				if code, _, _, err := c.get(e, p); err != nil || (code != 200 && code != 204) {
					t.Fatalf("warming %s on %s = %d %v", p, e, code, err)
				}
			}
		}
	}
	stop := make(chan struct{})
	done := make(chan *loadResult)
	go func() {
		done <- c.load(4, 20000, 40*time.Second, func(i int64) string { return warm[i%int64(len(warm))] }, stop)
	}()
	time.Sleep(time.Second)
	// An import queued just before the outage is not lost: it completes
	// once the database is back (redelivered if the worker failed on it).
	queued := c.sendImport(t, geojsonPoints("queued", "before", "the", "outage"))
	c.procs["pg"].stop(syscall.SIGINT, 20*time.Second)
	down := time.Now()
	time.Sleep(4 * time.Second)
	c.startPG(t)
	t.Logf("postgres down for %v", time.Since(down).Round(time.Millisecond))
	time.Sleep(time.Second)
	close(stop)
	(<-done).check(t, "cached tiles during the postgres outage")
	c.waitImport(t, queued, 90*time.Second)
	t.Logf("the import queued before the outage succeeded %v after postgres went down", time.Since(down).Round(time.Millisecond))

	// Invalidations flow again through the broker once it is back.
	p := tilePath(0, 0, 0)
	old := c.tileEverywhere(t, p)
	c.upload(t, geojsonPoints("after", "the", "outage", "!"))
	c.waitNewEverywhere(t, p, old, 20*time.Second)
}

// waitNewEverywhere polls until every node serves a tile differing from
// old, the same everywhere.
func (c *cluster) waitNewEverywhere(t *testing.T, p string, old map[string]string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		now := c.tileEverywhere(t, p)
		ok := true
		for node, d := range now {
			if d == old[node] || d != now["t1"] {
				ok = false
			}
		}
		if ok {
			t.Logf("new data on every node %v after the import", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > limit {
			t.Fatalf("%v after the import some nodes serve the old tile: %v (before %v)", limit, now, old)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Edge e2 is cut off (its veth down) while an import changes the data;
// once it is back it applies the purge it missed.
func (c *cluster) partitionEdge(t *testing.T) {
	if c.net.Fallback {
		t.Skip("partitions need network namespaces (loopback fallback in use)")
	}
	p := tilePath(0, 0, 0)
	old := c.tileEverywhere(t, p)
	// After the last import, tiles are briefly served uncacheable (the
	// engine's post-invalidation hold): wait until e2 holds the tile.
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, h, body, _ := c.get("e2", p)
		if isHit(h) && digest(body) == old["e2"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2: tile not cached before the partition (Cache-Status %q)", h.Get("Cache-Status"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := c.hosts["e2"].Partition(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.upload(t, geojsonPoints("while", "e2", "was", "away", "!"))
	// e1 has it; e2 is unreachable.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, body, err := c.get("e1", p)
		if err == nil && digest(body) != old["e1"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("e1 did not purge within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	healed := time.Now()
	if err := c.hosts["e2"].Heal(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, _, body, err := c.get("e2", p)
		if err == nil && code == 200 && digest(body) != old["e2"] {
			t.Logf("e2 caught up on the purge %v after its network came back", time.Since(healed).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2 still serves the old tile 30s after the partition healed (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
