package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// `meridian up` runs every component in one process: the edge answers
// /healthz, routes a tile through auth and cache to tiles and a
// management call to control, and SIGTERM stops everything with exit 0.
func TestUpRunsEverything(t *testing.T) {
	meta := pgtest.Meta(t)
	data := pgtest.Data(t)
	ctx := context.Background()
	if _, err := data.Pool.Exec(ctx, `CREATE TABLE public.places (cartodb_id serial PRIMARY KEY, name text, geom geometry(Point, 4326));
		INSERT INTO public.places (name, geom) VALUES ('Paris', 'SRID=4326;POINT(2.35 48.85)'), ('Lima', 'SRID=4326;POINT(-77.04 -12.05)');`); err != nil {
		t.Fatal(err)
	}
	key := secret.GenerateKey()
	kr, _ := secret.ParseKeyring(key)
	if _, err := dataconn.New(meta.Pool, kr).Create(ctx, dataconn.Connection{Name: "local", Kind: "postgres", URL: data.URL}); err != nil {
		t.Fatal(err)
	}

	edgePort, admin := freePort(t), freePort(t)
	env := []string{
		"MERIDIAN_DATABASE_URL=" + meta.URL,
		"MERIDIAN_SECRET_KEY=" + key,
		fmt.Sprintf("MERIDIAN_EDGE_ADDR=127.0.0.1:%d", edgePort),
		fmt.Sprintf("MERIDIAN_ADMIN_ADDR=127.0.0.1:%d", admin),
		fmt.Sprintf("MERIDIAN_TILES_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_CONTROL_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_WORKER_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_PUBLIC_URL=http://127.0.0.1:%d", edgePort),
		"MERIDIAN_NODE=uptest",
		"HOME=" + t.TempDir(), // Caddy's autosave and data folders
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, envRunAsMeridian+"=1", envMeridianArgs+"=up")...)
	logPath := filepath.Join(t.TempDir(), "up.log")
	logf, _ := os.Create(logPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("meridian up log tail:\n%s", b)
		}
	}()

	base := fmt.Sprintf("http://127.0.0.1:%d", edgePort)
	get := func(path, token string) (int, http.Header, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if code, _, _ := get("/healthz", ""); code == 200 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("meridian up exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("edge /healthz did not answer within 90s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// up made the signing key: a token from the store verifies everywhere.
	tok, _, err := tokenstore.New(meta.Pool, kr, nil).Create(ctx, tokenstore.Spec{Owner: "test",
		Grants: []grant.Grant{{Connection: "local", Source: "public.places"}}, APIs: []grant.API{grant.APIMaps}})
	if err != nil {
		t.Fatal(err)
	}
	const tile = "/api/v3/maps/local/table/0/0/0?name=public.places&formatTiles=mvt"
	code, h, body := get(tile, tok)
	if code != 200 || h.Get("Content-Type") != "application/vnd.mapbox-vector-tile" || len(body) == 0 {
		t.Fatalf("tile through the edge = %d %q (%d bytes), want an MVT", code, h.Get("Content-Type"), len(body))
	}
	if h.Get(cacheTagHeader) != "" {
		t.Errorf("Surrogate-Key reached the client: %q", h.Get(cacheTagHeader))
	}
	if _, h, _ = get(tile, tok); !strings.Contains(h.Get("Cache-Status"), "hit") {
		t.Errorf("second tile request Cache-Status = %q, want a hit", h.Get("Cache-Status"))
	}
	if code, _, _ := get(tile, ""); code != http.StatusUnauthorized {
		t.Errorf("tile without token = %d, want 401", code)
	}
	if code, _, body := get("/api/version", ""); code != 200 || !strings.Contains(body, "version") {
		t.Errorf("/api/version through the edge = %d %s, want control's answer", code, body)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("meridian up after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("meridian up did not stop within 60s of SIGTERM")
	}
}

const cacheTagHeader = "Surrogate-Key"
