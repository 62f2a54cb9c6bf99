package main

// Real-client compatibility: the npm @carto/api-client (compat/carto.mjs)
// and a MapLibre preview page in headless Chromium (compat/browser.mjs),
// both against `meridian up` on throwaway databases. They need node and,
// for the browser, Chromium and the MapLibre build (make static); without
// them they skip, unless MERIDIAN_REQUIRE_DB (make test) or CI is set, in
// which case they fail.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
	"github.com/meridian-gis/meridian/static"
)

// envArtifacts names a folder where the browser test copies its
// screenshot (for CI artifacts and for looking at it); optional.
const envArtifacts = "MERIDIAN_TEST_ARTIFACTS"

// toolsRequired reports whether missing tools must fail the test rather than
// skip it: under `make test` (MERIDIAN_REQUIRE_DB) and in CI.
func toolsRequired() bool {
	return os.Getenv("MERIDIAN_REQUIRE_DB") != "" || os.Getenv("CI") != ""
}

// skipOrFail skips t, or fails it when toolsRequired.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if toolsRequired() {
		t.Fatalf(format+" (required under MERIDIAN_REQUIRE_DB or CI)", args...)
	}
	t.Skipf(format, args...)
}

// needTool returns the path of a program, or skips (fails when toolsRequired).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "%s not found: %v", name, err)
	}
	return p
}

// compatDir returns the absolute path of compat/, running `npm ci` there
// first when its node_modules are missing or older than the lock file.
func compatDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "compat"))
	if err != nil {
		t.Fatal(err)
	}
	stamp, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	lock, lerr := os.Stat(filepath.Join(dir, "package-lock.json"))
	if lerr != nil {
		t.Fatalf("compat/package-lock.json: %v", lerr)
	}
	if err == nil && !stamp.ModTime().Before(lock.ModTime()) {
		return dir
	}
	npm := needTool(t, "npm")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--prefix", dir, "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci --prefix %s: %v\n%s", dir, err, out)
	}
	return dir
}

// runNode runs a compat script with env added and returns its stdout.
// The script and whatever it starts (Chromium) run in their own process
// group, killed as a whole when limit passes.
func runNode(t *testing.T, dir, script string, limit time.Duration, env ...string) ([]byte, error) {
	t.Helper()
	node := needTool(t, "node")
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, script))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("node %s: %v in %v", script, errOrOK(err), time.Since(start).Round(time.Millisecond))
	if stderr.Len() > 0 {
		t.Logf("node %s stderr:\n%s", script, lastBytes(stderr.Bytes(), 4000))
	}
	if ctx.Err() != nil {
		t.Fatalf("node %s did not finish within %v", script, limit)
	}
	return stdout.Bytes(), err
}

// saveArtifact writes b as name in $MERIDIAN_TEST_ARTIFACTS, if set.
func saveArtifact(t *testing.T, name string, b []byte) {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Logf("saving %s: %v", name, err)
	}
}

func errOrOK(err error) any {
	if err == nil {
		return "ok"
	}
	return err
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// upServer is a running `meridian up` whose data connection "local" holds
// the Natural Earth 110m countries as public.countries.
type upServer struct {
	base   string // the edge, http://127.0.0.1:port
	tokens *tokenstore.Store
	data   *pgtest.DB
	meta   *pgtest.DB
}

// countriesFile is the real data the tests load, below $MERIDIAN_TESTDATA.
const countriesFile = "polygons/ne_110m_admin_0_countries.geojson"

// loadCountries loads the 177 NE 110m countries from the GeoJSON file
// into public.countries (name, iso_a3, continent, pop_est, geom
// MultiPolygon 4326).
func loadCountries(t *testing.T, db *pgtest.DB) {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	raw, err := os.ReadFile(filepath.Join(dir, countriesFile))
	if err != nil {
		skipOrFail(t, "test data: %v", err)
	}
	ctx := context.Background()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{sql: `CREATE TABLE public.countries (cartodb_id serial PRIMARY KEY, name text NOT NULL, iso_a3 text,
			continent text, pop_est double precision, geom geometry(MultiPolygon, 4326) NOT NULL)`},
		{sql: `INSERT INTO public.countries (name, iso_a3, continent, pop_est, geom)
			SELECT f->'properties'->>'NAME', f->'properties'->>'ISO_A3', f->'properties'->>'CONTINENT',
				(f->'properties'->>'POP_EST')::double precision,
				ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON((f->'geometry')::text), 4326))
			FROM jsonb_array_elements($1::jsonb->'features') AS f`, args: []any{string(raw)}},
		{sql: `CREATE INDEX countries_geom_idx ON public.countries USING gist (geom)`},
		{sql: `ANALYZE public.countries`},
	} {
		if _, err := db.Pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("loading %s: %v", countriesFile, err)
		}
	}
}

// startUp starts `meridian up` (this test binary, re-executed) on free
// loopback ports, with fresh metadata and data databases, and waits for
// the edge. It stops at cleanup.
func startUp(t *testing.T) *upServer {
	t.Helper()
	meta := pgtest.Meta(t)
	data := pgtest.Data(t)
	loadCountries(t, data)
	ctx := context.Background()
	key := secret.GenerateKey()
	kr, err := secret.ParseKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dataconn.New(meta.Pool, kr).Create(ctx, dataconn.Connection{Name: "local", Kind: "postgres", URL: data.URL}); err != nil {
		t.Fatal(err)
	}
	edgePort := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", edgePort)
	env := []string{
		"MERIDIAN_DATABASE_URL=" + meta.URL,
		"MERIDIAN_SECRET_KEY=" + key,
		fmt.Sprintf("MERIDIAN_EDGE_ADDR=127.0.0.1:%d", edgePort),
		fmt.Sprintf("MERIDIAN_ADMIN_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_TILES_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_CONTROL_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("MERIDIAN_WORKER_ADDR=127.0.0.1:%d", freePort(t)),
		"MERIDIAN_PUBLIC_URL=" + base,
		"MERIDIAN_NODE=compat",
		"HOME=" + t.TempDir(), // Caddy's autosave and data folders
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, envRunAsMeridian+"=1", envMeridianArgs+"=up")...)
	logPath := filepath.Join(t.TempDir(), "up.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
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
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("meridian up log tail:\n%s", lastBytes(b, 6000))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("meridian up exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("edge /healthz did not answer within 90s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &upServer{base: base, tokens: tokenstore.New(meta.Pool, kr, nil), data: data, meta: meta}
}

// token creates a token for sources of connection local. `meridian up`
// made the signing key, so this must come after startUp.
func (u *upServer) token(t *testing.T, apis []grant.API, sources ...string) string {
	t.Helper()
	var grants []grant.Grant
	for _, s := range sources {
		grants = append(grants, grant.Grant{Connection: "local", Source: s})
	}
	tok, _, err := u.tokens.Create(context.Background(), tokenstore.Spec{Owner: "compat-test", Grants: grants, APIs: apis})
	if err != nil {
		t.Fatalf("creating a token for %q: %v", sources, err)
	}
	return tok
}

// count runs a count query on the data database.
func (u *upServer) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := u.data.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// text runs a query of one text value on the data database.
func (u *upServer) text(t *testing.T, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := u.data.Pool.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// The parts of compat/carto.mjs's report the test reads.
type (
	cartoReport struct {
		Client struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"client"`
		Node     string                `json:"node"`
		OK       bool                  `json:"ok"`
		Checks   map[string]cartoCheck `json:"checks"`
		Requests []wireRequest         `json:"requests"`
	}
	cartoCheck struct {
		OK             bool             `json:"ok"`
		Problem        string           `json:"problem"`
		Error          *cartoError      `json:"error"`
		TileJSON       string           `json:"tilejson"`
		Tiles          []string         `json:"tiles"`
		FormatTiles    string           `json:"formatTiles"`
		Geometry       string           `json:"geometry"`
		Schema         []string         `json:"schema"`
		AccessTokenSet bool             `json:"accessTokenSet"`
		SQLLength      int              `json:"sqlLength"`
		Tile           *decodedTile     `json:"tile"`
		Rows           []map[string]any `json:"rows"`
		Requests       []string         `json:"requests"`
	}
	cartoError struct {
		Name          string `json:"name"`
		Message       string `json:"message"`
		CartoAPIError bool   `json:"cartoAPIError"`
		Status        int    `json:"status"`
		ServerError   string `json:"serverError"`
		RequestType   string `json:"requestType"`
	}
	decodedTile struct {
		Status      int                  `json:"status"`
		ContentType string               `json:"contentType"`
		Bytes       int                  `json:"bytes"`
		Body        string               `json:"body"`
		Layers      map[string]tileLayer `json:"layers"`
	}
	tileLayer struct {
		Features int            `json:"features"`
		Extent   int            `json:"extent"`
		Types    map[string]int `json:"types"`
		Keys     []string       `json:"keys"`
	}
	wireRequest struct {
		Method     string `json:"method"`
		Path       string `json:"path"`
		URLLength  int    `json:"urlLength"`
		BodyLength int    `json:"bodyLength"`
		Token      string `json:"token"`
		Status     int    `json:"status"`
	}
)

// The SQL the client sends, and what the token grants (the same text).
const (
	compatQuery   = "SELECT cartodb_id, name, pop_est, geom FROM public.countries WHERE pop_est > $1"
	compatSQL     = "SELECT count(*)::int AS n, min(name) AS first FROM public.countries WHERE continent = $1"
	compatMissing = "public.meridian_compat_missing"
	// compatTimeQuery gives the countries a timestamp, for the time-series widget.
	compatTimeQuery = "SELECT cartodb_id, name, geom, timestamp '2000-01-01' + cartodb_id * interval '20 days' AS t FROM public.countries"
	// compatEurope is the widgets' spatial filter, a lon/lat box.
	compatEurope = `{"type":"Polygon","coordinates":[[[-10,35],[30,35],[30,60],[-10,60],[-10,35]]]}`
)

// @carto/api-client, unchanged, against `meridian up`: table and query
// sources (GET, and POST past the URL limit) whose TileJSON leads to MVT
// tiles, the SQL API both ways, and its error path for an unknown table
// and for a token without the query grants.
func TestCartoClientCompat(t *testing.T) {
	needTool(t, "node")
	dir := compatDir(t)
	u := startUp(t)
	mapsSQL := []grant.API{grant.APIMaps, grant.APISQL}
	// Grants for the exact texts (a padded copy differs only by a comment,
	// which grant matching ignores), and for the missing table so that its
	// answer is a 404, not a 403.
	grants := []string{"public.countries", compatQuery, compatSQL, compatMissing, compatTimeQuery, compatQuadbinTable, compatQuadbinQuery}
	if compatH3Table != "" {
		grants = append(grants, compatH3Table, compatH3Query)
	}
	tok := u.token(t, mapsSQL, grants...)
	wantQuadbinRows, wantQuadbinIn := loadQuadbinTable(t, u) // compat_spatialindex_test.go
	wantH3Rows, wantH3In := loadCountriesH3(t, u)            // compat_h3_test.go
	denied := u.token(t, mapsSQL, "public.countries")

	const minPop, continent = 100_000_000, "Africa"
	wantQueryRows := u.count(t, "SELECT count(*) FROM public.countries WHERE pop_est > $1", minPop)
	wantAfrica := u.count(t, "SELECT count(*) FROM public.countries WHERE continent = $1", continent)
	var wantFirst string
	if err := u.data.Pool.QueryRow(context.Background(), "SELECT min(name) FROM public.countries WHERE continent = $1", continent).Scan(&wantFirst); err != nil {
		t.Fatal(err)
	}
	if wantQueryRows == 0 || wantAfrica == 0 {
		t.Fatalf("test data: %d countries above %d people, %d in %s; want some", wantQueryRows, minPop, wantAfrica, continent)
	}

	out, err := runNode(t, dir, "carto.mjs", 3*time.Minute,
		"API_BASE_URL="+u.base+"/api",
		"ACCESS_TOKEN="+tok,
		"DENIED_TOKEN="+denied,
		"CONNECTION=local",
		"TABLE=public.countries",
		"TABLE_COLUMNS=name,pop_est",
		"QUERY="+compatQuery,
		fmt.Sprintf("QUERY_PARAMS=[%d]", minPop),
		"SQL="+compatSQL,
		`SQL_PARAMS=["`+continent+`"]`,
		"MISSING_TABLE="+compatMissing,
		"WIDGETS="+compatWidgets,
		"QUADBIN_TABLE="+compatQuadbinTable,
		"QUADBIN_QUERY="+compatQuadbinQuery,
		"H3_TABLE="+compatH3Table,
		"H3_QUERY="+compatH3Query,
		"H3_PICK_TILE="+compatH3PickTile,
		"INDEX_POLYGON="+compatEurope,
	)
	saveArtifact(t, "carto-report.json", out)
	var rep cartoReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("carto.mjs (exit %v) printed no JSON report: %v\n%s", err, jerr, lastBytes(out, 4000))
	}
	t.Logf("%s %s on node %s, %d requests", rep.Client.Name, rep.Client.Version, rep.Node, len(rep.Requests))
	if !rep.OK || err != nil {
		for name, c := range rep.Checks {
			if !c.OK {
				t.Errorf("check %s: %s: %+v (requests %q)", name, c.Problem, c.Error, c.Requests)
			}
		}
		t.Fatalf("carto.mjs: ok=%v exit %v", rep.OK, err)
	}
	checkQuadbinReport(t, out, wantQuadbinRows)
	checkIndexWidgets(t, out, "quadbinWidgets", wantQuadbinRows, wantQuadbinIn)
	checkIndexPick(t, u, out, "quadbinPick", quadbinHolds) // compat_spatialindex_test.go
	if compatH3Table != "" {
		checkIndexWidgets(t, out, "h3Widgets", wantH3Rows, wantH3In)
		checkIndexPick(t, u, out, "h3Pick", h3Holds)
	}

	// Sources: TileJSON as deck.gl reads it, and one decoded tile each.
	for _, tt := range []struct {
		check        string
		wantFeatures int // 0: at least 150 (tiny countries may vanish at z0)
		wantKeys     []string
	}{
		{check: "tableSource", wantKeys: []string{"name", "pop_est"}},
		{check: "querySource", wantFeatures: wantQueryRows, wantKeys: []string{"cartodb_id", "name", "pop_est"}},
		{check: "querySourcePost", wantFeatures: wantQueryRows, wantKeys: []string{"cartodb_id", "name", "pop_est"}},
	} {
		c := rep.Checks[tt.check]
		if c.TileJSON == "" || c.FormatTiles != "mvt" || len(c.Tiles) == 0 || !strings.HasPrefix(c.Tiles[0], u.base+"/api/v3/maps/local/") {
			t.Errorf("%s: tilejson %q, formatTiles %q, tiles %q; want a TileJSON with mvt tiles under %s", tt.check, c.TileJSON, c.FormatTiles, c.Tiles, u.base)
		}
		if c.Geometry != "Polygon" || !c.AccessTokenSet {
			t.Errorf("%s: geometry %q, accessToken set %v; want Polygon, true", tt.check, c.Geometry, c.AccessTokenSet)
		}
		tile := c.Tile
		if tile == nil || tile.Status != 200 || tile.ContentType != "application/vnd.mapbox-vector-tile" {
			t.Errorf("%s: tile 0/0/0 = %+v, want a 200 MVT", tt.check, tile)
			continue
		}
		l, ok := tile.Layers["default"]
		if !ok || len(tile.Layers) != 1 {
			t.Errorf("%s: tile layers %v, want one, default", tt.check, tile.Layers)
			continue
		}
		switch {
		case tt.wantFeatures == 0 && l.Features < 150, tt.wantFeatures > 0 && l.Features != tt.wantFeatures:
			t.Errorf("%s: tile 0/0/0 has %d features, want %d (0: at least 150)", tt.check, l.Features, tt.wantFeatures)
		}
		if len(l.Types) != 1 || l.Types["Polygon"] != l.Features {
			t.Errorf("%s: geometry types %v, want only Polygon", tt.check, l.Types)
		}
		if !slices.Equal(l.Keys, tt.wantKeys) {
			t.Errorf("%s: tile properties %q, want %q", tt.check, l.Keys, tt.wantKeys)
		}
	}

	checkPickReport(t, out)

	// SQL API, both ways.
	for _, name := range []string{"sql", "sqlPost"} {
		rows := rep.Checks[name].Rows
		if len(rows) != 1 || rows[0]["n"] != float64(wantAfrica) || rows[0]["first"] != wantFirst {
			t.Errorf("%s: rows %v, want [{n:%d first:%s}]", name, rows, wantAfrica, wantFirst)
		}
	}

	// The wire: GET under the URL limit, POST above it, with the token.
	wire := func(method, path, token string, status int, long bool) bool {
		for _, r := range rep.Requests {
			if r.Method == method && r.Path == path && r.Token == token && r.Status == status &&
				(r.URLLength > 7000 || r.BodyLength > 7000) == long {
				return true
			}
		}
		return false
	}
	for _, tt := range []struct {
		method, path string
		long         bool
	}{
		{"GET", "/api/v3/maps/local/table", false},
		{"GET", "/api/v3/maps/local/query", false},
		{"POST", "/api/v3/maps/local/query", true},
		{"GET", "/api/v3/sql/local/query", false},
		{"POST", "/api/v3/sql/local/query", true},
	} {
		if !wire(tt.method, tt.path, "access", 200, tt.long) {
			t.Errorf("no %s %s (long: %v) answered 200 in the wire log %+v", tt.method, tt.path, tt.long, rep.Requests)
		}
	}
	if n := rep.Checks["querySourcePost"].SQLLength; n <= 7000 {
		t.Errorf("the padded SQL has %d characters, want more than 7000", n)
	}

	// The error path: CartoAPIError carrying the server's message.
	for _, tt := range []struct {
		check       string
		status      int
		wantRequest string
		wantServer  string // in the server's error text
		wantMessage string // in the client's message
	}{
		{"missingTable", 404, "Map instantiation", "meridian_compat_missing", "Server returned: Not found (404): "},
		{"deniedQuery", 403, "Map instantiation", "", "Server returned: Unauthorized access (403): "},
		{"deniedQueryPost", 403, "Map instantiation", "", "Server returned: Unauthorized access (403): "},
		{"deniedSql", 403, "SQL", "", "Server returned: Unauthorized access (403): "},
	} {
		e := rep.Checks[tt.check].Error
		if e == nil || !e.CartoAPIError || e.Name != "CartoAPIError" {
			t.Errorf("%s: error %+v, want a CartoAPIError", tt.check, e)
			continue
		}
		if e.Status != tt.status || e.RequestType != tt.wantRequest || e.ServerError == "" ||
			!strings.Contains(e.ServerError, tt.wantServer) || !strings.Contains(e.Message, tt.wantMessage+e.ServerError) {
			t.Errorf("%s: status %d, request %q, server error %q, message %q; want %d, %q, a server error containing %q, and the message %q + it",
				tt.check, e.Status, e.RequestType, e.ServerError, e.Message, tt.status, tt.wantRequest, tt.wantServer, tt.wantMessage)
		}
	}
	if !wire("POST", "/api/v3/maps/local/query", "denied", 403, true) {
		t.Errorf("the denied padded query was not POSTed and refused: %+v", rep.Requests)
	}

	checkWidgets(t, u, out, minPop)
}

// compatWidgets is carto.mjs's WIDGETS: the widget calls on public.countries.
const compatWidgets = `{"category": "continent", "number": "pop_est", "label": "name",
	"ticks": [1000000, 10000000, 100000000],
	"filter": {"continent": {"in": {"values": ["Africa"]}}},
	"polygon": ` + compatEurope + `,
	"timeQuery": "` + compatTimeQuery + `", "timeColumn": "t"}`

// widgetReport is what carto.mjs reports of the widget calls: the values
// @carto/api-client returned.
type widgetReport struct {
	Checks struct {
		Formula struct {
			Count, Sum, Filtered, InPolygon, OwnFilter struct{ Value float64 }
		} `json:"widgetFormula"`
		QueryFormula struct{ Count struct{ Value float64 } } `json:"widgetQueryFormula"`
		Categories   struct {
			Rows []struct {
				Name  string  `json:"name"`
				Value float64 `json:"value"`
			} `json:"rows"`
		} `json:"widgetCategories"`
		Histogram struct{ Bins []float64 }                   `json:"widgetHistogram"`
		Range     struct{ Range struct{ Min, Max float64 } } `json:"widgetRange"`
		Scatter   struct {
			Count int       `json:"count"`
			First []float64 `json:"first"`
		} `json:"widgetScatter"`
		Table struct {
			Rows       []map[string]any `json:"rows"`
			TotalCount int              `json:"totalCount"`
		} `json:"widgetTable"`
		TimeSeries struct {
			Rows []struct {
				Name  string  `json:"name"`
				Value float64 `json:"value"`
			} `json:"rows"`
			Categories []string `json:"categories"`
		} `json:"widgetTimeSeries"`
		Aggregations struct{ List, String []map[string]float64 } `json:"widgetAggregations"`
		Extent       struct{ Table, Query []float64 }            `json:"widgetExtent"`
		Post         struct{ Count struct{ Value float64 } }     `json:"widgetPost"`
		Unknown      struct {
			Error struct{ Name, Message string }
		} `json:"widgetUnknownColumn"`
		Denied struct {
			Error struct{ Name, Message string }
		} `json:"widgetDenied"`
	} `json:"checks"`
}

// checkWidgets compares the widget values @carto/api-client got through
// the edge with the same aggregates computed by PostgreSQL.
func checkWidgets(t *testing.T, u *upServer, out []byte, minPop int) {
	t.Helper()
	var rep widgetReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("widget report: %v", err)
	}
	w := rep.Checks
	ctx := context.Background()
	db := u.data.Pool
	f := func(sql string, args ...any) float64 {
		t.Helper()
		var v float64
		if err := db.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	if len(w.Aggregations.List) != 1 || len(w.Aggregations.String) != 1 {
		t.Fatalf("getAggregations rows: %v and %v, want one each", w.Aggregations.List, w.Aggregations.String)
	}
	const inEurope = "ST_Intersects(geom, ST_GeomFromGeoJSON('" + compatEurope + "'))"
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"getFormula count", w.Formula.Count.Value, f("SELECT count(*) FROM public.countries")},
		{"getFormula sum", w.Formula.Sum.Value, f("SELECT sum(pop_est) FROM public.countries")},
		{"getFormula count in Africa", w.Formula.Filtered.Value, f("SELECT count(*) FROM public.countries WHERE continent = 'Africa'")},
		{"getFormula count in the polygon", w.Formula.InPolygon.Value, f("SELECT count(*) FROM public.countries WHERE " + inEurope)},
		{"getFormula count, own filter ignored", w.Formula.OwnFilter.Value, f("SELECT count(*) FROM public.countries")},
		{"getFormula count of the query", w.QueryFormula.Count.Value, f("SELECT count(*) FROM public.countries WHERE pop_est > $1", minPop)},
		{"getFormula count, POSTed", w.Post.Count.Value, f("SELECT count(*) FROM public.countries WHERE continent = 'Africa'")},
		{"getRange min", w.Range.Range.Min, f("SELECT min(pop_est) FROM public.countries")},
		{"getRange max", w.Range.Range.Max, f("SELECT max(pop_est) FROM public.countries")},
		{"getScatter points", float64(w.Scatter.Count), f("SELECT count(*) FROM public.countries WHERE pop_est IS NOT NULL")},
		{"getTable totalCount", float64(w.Table.TotalCount), f("SELECT count(*) FROM public.countries")},
		{"getAggregations list Total", w.Aggregations.List[0]["total"], f("SELECT sum(pop_est) FROM public.countries")},
		{"getAggregations list n", w.Aggregations.List[0]["n"], f("SELECT count(*) FROM public.countries")},
		{"getAggregations string Total", w.Aggregations.String[0]["total"], f("SELECT sum(pop_est) FROM public.countries")},
		{"getAggregations string n", w.Aggregations.String[0]["n"], f("SELECT count(*) FROM public.countries")},
	} {
		if math.Abs(c.got-c.want) > 1e-6*math.Max(1, math.Abs(c.want)) || c.want == 0 {
			t.Errorf("%s = %v, want %v (nonzero)", c.name, c.got, c.want)
		}
	}

	// Categories: the top 3 by count, then _carto_others with the rest.
	rows, err := db.Query(ctx, "SELECT continent, count(*)::float8 FROM public.countries GROUP BY 1 ORDER BY 2 DESC, 1")
	if err != nil {
		t.Fatal(err)
	}
	type cat struct {
		Name  string
		Value float64
	}
	var want []cat
	var rest float64
	for rows.Next() {
		var c cat
		rows.Scan(&c.Name, &c.Value)
		if len(want) < 3 {
			want = append(want, c)
		} else {
			rest += c.Value
		}
	}
	rows.Close()
	want = append(want, cat{"_carto_others", rest})
	var got []cat
	for _, r := range w.Categories.Rows {
		got = append(got, cat(r))
	}
	if !slices.Equal(got, want) {
		t.Errorf("getCategories = %v, want %v", got, want)
	}

	// Histogram: one bin below the first tick, one between each pair, one above.
	bins := []float64{
		f("SELECT count(*) FROM public.countries WHERE pop_est < 1000000"),
		f("SELECT count(*) FROM public.countries WHERE pop_est >= 1000000 AND pop_est < 10000000"),
		f("SELECT count(*) FROM public.countries WHERE pop_est >= 10000000 AND pop_est < 100000000"),
		f("SELECT count(*) FROM public.countries WHERE pop_est >= 100000000"),
	}
	if !slices.Equal(w.Histogram.Bins, bins) {
		t.Errorf("getHistogram = %v, want %v", w.Histogram.Bins, bins)
	}

	// Table: the page, columns under their names.
	trows, err := db.Query(ctx, "SELECT name, pop_est FROM public.countries ORDER BY pop_est DESC NULLS LAST, name LIMIT 5 OFFSET 2")
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for trows.Next() {
		var name string
		var pop float64
		trows.Scan(&name, &pop)
		if i >= len(w.Table.Rows) || w.Table.Rows[i]["name"] != name || w.Table.Rows[i]["pop_est"] != pop {
			t.Errorf("getTable row %d = %v, want %s, %v", i, w.Table.Rows[min(i, len(w.Table.Rows)-1)], name, pop)
		}
		i++
	}
	trows.Close()
	if i != 5 || len(w.Table.Rows) != 5 {
		t.Errorf("getTable has %d rows, want 5", len(w.Table.Rows))
	}

	// Time series: yearly counts, named by the year's start.
	srows, err := db.Query(ctx, "SELECT to_char(date_trunc('year', t), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), count(*)::float8 FROM ("+compatTimeQuery+") q GROUP BY 1 ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	var series []cat
	for srows.Next() {
		var c cat
		srows.Scan(&c.Name, &c.Value)
		series = append(series, c)
	}
	srows.Close()
	var gotSeries []cat
	for _, r := range w.TimeSeries.Rows {
		gotSeries = append(gotSeries, cat(r))
	}
	if !slices.Equal(gotSeries, series) || len(series) < 5 || w.TimeSeries.Categories == nil {
		t.Errorf("getTimeSeries = %v (categories %v), want %v and []", gotSeries, w.TimeSeries.Categories, series)
	}

	// Extents (Stats API), in lon/lat.
	box := func(sql string, args ...any) []float64 {
		b := make([]float64, 4)
		if err := db.QueryRow(ctx, "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom)::geometry AS e FROM ("+sql+") q) s", args...).
			Scan(&b[0], &b[1], &b[2], &b[3]); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return b
	}
	for _, c := range []struct {
		name      string
		got, want []float64
	}{
		{"getExtent of Africa", w.Extent.Table, box("SELECT geom FROM public.countries WHERE continent = 'Africa'")},
		{"getExtent of the query", w.Extent.Query, box(compatQuery, minPop)},
	} {
		if len(c.got) != 4 || math.Abs(c.got[0]-c.want[0]) > 1e-9 || math.Abs(c.got[1]-c.want[1]) > 1e-9 ||
			math.Abs(c.got[2]-c.want[2]) > 1e-9 || math.Abs(c.got[3]-c.want[3]) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// The error paths: the client's own errors from the JSON bodies.
	if e := w.Unknown.Error; e.Name != "InvalidColumnError" || !strings.Contains(e.Message, "Column not found meridian_no_such_column") {
		t.Errorf("widget on a missing column: %+v, want InvalidColumnError naming the column", e)
	}
	if e := w.Denied.Error; e.Message != "Forbidden access to the requested data" {
		t.Errorf("widget on a query not granted: %+v, want the client's 403 error", e)
	}

	// The wire: GETs of every model and of the Stats API, the long one POSTed.
	var rep2 cartoReport
	json.Unmarshal(out, &rep2)
	seen := map[string]bool{}
	for _, r := range rep2.Requests {
		seen[fmt.Sprintf("%s %s %d %s", r.Method, r.Path, r.Status, r.Token)] = true
	}
	for _, want := range []string{
		"GET /api/v3/sql/local/model/formula 200 access", "GET /api/v3/sql/local/model/category 200 access",
		"GET /api/v3/sql/local/model/histogram 200 access", "GET /api/v3/sql/local/model/range 200 access",
		"GET /api/v3/sql/local/model/scatterplot 200 access", "GET /api/v3/sql/local/model/table 200 access",
		"GET /api/v3/sql/local/model/timeseries 200 access", "GET /api/v3/sql/local/model/aggregations 200 access",
		"GET /api/v3/stats/local/public.countries/geom 200 access", "GET /api/v3/stats/local/geom 200 access",
		"POST /api/v3/sql/local/model/formula 200 access", "GET /api/v3/sql/local/model/formula 400 access",
		"GET /api/v3/sql/local/model/formula 403 denied",
	} {
		if !seen[want] {
			t.Errorf("no %q in the wire log %v", want, rep2.Requests)
		}
	}
}

// The parts of compat/browser.mjs's report the test reads.
type (
	browserReport struct {
		OK         bool   `json:"ok"`
		Playwright string `json:"playwright"`
		Browser    string `json:"browser"`
		WebGL      *struct {
			Version  string `json:"version"`
			Renderer string `json:"renderer"`
		} `json:"webgl"`
		Pages    []pageReport `json:"pages"`
		Problems []string     `json:"problems"`
	}
	pageReport struct {
		Name      string   `json:"name"`
		OK        bool     `json:"ok"`
		State     string   `json:"state"`
		Error     string   `json:"error"`
		MapErrors []string `json:"mapErrors"`
		Features  int      `json:"features"`
		Pixels    *struct {
			Fraction       float64 `json:"fraction"`
			DistinctColors int     `json:"distinctColors"`
		} `json:"pixels"`
		PageErrors     []string `json:"pageErrors"`
		Console        []string `json:"console"`
		FailedRequests []string `json:"failedRequests"`
		Responses      []struct {
			Method     string `json:"method"`
			Path       string `json:"path"`
			Status     int    `json:"status"`
			Bearer     bool   `json:"bearer"`
			TokenInURL bool   `json:"tokenInURL"`
		} `json:"responses"`
		Screenshot string   `json:"screenshot"`
		Problems   []string `json:"problems"`
	}
)

// pointsQuery is a query source of points (an untyped geometry column),
// previewed with queryParameters.
const pointsQuery = "SELECT cartodb_id, name, ST_PointOnSurface(geom) AS geom FROM public.countries WHERE continent = $1"

// The preview page through the edge, in headless Chromium: MapLibre
// instantiates the source, loads its TileJSON and tiles with the token as
// a header only, and draws it: the countries table (polygons), and a
// query of points with queryParameters.
// fijiQuery is a source across the antimeridian for the preview.
const fijiQuery = "SELECT * FROM public.countries WHERE name = 'Fiji'"

func TestPreviewInBrowser(t *testing.T) {
	needTool(t, "node")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = needTool(t, "chromium")
	}
	page, err := static.Preview()
	if err != nil {
		t.Fatalf("static.Preview: %v", err)
	}
	if !page.MapLibre {
		skipOrFail(t, "this test binary was built without MapLibre GL JS: run make static first")
	}
	dir := compatDir(t)
	u := startUp(t)
	tok := u.token(t, []grant.API{grant.APIMaps}, "public.countries", pointsQuery, fijiQuery)
	const tablePreview = "/api/v3/maps/local/preview?name=public.countries"

	// The page itself, as a plain client gets it through the edge.
	get := func(path string, hdr ...string) (int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", u.base+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, b
	}
	if code, _, body := get(tablePreview); code != http.StatusUnauthorized {
		t.Errorf("preview without a token = %d %s, want 401", code, body)
	}
	code, h, body := get(tablePreview+"&access_token="+tok, "Accept-Encoding", "gzip")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || h.Get("Content-Encoding") != "gzip" ||
		!bytes.Equal(body, page.Gzip) || !strings.Contains(h.Get("Cache-Control"), "private") {
		t.Errorf("preview through the edge = %d, %q, %q, Cache-Control %q, %d bytes; want 200, the gzipped page, private",
			code, h.Get("Content-Type"), h.Get("Content-Encoding"), h.Get("Cache-Control"), len(body))
	}
	if code, _, _ := get(tablePreview+"&access_token="+tok, "If-None-Match", page.ETag); code != http.StatusNotModified {
		t.Errorf("preview with If-None-Match = %d, want 304", code)
	}

	wantPoints := u.count(t, "SELECT count(*) FROM public.countries WHERE continent = $1", "Africa")
	type pageSpec struct {
		Name        string  `json:"name"`
		URL         string  `json:"url"`
		MinFraction float64 `json:"minFraction"`
	}
	pointsURL := u.base + "/api/v3/maps/local/preview?" + url.Values{
		"q": {pointsQuery}, "queryParameters": {`["Africa"]`}, "access_token": {tok}}.Encode()
	// The offline basemap under the table: light and dark.
	loadBasemap(t, u)
	basemapURL := func(style string) string { return u.base + tablePreview + "&basemap=" + style + "&access_token=" + tok }
	pages, _ := json.Marshal([]pageSpec{
		{Name: "basemap-light", URL: basemapURL("meridian-light"), MinFraction: 0.3},
		{Name: "basemap-dark", URL: basemapURL("meridian-dark"), MinFraction: 0.3},
		// The world's land, filled: well over a tenth of the canvas.
		{Name: "table", URL: u.base + tablePreview + "&access_token=" + tok, MinFraction: 0.1},
		// 51 dots of about 50 pixels each.
		{Name: "points", URL: pointsURL, MinFraction: 0.001},
		// Fiji lies across the antimeridian: fitted, its islands fill a
		// good part of the canvas (fitted to the world's bounds they would
		// be a few pixels).
		{Name: "antimeridian", URL: u.base + "/api/v3/maps/local/preview?" + url.Values{
			"q": {fijiQuery}, "access_token": {tok}}.Encode(), MinFraction: 0.02},
	})
	shots := t.TempDir()
	out, err := runNode(t, dir, "browser.mjs", 4*time.Minute,
		"PAGES="+string(pages),
		"SCREENSHOT_DIR="+shots,
		"CHROMIUM="+chromium,
		"TIMEOUT_MS=60000",
	)
	saveArtifact(t, "browser-report.json", out)
	var rep browserReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("browser.mjs (exit %v) printed no JSON report: %v\n%s", err, jerr, lastBytes(out, 4000))
	}
	t.Logf("Chromium %s via playwright-core %s, WebGL %+v; screenshots in %s", rep.Browser, rep.Playwright, rep.WebGL, shots)
	for _, p := range rep.Pages {
		if b, err := os.ReadFile(p.Screenshot); err == nil {
			saveArtifact(t, p.Name+".png", b)
		} else {
			t.Errorf("%s: screenshot: %v", p.Name, err)
		}
	}
	if !rep.OK || err != nil || len(rep.Pages) != 5 {
		for _, p := range rep.Pages {
			if !p.OK {
				t.Errorf("page %s: problems %q\nstate %s %q, map errors %q, page errors %q\nfailed requests %q\nconsole %q",
					p.Name, p.Problems, p.State, p.Error, p.MapErrors, p.PageErrors, p.FailedRequests, p.Console)
			}
		}
		t.Fatalf("browser.mjs: ok=%v exit %v, %d pages, problems %q", rep.OK, err, len(rep.Pages), rep.Problems)
	}

	checkBasemapPages(t, rep)
	for _, tt := range []struct {
		page, typ   string
		minFeatures int
		minFraction float64
		maxFeatures int
	}{
		{page: "table", typ: "table", minFeatures: 150, maxFeatures: 1000, minFraction: 0.1},
		{page: "points", typ: "query", minFeatures: wantPoints, maxFeatures: 2 * wantPoints, minFraction: 0.001},
	} {
		i := slices.IndexFunc(rep.Pages, func(p pageReport) bool { return p.Name == tt.page })
		if i < 0 {
			t.Errorf("no report for page %s", tt.page)
			continue
		}
		p := rep.Pages[i]
		if p.State != "idle" || len(p.MapErrors) > 0 || len(p.PageErrors) > 0 {
			t.Errorf("%s: state %q, map errors %q, page errors %q; want idle and none", tt.page, p.State, p.MapErrors, p.PageErrors)
		}
		// Features are counted per loaded tile: one crossing tiles counts more than once.
		if p.Features < tt.minFeatures || p.Features > tt.maxFeatures {
			t.Errorf("%s: the map holds %d features, want %d to %d", tt.page, p.Features, tt.minFeatures, tt.maxFeatures)
		}
		if p.Pixels == nil || p.Pixels.Fraction < tt.minFraction || p.Pixels.DistinctColors < 3 {
			t.Errorf("%s: canvas pixels %+v, want more than %.1f%% off the background, in several colors", tt.page, p.Pixels, 100*tt.minFraction)
		}
		tilePath := regexp.MustCompile(`^/api/v3/maps/local/` + tt.typ + `/\d+/\d+/\d+$`)
		var tiles, inst, tj int
		for _, r := range p.Responses {
			switch {
			case tilePath.MatchString(r.Path):
				tiles++
				if r.Status != 200 && r.Status != 204 || !r.Bearer || r.TokenInURL {
					t.Errorf("%s: tile %s %s = %d, bearer %v, token in URL %v; want 200 or 204, the token as a header only",
						tt.page, r.Method, r.Path, r.Status, r.Bearer, r.TokenInURL)
				}
			case r.Path == "/api/v3/maps/local/"+tt.typ:
				inst++
			case r.Path == "/api/v3/maps/local/"+tt.typ+"/tilejson":
				tj++
			}
			if r.Status >= 400 {
				t.Errorf("%s: %s %s = %d", tt.page, r.Method, r.Path, r.Status)
			}
		}
		if inst != 1 || tj != 1 || tiles == 0 {
			t.Errorf("%s: the page made %d instantiations, %d TileJSON and %d tile requests; want 1, 1, some", tt.page, inst, tj, tiles)
		}
	}
}

// checkPickReport checks carto.mjs's widgetPick: a feature id read from a
// tile, getFeatures returning that feature's label with its id, and a
// count of 1 over it.
func checkPickReport(t *testing.T, out []byte) {
	t.Helper()
	var rep struct {
		Checks struct {
			WidgetPick struct {
				Label  string `json:"label"`
				ID     string `json:"id"`
				Picked struct {
					Rows []map[string]any `json:"rows"`
				} `json:"picked"`
				Count struct {
					Value float64 `json:"value"`
				} `json:"count"`
			} `json:"widgetPick"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	r := rep.Checks.WidgetPick
	if len(r.ID) != 16 || r.Label == "" {
		t.Fatalf("widgetPick: tile feature id %q, label %q; want a 16-digit id and a label", r.ID, r.Label)
	}
	if len(r.Picked.Rows) != 1 || r.Picked.Rows[0]["_carto_feature_id"] != r.ID || r.Picked.Rows[0]["name"] != r.Label {
		t.Errorf("widgetPick: getFeatures rows %v, want the feature %s (%s)", r.Picked.Rows, r.ID, r.Label)
	}
	if r.Count.Value != 1 {
		t.Errorf("widgetPick: formula over featureIds = %v, want 1", r.Count.Value)
	}
}
