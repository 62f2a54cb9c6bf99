package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokerconfig"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/obs"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// origin is a stand-in for the tiles engine whose headers the test
// controls: every response is a 30 KiB tile tagged with its source.
type origin struct {
	url  string
	hits atomic.Int64
	// allow, when set, decides whether a token may have the tile (as the
	// tiles engine checks grants); nil allows everyone.
	allow func(token string) bool
}

func startOrigin(t *testing.T) *origin {
	o := &origin{}
	body := bytes.Repeat([]byte("m"), 30<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if o.allow != nil && strings.HasPrefix(r.URL.Path, "/api/") && !o.allow(tok) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":"no grant","status":403}`)
			return
		}
		src := r.URL.Query().Get("src")
		if src == "" {
			src = "public.countries"
		}
		w.Header().Set("Content-Type", "application/vnd.mapbox-vector-tile")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set(cachetag.Header, cachetag.Join(cachetag.Source("local", src), cachetag.Conn("local")))
		w.Write(body)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	o.url = "http://" + l.Addr().String()
	return o
}

// edgeNode is one `meridian run` process.
type edgeNode struct {
	name string
	base string
	cmd  *exec.Cmd
}

// startEdgeNode runs the test binary as `meridian run` with a Caddyfile whose
// site block is site (with %s for the origin), the meridian app on the
// test database and broker env.
func startEdgeNode(t *testing.T, name string, env []string, site string, o *origin) *edgeNode {
	t.Helper()
	port, admin := freePort(t), freePort(t)
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	meridian {
		database_url {env.MERIDIAN_DATABASE_URL}
		broker {env.MERIDIAN_BROKER} {env.MERIDIAN_PUBSUB_PROJECT}
		node {env.MERIDIAN_NODE}
	}
}
http://127.0.0.1:%d {
	%s
}
`, admin, port, fmt.Sprintf(site, o.url))
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env,
		envRunAsMeridian+"=1",
		envMeridianArgs+"="+strings.Join([]string{"run", "--config", path, "--adapter", "caddyfile"}, "\x1f"),
		"MERIDIAN_NODE="+name,
	)...)
	logf, _ := os.Create(filepath.Join(t.TempDir(), name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &edgeNode{name: name, base: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("node %s log tail:\n%s", name, b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge node %s did not listen within 60s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get fetches path from the node with an optional token and returns the
// status and the Cache-Status header.
func (n *edgeNode) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", n.base, path, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Cache-Status")
}

func isHit(cs string) bool { return strings.HasPrefix(cs, "meridian; hit") }

// waitMiss polls until path is no longer a hit on n, and returns how long
// that took.
func (n *edgeNode) waitMiss(t *testing.T, path string, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		_, cs := n.get(t, path, "")
		if !isHit(cs) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("node %s still serves %s from cache %v after the invalidation", n.name, path, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *edgeNode) warm(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		if _, cs := n.get(t, path, ""); isHit(cs) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("node %s never served %s from cache", n.name, path)
}

// Two edge nodes: an invalidation published once purges both; a node that
// is stopped (SIGSTOP) while one is published purges it when it resumes.
// On the postgres broker and on Pub/Sub (pstest).
func TestInvalidationReachesEveryEdgeNode(t *testing.T) {
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
			// No subscription is created here: each node creates its own before
			// its cache app finishes starting.
			o := startOrigin(t)
			site := "meridian_cache\n\treverse_proxy %s"
			nodes := []*edgeNode{startEdgeNode(t, "a", env, site, o), startEdgeNode(t, "b", env, site, o)}
			publish := func(tags ...string) time.Time {
				data, _ := json.Marshal(cachetag.Invalidation{Tags: tags, Reason: "test"})
				start := time.Now()
				if _, err := b.Publish(ctx, broker.TopicInvalidations, data, nil); err != nil {
					t.Fatal(err)
				}
				return start
			}

			const tile = "/api/v3/maps/local/table/3/4/2?src=public.countries"
			for _, n := range nodes {
				n.warm(t, tile)
			}
			start := publish(cachetag.Source("local", "public.countries"))
			for _, n := range nodes {
				t.Logf("node %s purged %v after publish", n.name, n.waitMiss(t, tile, start, 10*time.Second).Round(time.Millisecond))
			}

			// Node b stops (SIGSTOP) while an invalidation is published.
			const other = "/api/v3/maps/local/table/3/4/2?src=public.rivers"
			for _, n := range nodes {
				n.warm(t, other)
			}
			nodes[1].cmd.Process.Signal(syscall.SIGSTOP)
			start = publish(cachetag.Source("local", "public.rivers"))
			nodes[0].waitMiss(t, other, start, 10*time.Second)
			time.Sleep(time.Second)
			nodes[1].cmd.Process.Signal(syscall.SIGCONT)
			resumed := time.Now()
			t.Logf("node b, stopped during the publish, purged %v after it resumed",
				nodes[1].waitMiss(t, other, resumed, 15*time.Second).Round(time.Millisecond))
		})
	}
}

// A private tile cached for token A is refused to token B (no grant) and
// to an expired or revoked token, also when it is a hit; a response from a
// route without token checks is served to anyone.
func TestCachedTileNeverLeaks(t *testing.T) {
	db := pgtest.Meta(t)
	ctx := context.Background()
	key := secret.GenerateKey()
	kr, _ := secret.ParseKeyring(key)
	b, err := brokerconfig.Open(ctx, brokerconfig.Config{}, db.Pool, obs.NewLogger(io.Discard, obs.LogConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	store := tokenstore.New(db.Pool, kr, b)
	if _, err := store.EnsureSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	mk := func(src string, exp time.Time) (string, string) {
		tok, meta, err := store.Create(ctx, tokenstore.Spec{Owner: "test", ExpiresAt: exp,
			Grants: []grant.Grant{{Connection: "local", Source: src}}, APIs: []grant.API{grant.APIMaps}})
		if err != nil {
			t.Fatal(err)
		}
		return tok, meta.ID
	}
	tokA, _ := mk("public.countries", time.Time{})
	tokB, _ := mk("public.rivers", time.Time{})
	tokExp, _ := mk("public.countries", time.Now().Add(3*time.Second).Truncate(time.Second))
	tokRev, revID := mk("public.countries", time.Time{})

	o := startOrigin(t)
	// The origin, like the tiles engine, serves countries only to tokens
	// granting them.
	o.allow = func(tok string) bool { return tok == tokA || tok == tokExp || tok == tokRev }
	site := `route /api/* {
		meridian_auth
		meridian_cache {
			authorization_checked
		}
		reverse_proxy %[1]s
	}
	route /public/* {
		meridian_cache
		reverse_proxy %[1]s
	}`
	n := startEdgeNode(t, "leak", []string{"MERIDIAN_DATABASE_URL=" + db.URL}, site, o)

	// A TileJSON-style URL that does not name its source: the edge cannot
	// tell the source from the URL, so only the stored tags protect it.
	const tile = "/api/v3/maps/local/table/tiles/2/1/1?k=opaque"
	if code, cs := n.get(t, tile, tokA); code != 200 || isHit(cs) {
		t.Fatalf("token A first request = %d %q, want 200 miss", code, cs)
	}
	if code, cs := n.get(t, tile, tokA); code != 200 || !isHit(cs) {
		t.Fatalf("token A second request = %d %q, want 200 hit", code, cs)
	}
	hits := o.hits.Load()
	if code, cs := n.get(t, tile, tokB); code != http.StatusForbidden || isHit(cs) {
		t.Errorf("token B (no grant) = %d %q, want 403 and not a hit", code, cs)
	}
	if o.hits.Load() != hits+1 {
		t.Errorf("token B's request did not go to the origin, which decides")
	}
	if code, _ := n.get(t, tile, ""); code != http.StatusUnauthorized {
		t.Errorf("no token = %d, want 401", code)
	}
	if code, _ := n.get(t, tile, tokA+"x"); code != http.StatusUnauthorized {
		t.Errorf("tampered token = %d, want 401", code)
	}
	// A URL naming a source the token lacks is refused before the cache.
	if code, _ := n.get(t, "/api/v3/maps/local/table?name=public.countries", tokB); code != http.StatusForbidden {
		t.Errorf("token B naming public.countries = %d, want 403", code)
	}

	// Revoked: refused, even though the tile is a hit for it a moment ago.
	if code, cs := n.get(t, tile, tokRev); code != 200 || !isHit(cs) {
		t.Fatalf("token to be revoked, before = %d %q, want 200 hit", code, cs)
	}
	if err := store.Revoke(ctx, revID); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		code, _ := n.get(t, tile, tokRev)
		if code == http.StatusUnauthorized {
			t.Logf("revoked token refused %v after Revoke", time.Since(revoked).Round(time.Millisecond))
			break
		}
		if time.Since(revoked) > 5*time.Second {
			t.Fatalf("revoked token still answered %d after 5s", code)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Expired: refused once its time has passed.
	if code, cs := n.get(t, tile, tokExp); code != 200 || !isHit(cs) {
		t.Fatalf("token about to expire = %d %q, want 200 hit", code, cs)
	}
	time.Sleep(time.Until(time.Now().Add(4 * time.Second)))
	if code, _ := n.get(t, tile, tokExp); code != http.StatusUnauthorized {
		t.Errorf("expired token = %d, want 401", code)
	}

	// A public route (no token checks) serves its cached response to anyone.
	const pub = "/public/countries/0/0/0"
	n.get(t, pub, "")
	if code, cs := n.get(t, pub, ""); code != 200 || !isHit(cs) {
		t.Errorf("public route second request = %d %q, want 200 hit", code, cs)
	}
}
