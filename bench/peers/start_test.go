package peers

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/bench/proc"
)

// These tests start the real peers when they are installed (apt-get
// install varnish nginx); they take a few seconds each, so -short skips
// them.

// scratch returns a temp dir the peers' unprivileged users can enter.
func scratch(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func startOrigin(t *testing.T, body []byte) *Origin {
	t.Helper()
	o, err := StartOrigin(OriginConfig{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := o.Stop(ctx); err != nil {
			t.Errorf("stopping origin: %v", err)
		}
	})
	return o
}

func stopServer(t *testing.T, s *Server) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if err := s.Alive(); err == nil {
			t.Errorf("%s still alive after Stop", s.Name)
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := proc.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// get fetches url twice and returns the second response's header after
// checking both bodies.
func getTwice(t *testing.T, c *http.Client, url string, body []byte) http.Header {
	t.Helper()
	var h http.Header
	for i := range 2 {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, body) {
			t.Fatalf("GET %s #%d: status %d, %d bytes, err %v; want 200 and the %d-byte body",
				url, i, resp.StatusCode, len(b), err, len(body))
		}
		h = resp.Header
		h.Set("X-Proto", resp.Proto)
	}
	return h
}

func TestVarnishCachesTheOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts varnishd")
	}
	if _, err := LookVarnishd(""); err != nil {
		t.Skip(err)
	}
	body := []byte(strings.Repeat("tile", 1000))
	o := startOrigin(t, body)
	v := Varnish{Listen: freeAddr(t), Backend: o.Addr, WorkDir: scratch(t)}
	s, err := v.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stopServer(t, s)
	h := getTwice(t, http.DefaultClient, "http://"+s.Addr+"/t/1/2/3.mvt", body)
	if ids := strings.Fields(h.Get("X-Varnish")); len(ids) != 2 {
		t.Errorf("second response X-Varnish = %q, want two ids (a hit)", h.Get("X-Varnish"))
	}
	if got := o.Requests(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
}

func TestNginxCachesTheOriginOverH2(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx")
	}
	if _, err := LookNginx(""); err != nil {
		t.Skip(err)
	}
	dir := scratch(t)
	cert, err := SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("tile", 1000))
	o := startOrigin(t, body)
	n := Nginx{Listen: freeAddr(t), Backend: o.Addr, WorkDir: dir, CertFile: cert.CertFile, KeyFile: cert.KeyFile}
	s, err := n.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stopServer(t, s)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true}}
	h := getTwice(t, c, "https://"+s.Addr+"/t/1/2/3.mvt", body)
	if h.Get("X-Cache-Status") != "HIT" || h.Get("X-Proto") != "HTTP/2.0" {
		t.Errorf("second response X-Cache-Status %q over %s, want HIT over HTTP/2.0", h.Get("X-Cache-Status"), h.Get("X-Proto"))
	}
	if got := o.Requests(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
}

func TestEdgeStaticAndCache(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the edge binary")
	}
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := scratch(t)
	e, err := EdgeBuild{Root: root, Out: filepath.Join(dir, "meridian")}.Build(context.Background())
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !e.HasModule("http.handlers.static_response") {
		t.Fatalf("modules %v lack static_response", e.Modules)
	}
	cert, err := SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("tile", 1000))
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true}}
	for _, tc := range []struct {
		name  string
		tls   bool
		cache bool
	}{{"static-h1", false, false}, {"static-h2", true, false}, {"cache-h1", false, true}, {"cache-h2", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cache && !e.HasModule(CacheHandlerModule) {
				t.Skip(CacheHandlerModule + " is not compiled into the edge")
			}
			site := EdgeSite{Listen: freeAddr(t), WorkDir: t.TempDir()}
			var o *Origin
			if tc.cache {
				o = startOrigin(t, body)
				site.Upstream = o.Addr
			} else {
				site.Respond = body
			}
			scheme, client := "http", http.DefaultClient
			if tc.tls {
				site.CertFile, site.KeyFile = cert.CertFile, cert.KeyFile
				scheme, client = "https", tlsClient
			}
			s, err := e.Start(context.Background(), site)
			if err != nil {
				t.Fatal(err)
			}
			stopServer(t, s)
			h := getTwice(t, client, scheme+"://"+s.Addr+"/t/1/2/3.mvt", body)
			if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[tc.tls]; h.Get("X-Proto") != want {
				t.Errorf("protocol %s, want %s", h.Get("X-Proto"), want)
			}
			if tc.cache {
				if cs := h.Get("Cache-Status"); !strings.Contains(cs, "hit") {
					t.Errorf("second response Cache-Status = %q, want a hit", cs)
				}
				if got := o.Requests(); got != 1 {
					t.Errorf("origin requests = %d, want 1", got)
				}
			}
		})
	}
}
