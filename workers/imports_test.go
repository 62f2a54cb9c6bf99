package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokertest"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/jobspec"
)

// Uploaded files of several formats are imported by the worker: the row
// ends in success with the row count, the table holds every feature, the
// change is announced (invalidation with the table's tag, workspace
// event → dataset metadata in sources) and the upload is removed.
func TestImportUploads(t *testing.T) {
	tests := []struct {
		name, file, dest string
		opts             ImportOptions
		rows             int64
		geometry         string
	}{
		{"csv with lat/lon", "fixtures/csv/us_airports_datagov.csv", "public.airports", ImportOptions{}, 3376, "Point"},
		{"geojson", "fixtures/geojson/tiger_roads_manhattan.geojson", "roads", ImportOptions{}, 8333, "LineString"},
		{"zipped shapefile", "fixtures/shapefile/ne_110m_admin_0_countries.zip", "public.countries", ImportOptions{IfExists: "replace"}, 177, "MultiPolygon"},
	}
	e := newWorkerEnv(t, nil)
	inv := brokertest.Subscribe(t, e.broker, broker.TopicInvalidations)
	e.start(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := e.upload(t, testdata(t, tt.file))
			start := time.Now()
			id := e.createImport(t, importSpec{dest: tt.dest, filePath: path, filename: filepath.Base(tt.file), opts: tt.opts})
			s := e.wait(t, "imports", id, 2*time.Minute)
			t.Logf("%s: %s in %v", tt.file, s.Status, time.Since(start).Round(time.Millisecond))
			if s.Status != jobspec.StatusSuccess || s.Attempts != 1 || s.Rows != tt.rows || s.Phase != "done" {
				t.Fatalf("import = %+v, want success in 1 attempt with %d rows", s, tt.rows)
			}
			var res ImportResult
			json.Unmarshal(s.Result, &res)
			table := res.Table
			if !strings.HasPrefix(table, "public.") || res.Rows != tt.rows || !strings.HasPrefix(res.GeometryType, tt.geometry) || len(res.Columns) < 3 {
				t.Errorf("result = %s, want %d rows of %s", s.Result, tt.rows, tt.geometry)
			}
			if n := e.count(t, "SELECT count(*) FROM "+table); n != tt.rows {
				t.Errorf("%s has %d rows, want %d", table, n, tt.rows)
			}
			if n := e.count(t, "SELECT count(*) FROM "+table+" WHERE NOT ST_IsValid(geom) OR ST_SRID(geom) <> 4326"); n != 0 {
				t.Errorf("%s has %d invalid or non-4326 geometries", table, n)
			}
			m := brokertest.Receive(t, inv, 10*time.Second)
			var got cachetag.Invalidation
			json.Unmarshal(m.Data, &got)
			if len(got.Tags) != 1 || got.Tags[0] != cachetag.Source("local", table) {
				t.Errorf("invalidation = %s, want the tag %s", m.Data, cachetag.Source("local", table))
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("upload %s still there after success (%v)", path, err)
			}
			// The workspace event refreshes the dataset's metadata.
			var stats DatasetStats
			deadline := time.Now().Add(30 * time.Second)
			for {
				var raw []byte
				e.meta.Pool.QueryRow(context.Background(), `SELECT stats FROM sources s JOIN connections c ON c.id = s.connection_id
					WHERE c.name = 'local' AND s.name = $1`, table).Scan(&raw)
				if raw != nil {
					json.Unmarshal(raw, &stats)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no sources row for %s 30s after the import", table)
				}
				time.Sleep(50 * time.Millisecond)
			}
			layer := stats.Tilestats.Layers[0]
			if stats.Rows != tt.rows || stats.ImportID != id || len(stats.BBox) != 4 || layer.Count != tt.rows ||
				layer.Geometry != strings.TrimPrefix(tt.geometry, "Multi") || len(layer.Attributes) == 0 {
				t.Errorf("stats = %+v, want %d rows, bbox, tilestats of %s", stats, tt.rows, tt.geometry)
			}
		})
	}
	if n := e.stagingTables(t); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
}

// A finished import reports every byte of its file read (bytesDone =
// bytesTotal = the file's size as stored), whatever the reader: CSV and
// GeoJSON (streamed), FlatGeobuf and KML (GDAL), gzip (compressed bytes).
func TestImportReportsBytes(t *testing.T) {
	files := []string{
		"fixtures/csv/ne_110m_populated_places.csv",
		"fixtures/fgb/flatgeobuf_countries.fgb",
		"fixtures/kml/ne_110m_admin_0_countries.kml",
		"polygons/ne_50m_urban_areas.geojson.gz",
	}
	e := newWorkerEnv(t, nil)
	e.start(t)
	for i, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src := testdata(t, file)
			fi, err := os.Stat(src)
			if err != nil {
				t.Fatal(err)
			}
			path := e.upload(t, src)
			id := e.createImport(t, importSpec{dest: fmt.Sprintf("bytes_%d", i), filePath: path, filename: filepath.Base(file)})
			if s := e.wait(t, "imports", id, 2*time.Minute); s.Status != jobspec.StatusSuccess {
				t.Fatalf("import = %+v, want success", s)
			}
			var done, total int64
			if err := e.meta.Pool.QueryRow(context.Background(), `SELECT bytes_done, coalesce(bytes_total, -1) FROM imports WHERE id = $1`, id).Scan(&done, &total); err != nil {
				t.Fatal(err)
			}
			if done != fi.Size() || total != fi.Size() {
				t.Errorf("finished import of %s reports %d of %d bytes, want %d of %d", file, done, total, fi.Size(), fi.Size())
			}
		})
	}
}

// URL imports download with the size limit and then import; with
// AllowPrivate off, a server on 127.0.0.1 (by address or by the name
// localhost) is refused with a clear error, at once (one attempt).
func TestImportURL(t *testing.T) {
	fixture := testdata(t, "fixtures/csv/ne_110m_populated_places.csv")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/places.csv", http.StatusFound)
		case "/places.csv":
			http.ServeFile(w, r, fixture)
		case "/chunked.csv": // no Content-Length
			b, _ := os.ReadFile(fixture)
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			w.Write(b[len(b)/2:])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")

	t.Run("allowed", func(t *testing.T) {
		e := newWorkerEnv(t, func(c *JobsConfig) { c.AllowPrivate = true })
		e.start(t)
		id := e.createImport(t, importSpec{dest: "public.places", url: srv.URL + "/redirect"})
		if s := e.wait(t, "imports", id, time.Minute); s.Status != jobspec.StatusSuccess || s.Rows != 243 {
			t.Fatalf("URL import = %+v, want success with 243 rows", s)
		}
		if n := e.count(t, "SELECT count(*) FROM public.places"); n != 243 {
			t.Errorf("places has %d rows, want 243", n)
		}
		id = e.createImport(t, importSpec{dest: "public.missing", url: srv.URL + "/missing.csv"})
		if s := e.wait(t, "imports", id, time.Minute); s.Status != jobspec.StatusFailure || s.Attempts != 1 || !strings.Contains(s.Error, "404") {
			t.Errorf("URL answering 404 = %+v, want failure at once naming the 404", s)
		}
		entries, _ := os.ReadDir(e.cfg.ImportDir)
		if len(entries) != 0 {
			t.Errorf("downloads left in the import folder: %v", entries)
		}
	})
	t.Run("refused", func(t *testing.T) {
		e := newWorkerEnv(t, func(c *JobsConfig) { c.AllowPrivate = false })
		e.start(t)
		for _, u := range []string{srv.URL + "/places.csv", "http://localhost:" + port + "/places.csv", "http://[::1]:" + port + "/places.csv"} {
			id := e.createImport(t, importSpec{dest: "public.places", url: u})
			s := e.wait(t, "imports", id, time.Minute)
			if s.Status != jobspec.StatusFailure || s.Attempts != 1 || !strings.Contains(s.Error, "refused") ||
				!strings.Contains(s.Error, "loopback") || !strings.Contains(s.Error, "MERIDIAN_IMPORT_ALLOW_PRIVATE") {
				t.Errorf("import from %s = %+v, want failure in 1 attempt: refused, loopback, the setting", u, s)
			}
			t.Logf("%s: %s", u, s.Error)
		}
		if n := e.count(t, "SELECT count(*) FROM pg_class WHERE relname = 'places'"); n != 0 {
			t.Error("a refused import created the table")
		}
	})
	t.Run("size limit", func(t *testing.T) {
		e := newWorkerEnv(t, func(c *JobsConfig) { c.MaxImportBytes = 1000 })
		e.start(t)
		for _, p := range []string{"/places.csv", "/chunked.csv"} {
			id := e.createImport(t, importSpec{dest: "public.places", url: srv.URL + p})
			if s := e.wait(t, "imports", id, time.Minute); s.Status != jobspec.StatusFailure || s.Attempts != 1 || !strings.Contains(s.Error, "too large") {
				t.Errorf("import of %s, over the limit = %+v, want failure: too large", p, s)
			}
		}
	})
}

// A bad file fails the import with the engine's message, once: no retry
// loop, no dead letter, nothing left behind.
func TestImportBadFile(t *testing.T) {
	e := newWorkerEnv(t, nil)
	e.start(t)
	bad := filepath.Join(t.TempDir(), "bad.geojson")
	os.WriteFile(bad, []byte(`{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{}},{"type":"Feature",,]}`), 0o600)
	path := e.upload(t, bad)
	id := e.createImport(t, importSpec{dest: "public.bad", filePath: path, filename: "bad.geojson"})
	s := e.wait(t, "imports", id, time.Minute)
	if s.Status != jobspec.StatusFailure || s.Attempts != 1 || !strings.Contains(s.Error, "malformed") || !strings.Contains(s.Error, "byte") {
		t.Fatalf("bad file = %+v, want failure with the engine's message (malformed … byte N)", s)
	}
	t.Logf("error: %s", s.Error)
	time.Sleep(2 * time.Second) // a retry would have come by now (backoff 1s)
	if s2 := e.state(t, "imports", id); s2.Attempts != 1 {
		t.Errorf("attempts = %d after a while, want 1 (no retry)", s2.Attempts)
	}
	dl, err := e.broker.DeadLetters(context.Background(), "workers-"+broker.TopicImports, 10)
	if err != nil || len(dl) != 0 {
		t.Errorf("dead letters = %v %v, want none", dl, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("upload of a failed import still there (%v)", err)
	}
	if n := e.count(t, "SELECT count(*) FROM pg_class WHERE relname = 'bad'"); n != 0 || e.stagingTables(t) != 0 {
		t.Error("a failed import left a table")
	}
}

// Cancelling a running import stops it: status cancelled, the old table
// untouched, no staging table, no retry.
func TestImportCancel(t *testing.T) {
	e := newWorkerEnv(t, nil)
	e.start(t)
	ctx := context.Background()
	if _, err := e.data.Pool.Exec(ctx, `CREATE TABLE public.cities (cartodb_id int, geom geometry(Point, 4326));
		INSERT INTO public.cities VALUES (1, 'SRID=4326;POINT(0 0)')`); err != nil {
		t.Fatal(err)
	}
	path := e.upload(t, testdata(t, "points/geonames_cities1000.csv.gz"))
	id := e.createImport(t, importSpec{dest: "public.cities", filePath: path, filename: "cities1000.csv.gz", opts: ImportOptions{IfExists: "replace"}})
	deadline := time.Now().Add(time.Minute)
	for e.state(t, "imports", id).Rows == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the import reported no rows within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancelled := time.Now()
	if _, err := e.meta.Pool.Exec(ctx, "UPDATE imports SET status = 'cancelled' WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	// The worker stops: its import lock is free again.
	for e.count(t, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'meridian-worker' AND state = 'active' AND query NOT LIKE '%pg_stat_activity%'") > 0 {
		if time.Since(cancelled) > 30*time.Second {
			t.Fatal("the import still runs 30s after the cancel")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("stopped %v after the cancel", time.Since(cancelled).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // time for a (wrong) status update to land
	s := e.state(t, "imports", id)
	if s.Status != jobspec.StatusCancelled || s.Attempts != 1 {
		t.Errorf("cancelled import = %+v, want cancelled after 1 attempt", s)
	}
	if n := e.count(t, "SELECT count(*) FROM public.cities"); n != 1 {
		t.Errorf("the old table has %d rows, want its 1 (untouched)", n)
	}
	if n := e.stagingTables(t); n != 0 {
		t.Errorf("%d staging tables left after the cancel", n)
	}
}

// The sweep publishes again what has no message: a pending import whose
// publish failed (enqueued_at NULL) and a running one whose worker died
// (stale heartbeat); both then complete.
func TestSweep(t *testing.T) {
	e := newWorkerEnv(t, func(c *JobsConfig) { c.StaleAfter = 0 })
	e.jobs.cfg.StaleAfter = 1
	ctx := context.Background()
	file := testdata(t, "fixtures/csv/ne_110m_populated_places.csv")
	var lost, stale string
	for _, q := range []struct {
		id  *string
		sql string
	}{
		{&lost, `INSERT INTO imports (connection_id, destination, file_path, filename, enqueued_at)
			SELECT id, 'public.lost', $1, 'p.csv', NULL FROM connections RETURNING id`},
		{&stale, `INSERT INTO imports (connection_id, destination, file_path, filename, status, attempts, heartbeat_at)
			SELECT id, 'public.stale', $1, 'p.csv', 'running', 1, now() - interval '1 hour' FROM connections RETURNING id`},
	} {
		if err := e.meta.Pool.QueryRow(ctx, q.sql, e.upload(t, file)).Scan(q.id); err != nil {
			t.Fatal(err)
		}
	}
	e.start(t)
	n, err := e.jobs.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v, want 2 published", n, err)
	}
	for _, id := range []string{lost, stale} {
		if s := e.wait(t, "imports", id, time.Minute); s.Status != jobspec.StatusSuccess || s.Rows != 243 {
			t.Errorf("swept import %s = %+v, want success", id, s)
		}
	}
	if n, err := e.jobs.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("second Sweep = %d, %v, want nothing to do", n, err)
	}
}

// CleanupStaging drops the staging tables an import left when it was
// killed and never retried (on connections imported into recently).
func TestCleanupStaging(t *testing.T) {
	e := newWorkerEnv(t, nil)
	ctx := context.Background()
	if _, err := e.data.Pool.Exec(ctx, `CREATE TABLE public._mi_dead_s (a int);
		COMMENT ON TABLE public._mi_dead_s IS 'meridian import dead started 2020-01-01T00:00:00Z'`); err != nil {
		t.Fatal(err)
	}
	e.createImport(t, importSpec{dest: "public.x", url: "http://example.invalid/x.csv"})
	if err := e.jobs.CleanupStaging(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := e.stagingTables(t); n != 0 {
		t.Errorf("%d staging tables left, want the dead import's dropped", n)
	}
}

// An error that is not the file's (here: the data database is down) is
// retried with backoff, the import back to pending meanwhile with the
// reason; the last attempt marks it failed.
func TestImportRetriesThenFails(t *testing.T) {
	e := newWorkerEnv(t, func(c *JobsConfig) { c.MaxAttempts = 2 })
	ctx := context.Background()
	if _, err := e.store.Create(ctx, dataconn.Connection{Name: "down", Kind: "postgres", URL: "postgres://u:p@127.0.0.1:1/nowhere"}); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := e.meta.Pool.QueryRow(ctx, `INSERT INTO imports (connection_id, destination, file_path, filename)
		SELECT id, 'public.x', $1, 'p.csv' FROM connections WHERE name = 'down' RETURNING id`,
		e.upload(t, testdata(t, "fixtures/csv/ne_110m_populated_places.csv"))).Scan(&id); err != nil {
		t.Fatal(err)
	}
	jobspec.Imports.Publish(ctx, e.broker, id)
	e.start(t)
	var s jobState
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if s = e.state(t, "imports", id); s.Attempts > 0 && s.Status != jobspec.StatusRunning || time.Now().After(deadline) {
			break
		}
	}
	if s.Status != jobspec.StatusPending || s.Attempts != 1 || s.Error == "" {
		t.Errorf("after a failed attempt = %+v, want pending with the reason, 1 attempt", s)
	}
	s = e.wait(t, "imports", id, time.Minute)
	if s.Status != jobspec.StatusFailure || s.Attempts != 2 || !strings.Contains(s.Error, "after 2 attempts: cannot connect") {
		t.Errorf("import on a dead database = %+v, want failure after 2 attempts", s)
	}
	t.Logf("error: %s", s.Error)
}
