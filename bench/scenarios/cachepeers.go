package scenarios

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/peers"
	"github.com/meridian-gis/meridian/bench/proc"
)

// What the edge-cache scenarios (cache-hit, cache-hit-h2) share: the
// object, the origin check, the edge build and the hit checks of each
// cache.

// tilePath is the URL path every cache variant is loaded with.
const tilePath = "/tiles/bench/12/2047/1362.mvt"

// maxOriginRequests is how many requests the origin may see during a
// measured run before the run fails: a cache that serves hits sends none;
// a few are allowed for an expiry or a background refresh.
const maxOriginRequests = 5

// tileBody returns n bytes of base64 text derived from object: as
// incompressible as text gets, and fit for a Caddyfile `respond` (no
// backtick, no brace), so that every variant serves exactly these bytes.
func tileBody(n int) []byte {
	enc := base64.RawStdEncoding
	b := make([]byte, enc.EncodedLen(n))
	enc.Encode(b, object(n))
	return b[:n]
}

// cacheTarget is one variant of an edge-cache scenario, started and
// checked by Setup.
type cacheTarget struct {
	// url is the loaded URL.
	url string
	// server is the variant's process.
	server *peers.Server
	// origin is the origin the variant caches; nil when it serves the body
	// itself (caddy-static).
	origin *peers.Origin
	// skip is why the variant cannot run here; the rest is then unset.
	skip string
}

// before checks the target is up and returns the origin's request count.
func (t *cacheTarget) before() (uint64, error) {
	if t.skip != "" {
		return 0, bench.Skip("%s", t.skip)
	}
	if err := t.server.Alive(); err != nil {
		return 0, err
	}
	if t.origin == nil {
		return 0, nil
	}
	return t.origin.Requests(), nil
}

// after adds the origin's request count during the run to res (a note
// and the "origin" metric) and fails the run when the cache forwarded
// more than maxOriginRequests.
func (t *cacheTarget) after(variant string, start uint64, res bench.Result) (bench.Result, error) {
	if t.origin == nil {
		return res, nil
	}
	n := t.origin.Requests() - start
	res.Notes = append(res.Notes, fmt.Sprintf("origin requests during the run: %d", n))
	res.Secondary = append(res.Secondary, bench.Metric{Name: "origin", Unit: "req", Better: bench.LowerIsBetter, Value: float64(n)})
	if n > maxOriginRequests {
		return res, fmt.Errorf("the origin served %d requests during the run (at most %d allowed): %s is not answering from its cache",
			n, maxOriginRequests, variant)
	}
	return res, nil
}

// cleanup is a stack of stop functions, run in reverse order.
type cleanup []func(context.Context) error

func (c *cleanup) add(f func(context.Context) error) { *c = append(*c, f) }

// run stops everything, last started first.
func (c cleanup) run(ctx context.Context) error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i](ctx))
	}
	return errors.Join(errs...)
}

// peerLifetime bounds the life of the peer processes of a scenario: the
// Runner's worst case (every run hitting its timeout, a few warm-up
// rounds) plus slack. The teardown stops them long before.
func peerLifetime(env *bench.Env, variants int) time.Duration {
	perRun := 4*env.Duration + 30*time.Second
	return time.Duration((env.Rounds+4)*variants)*perRun + 10*time.Minute
}

// openScratch makes the scenario's TempDir searchable by the peers'
// unprivileged users (varnishd's and nginx's workers drop root) and
// returns a new subfolder of it.
func openScratch(env *bench.Env, name string) (string, error) {
	if err := os.Chmod(env.TempDir, 0o755); err != nil {
		return "", fmt.Errorf("opening scratch dir: %w", err)
	}
	dir := filepath.Join(env.TempDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating scratch dir: %w", err)
	}
	return dir, nil
}

// buildEdge builds Meridian's edge binary from the module the working
// directory is in. A missing go command skips the scenario.
func buildEdge(ctx context.Context, env *bench.Env) (peers.Edge, error) {
	root, err := peers.ModuleRoot(".")
	if err != nil {
		return peers.Edge{}, err
	}
	env.Logger.Info("building the edge binary", "root", root)
	e, err := peers.EdgeBuild{Root: root, Out: filepath.Join(env.TempDir, "meridian")}.Build(ctx)
	if errors.Is(err, peers.ErrNotInstalled) {
		return peers.Edge{}, bench.Skip("no go command to build the edge: %v", err)
	}
	return e, err
}

// noCacheModule is the skip reason of meridian-cache when the edge binary
// lacks the module.
const noCacheModule = "the edge binary has no " + peers.CacheHandlerModule +
	" module (edge/main.go does not import caddy-modules/tagcache)"

// startOrigin starts an origin for one variant and registers its stop.
func startOrigin(body []byte, stop *cleanup) (*peers.Origin, error) {
	o, err := peers.StartOrigin(peers.OriginConfig{Body: body})
	if err != nil {
		return nil, err
	}
	stop.add(o.Stop)
	return o, nil
}

// freeAddr returns a loopback address for a peer.
func freeAddr() (string, error) { return proc.FreeLoopbackAddr() }

// startMeridianCache starts edge with meridian_cache in front of an origin
// of its own serving body, as site says (TLS when it names a certificate;
// Listen, Upstream and WorkDir are filled in), and checks that the second
// request is a HIT over proto. It returns the target and the Caddyfile it
// ran. What it starts is stopped by stop.
func startMeridianCache(ctx context.Context, env *bench.Env, edge peers.Edge, site peers.EdgeSite, body []byte,
	client *http.Client, proto string, stop *cleanup) (*cacheTarget, string, error) {
	dir, err := openScratch(env, "meridian-cache")
	if err != nil {
		return nil, "", err
	}
	origin, err := startOrigin(body, stop)
	if err != nil {
		return nil, "", err
	}
	if site.Listen, err = freeAddr(); err != nil {
		return nil, "", err
	}
	site.Upstream, site.WorkDir = origin.Addr, dir
	conf, err := site.Caddyfile()
	if err != nil {
		return nil, "", err
	}
	srv, err := edge.Start(ctx, site)
	if err != nil {
		return nil, "", err
	}
	stop.add(srv.Stop)
	scheme := "http://"
	if site.CertFile != "" {
		scheme = "https://"
	}
	t := &cacheTarget{url: scheme + srv.Addr + tilePath, server: srv, origin: origin}
	if err := verify(ctx, client, t.url, body, proto, meridianHit); err != nil {
		return nil, "", err
	}
	return t, conf, nil
}

// hitCheck tells a cache hit from the response header of one cache.
type hitCheck func(http.Header) bool

// Hit checks of the caches under test.
var (
	// varnishHit: X-Varnish holds the request's id and, on a hit, the id
	// of the request that stored the object.
	varnishHit hitCheck = func(h http.Header) bool { return len(strings.Fields(h.Get("X-Varnish"))) == 2 }
	// nginxHit: the $upstream_cache_status header the bench config adds.
	nginxHit hitCheck = func(h http.Header) bool { return h.Get("X-Cache-Status") == "HIT" }
	// meridianHit: Cache-Status (RFC 9211) with a "hit" parameter.
	meridianHit hitCheck = func(h http.Header) bool { return cacheStatusHit(h.Values("Cache-Status")) }
)

// cacheStatusHit reports whether a Cache-Status field (RFC 9211) has a
// member with the hit parameter: "meridian; hit; ttl=3599".
func cacheStatusHit(values []string) bool {
	for _, v := range values {
		for member := range strings.SplitSeq(v, ",") {
			params := strings.Split(member, ";")
			for _, p := range params[1:] {
				if strings.TrimSpace(p) == "hit" {
					return true
				}
			}
		}
	}
	return false
}

// verify fetches url until it gets a hit (three tries: the first fills the
// cache), checking every response is a 200 with body over the protocol
// proto ("HTTP/1.1", "HTTP/2.0"). A nil isHit checks the body only.
func verify(ctx context.Context, c *http.Client, url string, body []byte, proto string, isHit hitCheck) error {
	var last http.Header
	for range 3 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("checking %s: %w", url, err)
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("checking %s: %w", url, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("checking %s: reading body: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) || resp.Proto != proto {
			return fmt.Errorf("checking %s: status %d, %d-byte body (same bytes: %t), %s; want 200, the %d-byte object, %s",
				url, resp.StatusCode, len(got), bytes.Equal(got, body), resp.Proto, len(body), proto)
		}
		if isHit == nil || isHit(resp.Header) {
			return nil
		}
		last = resp.Header
	}
	return fmt.Errorf("checking %s: no cache hit after 3 requests; last header %v", url, last)
}
