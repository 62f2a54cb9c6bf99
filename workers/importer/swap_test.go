package importer_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/workers/importer"
)

func TestIfExists(t *testing.T) {
	pool := testDB(t)
	places := importer.Source{Path: data(t, "fixtures/csv/ne_110m_populated_places.csv")}
	airports := importer.Source{Path: data(t, "fixtures/csv/us_airports_datagov.csv")}
	ctx := ctxT(t)

	t.Run("fail", func(t *testing.T) {
		if _, err := importer.Import(ctx, pool, places, importer.Options{Table: "ie_fail"}); err != nil {
			t.Fatal(err)
		}
		_, err := importer.Import(ctx, pool, airports, importer.Options{Table: "ie_fail"})
		if !errors.Is(err, importer.ErrTableExists) {
			t.Fatalf("second import: error = %v, want ErrTableExists", err)
		}
		if got := count(t, pool, "SELECT count(*) FROM ie_fail"); got != 243 {
			t.Errorf("ie_fail has %d rows after a refused import, want 243", got)
		}
	})

	t.Run("replace is atomic for readers", func(t *testing.T) {
		if _, err := importer.Import(ctx, pool, places, importer.Options{Table: "geo.ie_swap"}); !errors.Is(err, importer.ErrInvalidOptions) {
			t.Fatalf("import into a missing schema: error = %v, want ErrInvalidOptions", err)
		}
		if _, err := pool.Exec(ctx, "CREATE SCHEMA geo"); err != nil {
			t.Fatal(err)
		}
		if _, err := importer.Import(ctx, pool, places, importer.Options{Table: "geo.ie_swap"}); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		var mu sync.Mutex
		seen := map[int64]int{}
		var readErrs []error
		for r := 0; r < 4; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					var n int64
					err := pool.QueryRow(ctx, "SELECT count(*) FROM geo.ie_swap WHERE geom IS NOT NULL").Scan(&n)
					mu.Lock()
					if err != nil {
						readErrs = append(readErrs, err)
					} else {
						seen[n]++
					}
					mu.Unlock()
				}
			}()
		}
		for k := 0; k < 3; k++ {
			src := airports
			if k%2 == 1 {
				src = places
			}
			if _, err := importer.Import(ctx, pool, src, importer.Options{Table: "geo.ie_swap", IfExists: importer.IfExistsReplace}); err != nil {
				t.Fatal(err)
			}
		}
		stop.Store(true)
		wg.Wait()
		for n := range seen {
			if n != 243 && n != 3376 {
				t.Errorf("a reader saw %d rows: neither the old table nor the new one", n)
			}
		}
		if len(readErrs) > 0 {
			t.Errorf("readers failed during the swaps: %v", readErrs[0])
		}
		if got := count(t, pool, "SELECT count(*) FROM geo.ie_swap"); got != 3376 {
			t.Errorf("after replace: %d rows, want 3376", got)
		}
		checkTable(t, pool, "geo.ie_swap", importer.Result{Rows: 3376, SRID: 4326})
		t.Logf("row counts seen by readers: %v", seen)
	})

	t.Run("append", func(t *testing.T) {
		if _, err := importer.Import(ctx, pool, places, importer.Options{Table: "ie_app", IfExists: importer.IfExistsAppend}); err != nil {
			t.Fatal(err) // appending to a missing table creates it
		}
		res, err := importer.Import(ctx, pool, airports, importer.Options{Table: "ie_app", IfExists: importer.IfExistsAppend, ImportID: "append-1"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows != 3376 || !strings.Contains(strings.Join(res.Warnings, " "), "iata") {
			t.Errorf("append Result = %d rows, warnings %q; want 3376 and the dropped columns named", res.Rows, res.Warnings)
		}
		if got := count(t, pool, "SELECT count(*) FROM ie_app"); got != 243+3376 {
			t.Errorf("after append: %d rows, want %d", got, 243+3376)
		}
		if got := count(t, pool, "SELECT max(cartodb_id) FROM ie_app"); got != 243+3376 {
			t.Errorf("after append: max cartodb_id %d, want %d", got, 243+3376)
		}
		if got := count(t, pool, "SELECT count(*) FROM ie_app WHERE cartodb_id > 243 AND name IS NOT NULL AND latitude IS NOT NULL"); got != 3376 {
			t.Errorf("appended rows with name and latitude: %d, want 3376", got)
		}
		// The same delivery again: applied once.
		res, err = importer.Import(ctx, pool, airports, importer.Options{Table: "ie_app", IfExists: importer.IfExistsAppend, ImportID: "append-1"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.AlreadyApplied || res.Rows != 3376 {
			t.Errorf("re-run Result = %+v, want AlreadyApplied with 3376 rows", res)
		}
		if got := count(t, pool, "SELECT count(*) FROM ie_app"); got != 243+3376 {
			t.Errorf("after a re-run: %d rows, want %d (no duplicates)", got, 243+3376)
		}
		if n := stagingLeft(t, pool); n != 0 {
			t.Errorf("%d staging tables left", n)
		}
	})
}

// TestCancelMidCopy cancels an import while rows stream in: nothing of it
// remains, and the table it was replacing is untouched.
func TestCancelMidCopy(t *testing.T) {
	pool := testDB(t)
	src := importer.Source{Path: data(t, "points/geonames_cities1000.csv.gz")}
	if _, err := importer.Import(ctxT(t), pool, importer.Source{Path: data(t, "fixtures/csv/us_airports_datagov.csv")}, importer.Options{Table: "cancelled"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var progress []importer.Progress
	_, err := importer.Import(ctx, pool, src, importer.Options{
		Table: "cancelled", IfExists: importer.IfExistsReplace,
		Progress: func(p importer.Progress) {
			progress = append(progress, p)
			if p.Rows > 0 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if len(progress) == 0 || progress[0].Phase != "reading" || progress[0].BytesTotal == 0 {
		t.Errorf("progress = %+v", progress)
	}
	if got := count(t, pool, "SELECT count(*) FROM cancelled"); got != 3376 {
		t.Errorf("the replaced table has %d rows, want the old 3376", got)
	}
	if n := stagingLeft(t, pool); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
	// The pool still works, and a new import goes through.
	res, err := importer.Import(ctxT(t), pool, src, importer.Options{Table: "cancelled", IfExists: importer.IfExistsReplace})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, pool, "cancelled", res)
}

// TestKilledImportReruns kills (SIGKILL) a process mid-COPY, then runs the
// same import again: one complete table, no duplicates, no staging left.
func TestKilledImportReruns(t *testing.T) {
	if os.Getenv("MERIDIAN_IMPORT_HELPER_URL") != "" {
		t.Skip("in the helper process")
	}
	db := pgtest.Data(t)
	path := data(t, "points/geonames_cities1000.csv.gz")
	want := onlyLayer(t, ogrInfo(t, path, "-oo", "X_POSSIBLE_NAMES=longitude", "-oo", "Y_POSSIBLE_NAMES=latitude")).count

	cmd := exec.Command(os.Args[0], "-test.run=^TestImportHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "MERIDIAN_IMPORT_HELPER_URL="+db.URL, "MERIDIAN_IMPORT_HELPER_FILE="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var n int64
		err := db.Pool.QueryRow(context.Background(), "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 10000 {
			cmd.Process.Kill() // SIGKILL: no deferred cleanup runs
			killed = true
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("the helper never reached the COPY; output:\n%s", out.String())
	}
	if strings.Contains(out.String(), "IMPORT DONE") {
		t.Fatalf("the helper finished before being killed")
	}
	if n := stagingLeft(t, db.Pool); n == 0 {
		t.Errorf("no staging table left by the killed import (was it killed mid-COPY?)")
	}
	if tableExists(t, db.Pool, "killed") {
		t.Errorf("table killed exists after a killed import")
	}

	// Re-run with the same ID; the dead session's lock may take a moment
	// to go.
	var res importer.Result
	var err error
	for try := 0; try < 50; try++ {
		res, err = importer.Import(ctxT(t), db.Pool, importer.Source{Path: path}, importer.Options{Table: "killed", ImportID: "crash-1"})
		if !errors.Is(err, importer.ErrImportRunning) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, db.Pool, "killed", res)
	if res.Rows != want {
		t.Errorf("re-run imported %d rows, ogrinfo counts %d", res.Rows, want)
	}
	// A third run is a no-op.
	res, err = importer.Import(ctxT(t), db.Pool, importer.Source{Path: path}, importer.Options{Table: "killed", ImportID: "crash-1"})
	if err != nil || !res.AlreadyApplied {
		t.Errorf("third run = %+v, %v; want AlreadyApplied", res, err)
	}
}

// TestImportHelperProcess is the process TestKilledImportReruns kills.
func TestImportHelperProcess(t *testing.T) {
	url := os.Getenv("MERIDIAN_IMPORT_HELPER_URL")
	if url == "" {
		t.Skip("helper for TestKilledImportReruns")
	}
	ctx := context.Background()
	pool, err := pgdb.NewPool(ctx, url, pgdb.PoolConfig{MaxConns: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = importer.Import(ctx, pool, importer.Source{Path: os.Getenv("MERIDIAN_IMPORT_HELPER_FILE")}, importer.Options{
		Table: "killed", ImportID: "crash-1",
		Progress: func(p importer.Progress) { fmt.Println("progress", p.Phase, p.Rows) },
	})
	fmt.Println("IMPORT DONE", err)
}

func TestLayers(t *testing.T) {
	needGDAL(t)
	ctx := ctxT(t)
	ls, err := importer.Layers(ctx, importer.Source{Path: data(t, "fixtures/gpkg/puerto_montt_osm_20170922.gpkg")}, importer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info := ogrInfo(t, data(t, "fixtures/gpkg/puerto_montt_osm_20170922.gpkg"))
	if len(ls) != len(info) || len(ls) != 19 {
		t.Errorf("Layers = %d layers, ogrinfo %d, want 19", len(ls), len(info))
	}
	for _, l := range ls {
		if info[l.Name].count != l.Features {
			t.Errorf("layer %s: %d features, ogrinfo %d", l.Name, l.Features, info[l.Name].count)
		}
	}
	ls, err = importer.Layers(ctx, importer.Source{Path: data(t, "fixtures/csv/us_airports_datagov.csv")}, importer.Options{})
	if err != nil || len(ls) != 1 || ls[0].Name != "us_airports_datagov" {
		t.Errorf("Layers(csv) = %+v, %v", ls, err)
	}

	// A zip holding two shapefiles: two layers, and Layer picks one.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, set := range []string{"qgis_alaska_airports", "qgis_alaska_popp"} {
		for _, e := range zipFixture(t, "fixtures/shapefile/"+set+".zip") {
			w, _ := zw.Create(set + "/" + e.name)
			w.Write(e.data)
		}
	}
	zw.Close()
	path := writeFile(t, "two.zip", buf.Bytes())
	ls, err = importer.Layers(ctx, importer.Source{Path: path}, importer.Options{})
	if err != nil || len(ls) != 2 {
		t.Fatalf("Layers(two shapefiles) = %+v, %v", ls, err)
	}
	pool := testDB(t)
	if _, err := importer.Import(ctx, pool, importer.Source{Path: path}, importer.Options{Table: "two"}); !errors.Is(err, importer.ErrLayerRequired) {
		t.Errorf("import without a layer: error = %v, want ErrLayerRequired", err)
	}
	res, err := importer.Import(ctx, pool, importer.Source{Path: path}, importer.Options{Table: "two", Layer: "popp"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 1891 {
		t.Errorf("layer popp: %d rows, want 1891", res.Rows)
	}
}
