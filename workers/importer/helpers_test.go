package importer_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/workers/importer"
)

// dataDir returns the shared geodata library (SOURCES.md): $MERIDIAN_TESTDATA,
// else ../shared/data next to the repository root; it skips t when absent.
func dataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	if _, err := os.Stat(filepath.Join(dir, "fixtures")); err != nil {
		t.Skipf("geodata library not found at %s (set MERIDIAN_TESTDATA): %v", dir, err)
	}
	return dir
}

func data(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(dataDir(t), rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test file %s missing: %v", rel, err)
	}
	return p
}

func needGDAL(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ogrinfo"); err != nil {
		t.Skip("GDAL (ogrinfo, ogr2ogr) not installed")
	}
}

func testDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return pgtest.Data(t).Pool
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// gdalPath is how ogrinfo opens a file of the library.
func gdalPath(p string) string {
	switch {
	case strings.HasSuffix(p, ".zip"):
		return "/vsizip/" + p
	case strings.HasSuffix(p, ".gz"):
		return "/vsigzip/" + p
	}
	return p
}

var featureCountRE = regexp.MustCompile(`(?m)^Layer name: (.*)$|^Feature Count: (\d+)$|^Extent: \(([-0-9.e]+), ([-0-9.e]+)\) - \(([-0-9.e]+), ([-0-9.e]+)\)$`)

type ogrSummary struct {
	count  int64
	extent [4]float64
}

// ogrInfo runs `ogrinfo -ro -so -al` on p and returns layer → count/extent.
func ogrInfo(t testing.TB, p string, extra ...string) map[string]ogrSummary {
	t.Helper()
	needGDAL(t)
	args := append([]string{"-ro", "-so", "-al"}, extra...)
	args = append(args, gdalPath(p))
	out, err := exec.Command("ogrinfo", args...).Output()
	if err != nil {
		t.Fatalf("ogrinfo %s: %v", p, err)
	}
	res := map[string]ogrSummary{}
	layer := ""
	for _, m := range featureCountRE.FindAllStringSubmatch(string(out), -1) {
		switch {
		case m[1] != "":
			layer = m[1]
		case m[2] != "":
			s := res[layer]
			s.count, _ = strconv.ParseInt(m[2], 10, 64)
			res[layer] = s
		case m[3] != "":
			s := res[layer]
			for i := 0; i < 4; i++ {
				s.extent[i], _ = strconv.ParseFloat(m[3+i], 64)
			}
			res[layer] = s
		}
	}
	return res
}

// onlyLayer returns the single layer of an ogrinfo summary.
func onlyLayer(t testing.TB, s map[string]ogrSummary) ogrSummary {
	t.Helper()
	if len(s) != 1 {
		t.Fatalf("ogrinfo found %d layers, want 1", len(s))
	}
	for _, v := range s {
		return v
	}
	return ogrSummary{}
}

func closeTo(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// stagingLeft counts the staging tables left in the database.
func stagingLeft(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_class WHERE relname LIKE '\_mi\_%' AND relkind = 'r'`).Scan(&n); err != nil {
		t.Fatalf("counting staging tables: %v", err)
	}
	return n
}

func tableExists(t testing.TB, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatalf("checking %s: %v", name, err)
	}
	return ok
}

func count(t testing.TB, pool *pgxpool.Pool, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// columnTypes returns column → format_type of table.
func columnTypes(t testing.TB, pool *pgxpool.Pool, table string) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, table)
	if err != nil {
		t.Fatalf("columns of %s: %v", table, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, ty string
		rows.Scan(&n, &ty)
		out[n] = ty
	}
	return out
}

// checkTable verifies the invariants of every imported table.
func checkTable(t testing.TB, pool *pgxpool.Pool, table string, res importer.Result) {
	t.Helper()
	if got := count(t, pool, "SELECT count(*) FROM "+table); got != res.Rows {
		t.Errorf("%s has %d rows, Result.Rows = %d", table, got, res.Rows)
	}
	if got := count(t, pool, "SELECT count(DISTINCT cartodb_id) FROM "+table); got != res.Rows {
		t.Errorf("%s has %d distinct cartodb_id for %d rows", table, got, res.Rows)
	}
	if got := count(t, pool, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = $1::regclass AND a.amname = 'gist'", table); got != 1 {
		t.Errorf("%s has %d GiST indexes, want 1", table, got)
	}
	if got := count(t, pool, "SELECT count(*) FROM pg_index WHERE indrelid = $1::regclass AND indisprimary", table); got != 1 {
		t.Errorf("%s has no primary key", table)
	}
	if got := count(t, pool, "SELECT count(*) FROM "+table+" WHERE geom IS NOT NULL AND (NOT ST_IsValid(geom) OR ST_SRID(geom) <> 4326)"); got != 0 {
		t.Errorf("%s has %d invalid or non-4326 geometries", table, got)
	}
	if n := stagingLeft(t, pool); n != 0 {
		t.Errorf("%d staging tables left after importing %s", n, table)
	}
	if res.SRID != 4326 {
		t.Errorf("Result.SRID = %d, want 4326", res.SRID)
	}
	b := res.BBox
	if b[0] < -180 || b[2] > 180 || b[1] < -90 || b[3] > 90 || b[0] > b[2] || b[1] > b[3] {
		t.Errorf("Result.BBox = %v, not a lon/lat box", b)
	}
}

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readMaybeGzip(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func gunzip(t testing.TB, r io.Reader) io.Reader {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

func geojsonProps(t testing.TB, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func parseF(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
