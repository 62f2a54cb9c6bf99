package tiles

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/geotest"
	"github.com/meridian-gis/meridian/tiles/internal/hangup"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

// These tests check that a request whose client closes its connection
// stops waiting, and that its query or render is cancelled unless another
// request waits for it (clientContext, fill).

func requireHangups(t *testing.T) {
	if !hangup.Supported {
		t.Skip("hang-ups are not detected on this platform")
	}
}

// marker returns a unique SQL identifier, to find a query in
// pg_stat_activity.
func marker(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// rawGet sends GET path on a new raw TCP connection and returns it
// without reading the answer.
func (e *env) rawGet(path string) net.Conn {
	e.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: tiles\r\nAuthorization: Bearer " + e.all + "\r\nAccept-Encoding: gzip\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// activeQueries counts the statements running on the data database whose
// text contains m (other than this one).
func (e *env) activeQueries(m string) int {
	return e.countQueries(m, "")
}

// sleepingQueries counts those of activeQueries that sleep in pg_sleep:
// they are executing. A statement is also active while it is parsed (the
// warm-up prepares it) and planned, and a cancel request that reaches the
// server between two protocol messages, before the execution starts, is
// dropped by PostgreSQL: a test that hangs up then waits for a
// cancellation hangs up on a sleeping statement.
func (e *env) sleepingQueries(m string) int {
	return e.countQueries(m, "PgSleep")
}

func (e *env) countQueries(m, waitEvent string) int {
	e.t.Helper()
	var n int
	err := e.db.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0 AND ($2 = '' OR wait_event = $2)", m, waitEvent).Scan(&n)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// waitFor polls cond for up to 15 s and fails the test when it stays false.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slowQuerySource is a query source of the places table whose render of
// the tile holding Paris sleeps for d (once, on that row; the one-row
// sample taken when the source is compiled is not Paris: checked here).
func (e *env) slowQuerySource(m string, d time.Duration) source.Spec {
	e.t.Helper()
	var first string
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT name FROM places WHERE geom IS NOT NULL LIMIT 1").Scan(&first); err != nil || first == "Paris" {
		e.t.Fatalf("first row of places = %q, %v: the compile-time sample would sleep", first, err)
	}
	return source.Spec{Conn: "pg", Type: source.TypeQuery, Geom: "geom", Resolution: 0.5,
		Query: fmt.Sprintf("SELECT geom, name, CASE WHEN name = 'Paris' THEN pg_sleep(%g)::text END AS %s FROM places", d.Seconds(), m)}
}

func TestClientGoneCancelsSQL(t *testing.T) {
	requireHangups(t)
	e := newEnv(t)
	for i, format := range []string{"json", "ndjson"} {
		t.Run(format, func(t *testing.T) {
			m := marker("gone_sql")
			c := e.rawGet("/api/v3/sql/pg/query?" + q("q", "SELECT pg_sleep(30) AS "+m, "format", format))
			waitFor(t, "the query runs", func() bool { return e.sleepingQueries(m) == 1 })
			c.Close()
			waitFor(t, "the query is cancelled", func() bool { return e.activeQueries(m) == 0 })
			if n := e.metric("meridian_tiles_client_gone_total"); n != float64(i+1) {
				t.Errorf("client_gone_total = %v, want %d", n, i+1)
			}
		})
	}
	// The engine (and its data connections) serve the next request.
	r := e.get("/api/v3/sql/pg/query?"+q("q", "SELECT 1 AS one"), bearer(e.all))
	if r.status != 200 || !strings.Contains(string(r.body), `"one":1`) {
		t.Errorf("next query: %d %s", r.status, r.body)
	}
}

func TestClientGoneCancelsTile(t *testing.T) {
	requireHangups(t)
	e := newEnv(t)
	m := marker("gone_tile")
	spec := e.slowQuerySource(m, 30*time.Second)
	c := e.rawGet("/api/v3/maps/pg/query/0/0/0?k=" + spec.Key())
	waitFor(t, "the render runs", func() bool { return e.sleepingQueries(m) == 1 })
	c.Close()
	waitFor(t, "the render is cancelled", func() bool { return e.activeQueries(m) == 0 })
	waitFor(t, "the fill is counted as abandoned", func() bool { return e.metric("meridian_tiles_fills_abandoned_total") == 1 })
	if n := e.metric("meridian_tiles_client_gone_total"); n != 1 {
		t.Errorf("client_gone_total = %v, want 1", n)
	}
	if n := e.srv.engine.FillsInFlight(); n != 0 {
		t.Errorf("fills in flight = %d, want 0", n)
	}
	// The next request renders (a table source, not the slow query).
	tmpl := e.tileTemplate(e.instantiate("table", e.all, "name", "places"), e.all)
	if r := e.get(expand(tmpl, 0, 0, 0), bearer(e.all), "Accept-Encoding: gzip"); r.status != 200 || !hasFeature(decodeTile(t, r), "name", "Paris") {
		t.Errorf("next tile: %d", r.status)
	}
}

func TestClientGoneSharedTileGoesOn(t *testing.T) {
	requireHangups(t)
	e := newEnv(t)
	m := marker("shared_tile")
	spec := e.slowQuerySource(m, 3*time.Second)
	path := "/api/v3/maps/pg/query/0/0/0?k=" + spec.Key()

	// The first client starts the render; the second joins it.
	first := e.rawGet(path)
	waitFor(t, "the render runs", func() bool { return e.sleepingQueries(m) == 1 })
	second := e.rawGet(path)
	waitFor(t, "the second request waits", func() bool { return e.metric("meridian_tiles_cache_lookups_total") == 2 })
	time.Sleep(100 * time.Millisecond) // from the cache miss into the shared fill

	// The first leaves: the render goes on for the second.
	first.Close()
	waitFor(t, "the first client's departure is seen", func() bool { return e.metric("meridian_tiles_client_gone_total") == 1 })
	if n := e.activeQueries(m); n != 1 {
		t.Errorf("running renders after the first client left = %d, want 1", n)
	}
	second.SetReadDeadline(time.Now().Add(time.Minute))
	res, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatalf("second client: %v", err)
	}
	defer res.Body.Close()
	r := resp{status: res.StatusCode, header: res.Header}
	if r.body, err = io.ReadAll(res.Body); err != nil {
		t.Fatalf("second client: reading the tile: %v", err)
	}
	if r.status != 200 || !hasFeature(decodeTile(t, r), "name", "Paris") {
		t.Fatalf("second client: %d, want the tile with Paris", r.status)
	}
	for name, want := range map[string]float64{
		"meridian_tiles_render_seconds":        1, // rendered once
		"meridian_tiles_fills_shared_total":    1,
		"meridian_tiles_fills_abandoned_total": 0,
	} {
		if got := e.metric(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestClientGoneAcrossNodes checks the same rules with peers: a node's
// fill waits on the key's owner through a peer request, which the owner
// counts as one waiter among others.
func TestClientGoneAcrossNodes(t *testing.T) {
	requireHangups(t)
	db := geotest.New(t)
	is := newIssuer(t)
	var lns [2]net.Listener
	var selves []string
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		selves = append(selves, "http://"+ln.Addr().String())
	}
	var nodes [2]*env
	for i := range nodes {
		nodes[i] = startEnv(t, db, is, withConfig(func(c *Config) {
			c.Peers.Addr = lns[i].Addr().String()
			c.Peers.Self = selves[i]
			c.Peers.List = selves
			c.Peers.Token = "peer-secret"
		}), func(s *envSetup) { s.peerLn = lns[i] })
	}
	// owner returns the node owning tile 0/0/0 of spec, and the other.
	owner := func(spec source.Spec) (own, other *env) {
		c, err := nodes[0].srv.engine.Source(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		if nodes[0].srv.engine.PeerOwner(c, tile.Coord{}) == selves[0] {
			return nodes[0], nodes[1]
		}
		return nodes[1], nodes[0]
	}

	t.Run("nobody waits", func(t *testing.T) {
		m := marker("gone_peer")
		spec := nodes[0].slowQuerySource(m, 30*time.Second)
		own, asker := owner(spec)
		c := asker.rawGet("/api/v3/maps/pg/query/0/0/0?k=" + spec.Key())
		// The asker compiling the source (its EXPLAIN carries the marker)
		// is an active query too: wait for the owner's render itself.
		waitFor(t, "the owner renders for the asker", func() bool {
			return own.metric("meridian_tiles_peer_requests_total") == 1 && asker.sleepingQueries(m) == 1
		})
		c.Close()
		waitFor(t, "the owner's render is cancelled", func() bool { return asker.activeQueries(m) == 0 })
		waitFor(t, "both fills are abandoned", func() bool {
			return asker.metric("meridian_tiles_fills_abandoned_total") == 1 && own.metric("meridian_tiles_fills_abandoned_total") == 1
		})
	})

	t.Run("the owner's client waits", func(t *testing.T) {
		m := marker("shared_peer")
		spec := nodes[0].slowQuerySource(m, 3*time.Second)
		own, asker := owner(spec)
		path := "/api/v3/maps/pg/query/0/0/0?k=" + spec.Key()
		peerReqs := own.metric("meridian_tiles_peer_requests_total")
		abandoned := own.metric("meridian_tiles_fills_abandoned_total")
		askerAbandoned := asker.metric("meridian_tiles_fills_abandoned_total")
		staying := own.rawGet(path)
		waitFor(t, "the owner renders", func() bool { return own.sleepingQueries(m) == 1 })
		leaving := asker.rawGet(path)
		waitFor(t, "the other node asks the owner", func() bool { return own.metric("meridian_tiles_peer_requests_total") == peerReqs+1 })
		time.Sleep(100 * time.Millisecond) // from the peer request into the shared fill
		leaving.Close()
		waitFor(t, "the other node's fill is abandoned", func() bool { return asker.metric("meridian_tiles_fills_abandoned_total") == askerAbandoned+1 })
		if n := own.activeQueries(m); n != 1 {
			t.Errorf("running renders after the other node gave up = %d, want 1", n)
		}
		staying.SetReadDeadline(time.Now().Add(time.Minute))
		res, err := http.ReadResponse(bufio.NewReader(staying), nil)
		if err != nil {
			t.Fatalf("owner's client: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("owner's client: %d, want 200", res.StatusCode)
		}
		if n := own.metric("meridian_tiles_fills_abandoned_total"); n != abandoned {
			t.Errorf("owner's abandoned fills = %v, want %v", n, abandoned)
		}
	})
}
