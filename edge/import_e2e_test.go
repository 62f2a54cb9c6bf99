package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paulmach/orb/encoding/mvt"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// importTestData returns a file of the shared geodata library
// ($MERIDIAN_TESTDATA, default ../../shared/data), skipping without it.
func importTestData(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test data %s: %v (set MERIDIAN_TESTDATA)", rel, err)
	}
	return p
}

// impUp is a `meridian up` for the import tests.
type impUp struct {
	base string
	meta *pgtest.DB
	data *pgtest.DB
	kr   *secret.Keyring
}

func startImpUp(t *testing.T, extraEnv ...string) *impUp {
	t.Helper()
	u := &impUp{meta: pgtest.Meta(t), data: pgtest.Data(t)}
	key := secret.GenerateKey()
	u.kr, _ = secret.ParseKeyring(key)
	if _, err := dataconn.New(u.meta.Pool, u.kr).Create(context.Background(), dataconn.Connection{Name: "local", Kind: "postgres", URL: u.data.URL}); err != nil {
		t.Fatal(err)
	}
	edgePort := freePort(t)
	u.base = fmt.Sprintf("http://127.0.0.1:%d", edgePort)
	env := append([]string{
		"MERIDIAN_DATABASE_URL=" + u.meta.URL,
		"MERIDIAN_SECRET_KEY=" + key,
		fmt.Sprintf("MERIDIAN_EDGE_ADDR=127.0.0.1:%d", edgePort),
		fmt.Sprintf("MERIDIAN_ADMIN_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_TILES_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_CONTROL_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_WORKER_ADDR=127.0.0.1:%d", freePort(t)),
		"MERIDIAN_PUBLIC_URL=" + u.base,
		"MERIDIAN_NODE=importtest",
		"MERIDIAN_IMPORT_DIR=" + t.TempDir(),
		"MERIDIAN_WORKER_POLL_INTERVAL=100ms",
		"HOME=" + t.TempDir(),
	}, extraEnv...)
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
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("meridian up log tail:\n%s", b)
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		if res, err := http.Get(u.base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return u
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("meridian up exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("edge /healthz did not answer within 90s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (u *impUp) token(t *testing.T, apis ...grant.API) string {
	t.Helper()
	tok, _, err := tokenstore.New(u.meta.Pool, u.kr, nil).Create(context.Background(), tokenstore.Spec{Owner: "import-test",
		Grants: []grant.Grant{{Connection: "local", Source: "*"}}, APIs: apis})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends a request through the edge and decodes a JSON answer.
func (u *impUp) call(t *testing.T, method, path, token, ct string, body io.Reader, out any) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u.base+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil {
		json.Unmarshal(b, out)
	}
	return res.StatusCode, res.Header, b
}

// upload posts a file to /api/v3/imports through the edge and returns
// the import ID.
func (u *impUp) upload(t *testing.T, token, filename string, content []byte, fields ...string) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		mw.WriteField(fields[i], fields[i+1])
	}
	fw, _ := mw.CreateFormFile("file", filename)
	fw.Write(content)
	mw.Close()
	var imp struct{ ID, Status string }
	code, _, body := u.call(t, "POST", "/api/v3/imports", token, mw.FormDataContentType(), &buf, &imp)
	if code != http.StatusCreated || imp.ID == "" {
		t.Fatalf("upload of %s = %d %s, want 201", filename, code, body)
	}
	return imp.ID
}

// poll GETs path until its status is final.
func (u *impUp) poll(t *testing.T, token, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var v map[string]any
		code, _, body := u.call(t, "GET", path, token, "", nil, &v)
		if code != 200 {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		switch v["status"] {
		case "success", "failure", "cancelled":
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still %v after 2 minutes", path, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tileNames fetches a tile through the edge and returns its Cache-Status
// and the sorted "name" properties of its features.
func (u *impUp) tileNames(t *testing.T, token, path string) (string, []string) {
	t.Helper()
	code, h, body := u.call(t, "GET", path, token, "", nil, nil)
	if code != 200 {
		t.Fatalf("tile %s = %d %s", path, code, body)
	}
	layers, err := mvt.Unmarshal(body)
	if err != nil {
		t.Fatalf("decoding tile %s: %v", path, err)
	}
	var names []string
	for _, l := range layers {
		for _, f := range l.Features {
			if n, ok := f.Properties["name"].(string); ok {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return h.Get("Cache-Status"), names
}

// End to end through `meridian up`: a tile of public.places is cached at
// the edge; an upload replaces the table through /api/v3/imports; once
// the import reports success the very next tile request shows the new
// data, without any purge call. A batch SQL job that writes does the
// same through the conn: tag. An upload of a real fixture lands whole.
func TestImportThroughEdge(t *testing.T) {
	u := startImpUp(t)
	ctx := context.Background()
	if _, err := u.data.Pool.Exec(ctx, `CREATE TABLE public.places (cartodb_id serial PRIMARY KEY, name text, geom geometry(Point, 4326));
		INSERT INTO public.places (name, geom) VALUES ('Paris', 'SRID=4326;POINT(2.35 48.85)'), ('Lima', 'SRID=4326;POINT(-77.04 -12.05)')`); err != nil {
		t.Fatal(err)
	}
	tok := u.token(t, grant.APIMaps, grant.APIImports, grant.APISQL)
	const tile = "/api/v3/maps/local/table/0/0/0?name=public.places&formatTiles=mvt"
	if _, names := u.tileNames(t, tok, tile); !slices.Equal(names, []string{"Lima", "Paris"}) {
		t.Fatalf("first tile names = %v, want [Lima Paris]", names)
	}
	if cs, _ := u.tileNames(t, tok, tile); !strings.Contains(cs, "hit") {
		t.Fatalf("second tile request Cache-Status = %q, want a hit", cs)
	}

	// Replace the table with an upload.
	replacement := []byte(`{"type":"FeatureCollection","features":[
		{"type":"Feature","geometry":{"type":"Point","coordinates":[2.35,48.85]},"properties":{"name":"Paris (new)"}},
		{"type":"Feature","geometry":{"type":"Point","coordinates":[-77.04,-12.05]},"properties":{"name":"Lima (new)"}},
		{"type":"Feature","geometry":{"type":"Point","coordinates":[139.69,35.69]},"properties":{"name":"Tokyo"}}]}`)
	start := time.Now()
	id := u.upload(t, tok, "places.geojson", replacement, "connection", "local", "destination", "public.places", "if_exists", "replace")
	imp := u.poll(t, tok, "/api/v3/imports/"+id)
	t.Logf("replacement import: %v in %v", imp["status"], time.Since(start).Round(time.Millisecond))
	if imp["status"] != "success" {
		t.Fatalf("replacement import = %v, want success", imp)
	}
	want := []string{"Lima (new)", "Paris (new)", "Tokyo"}
	if cs, names := u.tileNames(t, tok, tile); !slices.Equal(names, want) {
		// Tell a late purge (fine 2s later) from a stale tile cached
		// again (still stale).
		time.Sleep(2 * time.Second)
		cs2, names2 := u.tileNames(t, tok, tile)
		t.Errorf("tile right after the import = %v (Cache-Status %q), want %v; 2s later: %v (%q)", names, cs, want, names2, cs2)
	}
	// The edge stores that source's tiles again once the purge quarantine
	// (2s by default) has passed.
	time.Sleep(2500 * time.Millisecond)
	u.tileNames(t, tok, tile)
	if cs, _ := u.tileNames(t, tok, tile); !strings.Contains(cs, "hit") {
		t.Errorf("tile after the import is not cached again: Cache-Status %q", cs)
	}

	// A batch SQL job that writes invalidates the connection.
	var job struct{ JobID string }
	b, _ := json.Marshal(map[string]any{"query": "UPDATE public.places SET name = upper(name) WHERE name = 'Tokyo'"})
	if code, _, body := u.call(t, "POST", "/api/v3/sql/local/job", tok, "application/json", bytes.NewReader(b), &job); code != http.StatusCreated {
		t.Fatalf("create job = %d %s, want 201", code, body)
	}
	if j := u.poll(t, tok, "/api/v3/sql/local/job/"+job.JobID); j["status"] != "success" {
		t.Fatalf("job = %v, want success", j)
	}
	if _, names := u.tileNames(t, tok, tile); !slices.Contains(names, "TOKYO") {
		t.Errorf("tile after the SQL job = %v, want TOKYO", names)
	}

	// A real fixture, uploaded through the edge, lands whole.
	content, err := os.ReadFile(importTestData(t, "fixtures/csv/ne_110m_populated_places.csv"))
	if err != nil {
		t.Fatal(err)
	}
	id = u.upload(t, tok, "ne_110m_populated_places.csv", content, "connection", "local", "destination", "cities")
	if imp := u.poll(t, tok, "/api/v3/imports/"+id); imp["status"] != "success" {
		t.Fatalf("fixture import = %v, want success", imp)
	}
	var n int
	u.data.Pool.QueryRow(ctx, "SELECT count(*) FROM public.cities").Scan(&n)
	if n != 243 {
		t.Errorf("public.cities has %d rows, want 243", n)
	}
}
