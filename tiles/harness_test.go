package tiles

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/tiles/internal/geotest"
)

// conns serves one data connection, "pg".
type conns struct{ pool *pgxpool.Pool }

func (c conns) Pool(ctx context.Context, name string) (*pgxpool.Pool, error) {
	if name != "pg" {
		return nil, fmt.Errorf("opening %s: %w", name, dataconn.ErrNotFound)
	}
	return c.pool, nil
}

// issuer signs test tokens that the server's verifier accepts.
type issuer struct {
	key      grant.SigningKey
	verifier *grant.Verifier
	n        int
}

func newIssuer(t testing.TB) *issuer {
	k, err := grant.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	ks := grant.NewKeySet(map[string]ed25519.PublicKey{k.ID: k.Public()})
	return &issuer{key: k, verifier: grant.NewVerifier(ks, nil, grant.VerifierConfig{})}
}

// token returns a token for apis covering sources on connection pg.
func (is *issuer) token(t testing.TB, apis []grant.API, sources ...string) string {
	return is.tokenOn(t, "pg", apis, sources...)
}

// tokenOn returns a token for apis covering sources on connection conn.
func (is *issuer) tokenOn(t testing.TB, conn string, apis []grant.API, sources ...string) string {
	is.n++
	c := &grant.Claims{ID: fmt.Sprintf("tok%d", is.n), IssuedAt: time.Now().Unix(), APIs: apis}
	for _, s := range sources {
		c.Grants = append(c.Grants, grant.Grant{Connection: conn, Source: s})
	}
	tok, err := grant.Sign(c, is.key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var mapsSQL = []grant.API{grant.APIMaps, grant.APISQL}

// env is a running server on the geodata database.
type env struct {
	t      testing.TB
	db     *geotest.DB
	srv    *Server
	base   string // http://127.0.0.1:port
	is     *issuer
	all    string // token with "*" on pg for maps and sql
	client *http.Client
	reg    *prometheus.Registry
	stop   func()
}

// envSetup is what options may change before the server starts.
type envSetup struct {
	cfg    *Config
	deps   *Deps
	peerLn net.Listener
}

type envOpt func(*envSetup)

// withConfig changes the configuration.
func withConfig(f func(*Config)) envOpt { return func(s *envSetup) { f(s.cfg) } }

func newEnv(t testing.TB, opts ...envOpt) *env {
	db := geotest.New(t)
	return startEnv(t, db, newIssuer(t), opts...)
}

func startEnv(t testing.TB, db *geotest.DB, is *issuer, opts ...envOpt) *env {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	reg := prometheus.NewRegistry()
	cfg := Config{Addr: ln.Addr().String()}
	deps := Deps{
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Conns:     conns{db.Pool},
		Auth:      is.verifier,
		Metrics:   reg,
		PublicURL: base,
	}
	if testing.Verbose() {
		deps.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	setup := envSetup{cfg: &cfg, deps: &deps}
	for _, o := range opts {
		o(&setup)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.peerLn = setup.peerLn
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	e := &env{t: t, db: db, srv: srv, base: base, is: is, reg: reg,
		client: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableCompression: true}}}
	e.all = is.token(t, mapsSQL, "*")
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
			e.stop = nil
		}
	})
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON (status %d): %v\n%s", r.status, err, r.body)
	}
	return m
}

// do sends a request; hdr are "Name: value" strings.
func (e *env) do(method, u, body string, hdr ...string) resp {
	e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = e.base + u
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("reading %s: %v", u, err)
	}
	return resp{res.StatusCode, res.Header, b}
}

func (e *env) get(u string, hdr ...string) resp { return e.do(http.MethodGet, u, "", hdr...) }

func bearer(tok string) string { return "Authorization: Bearer " + tok }

// q builds a query string from pairs, JSON-encoding non-string values as
// the CARTO client does on GET.
func q(kv ...any) string {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		var s string
		switch x := kv[i+1].(type) {
		case string:
			s = x
		default:
			b, _ := json.Marshal(x)
			s = string(b)
		}
		v.Set(kv[i].(string), s)
	}
	return v.Encode()
}

// instantiate returns the TileJSON URL of a source.
func (e *env) instantiate(typ string, tok string, kv ...any) string {
	e.t.Helper()
	r := e.get("/api/v3/maps/pg/"+typ+"?"+q(append([]any{"v", "3.4", "client", "deck-gl-carto"}, kv...)...), bearer(tok))
	if r.status != 200 {
		e.t.Fatalf("instantiate %s %v: %d %s", typ, kv, r.status, r.body)
	}
	m := r.json(e.t)
	urls, _ := m["tilejson"].(map[string]any)["url"].([]any)
	if len(urls) != 1 {
		e.t.Fatalf("instantiate: no tilejson.url in %s", r.body)
	}
	return urls[0].(string)
}

// tileURL returns the tile URL template of a TileJSON URL.
func (e *env) tileTemplate(tilejsonURL, tok string) string {
	e.t.Helper()
	r := e.get(tilejsonURL, bearer(tok))
	if r.status != 200 {
		e.t.Fatalf("TileJSON: %d %s", r.status, r.body)
	}
	tiles := r.json(e.t)["tiles"].([]any)
	return tiles[0].(string)
}

func expand(tmpl string, z, x, y uint32) string {
	return strings.NewReplacer("{z}", fmt.Sprint(z), "{x}", fmt.Sprint(x), "{y}", fmt.Sprint(y)).Replace(tmpl)
}

// metric returns the value of a counter or gauge (summed over labels
// matching the given prefix of its label text).
func (e *env) metric(name string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
