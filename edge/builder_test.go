package main

// The Builder as a user drives it, in Chromium (compat/builder.mjs):
// make a map from a table and a query, style both, add widgets that
// cross-filter, reload, share with a viewer, publish, open the public
// link with no session. Needs node, Chromium and the Builder bundle
// (make static).

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/static"
)

// builderReport is what compat/builder.mjs prints.
type builderReport struct {
	OK       bool                       `json:"ok"`
	Steps    map[string]json.RawMessage `json:"steps"`
	Problems []string                   `json:"problems"`
	Console  []string                   `json:"console"`
}

type builderLayer struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Loaded bool   `json:"loaded"`
	Tiles  string `json:"tiles"`
}

func builderBuilt(t *testing.T) { appBuilt(t, "builder/index.html", "builder") }

// appBuilt skips (or fails) the test when the app served at page was
// built without its bundle (assets/<app>.*.js).
func appBuilt(t *testing.T, page, app string) {
	t.Helper()
	apps, err := static.WebApps()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(apps, page)
	if err != nil || !strings.Contains(string(b), "/assets/"+app+".") {
		skipOrFail(t, "this test binary was built without the %s bundle: run make static first", app)
	}
}

func TestBuilderInBrowser(t *testing.T) {
	needTool(t, "node")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = needTool(t, "chromium")
	}
	builderBuilt(t)
	dir := compatDir(t)
	u := startUp(t)

	// The first account of a fresh install is its admin.
	admin := &session{base: u.base}
	const password = "correct horse battery"
	admin.must(t, 201, "POST", "/accounts-api/signup", map[string]any{"email": "admin@example.test", "password": password, "name": "Admin"})

	testdata := os.Getenv("MERIDIAN_TESTDATA")
	if testdata == "" {
		testdata = filepath.Join("..", "..", "shared", "data")
	}
	if _, err := os.Stat(filepath.Join(testdata, "fixtures", "gpkg")); err != nil {
		skipOrFail(t, "no test data (MERIDIAN_TESTDATA): %v", err)
	}

	// A map with a layer on a table that is then dropped.
	if _, err := u.data.Pool.Exec(context.Background(), `CREATE TABLE public.doomed AS SELECT cartodb_id, name, geom FROM public.countries WHERE continent = 'Europe'`); err != nil {
		t.Fatal(err)
	}
	broken := admin.must(t, 201, "POST", "/workspace-api/maps", map[string]any{"title": "Broken", "datasets": []any{
		map[string]any{"id": "world", "type": "table", "source": "public.countries", "connectionName": "local", "columns": []string{"name"}},
		map[string]any{"id": "doomed", "type": "table", "source": "public.doomed", "connectionName": "local", "columns": []string{"name"}},
	}, "keplerMapConfig": keplerConfig(0, 0, 1, keplerLayer("w", "mvt", "world", nil, ""), keplerLayer("d", "mvt", "doomed", nil, ""))})["id"].(string)
	if _, err := u.data.Pool.Exec(context.Background(), `DROP TABLE public.doomed`); err != nil {
		t.Fatal(err)
	}

	shots := os.Getenv(envArtifacts)
	if shots == "" {
		shots = t.TempDir()
	}
	out, err := runNode(t, dir, "builder.mjs", 9*time.Minute, "BASE="+u.base, "ADMIN_EMAIL=admin@example.test", "ADMIN_PASSWORD="+password,
		"TABLE=public.countries", "BROKEN_MAP="+broken, "DROPPED=public.doomed",
		"IMPORT_FILE="+filepath.Join(testdata, "fixtures", "gpkg", "puerto_montt_osm_20170922.gpkg"), "IMPORT_LAYER=places_points",
		"DROP_FILE="+filepath.Join(testdata, "fixtures", "csv", "ne_110m_populated_places.csv"), "NUMERIC=pop_est", "CATEGORY=continent", "ARTIFACTS="+shots, "CHROMIUM="+chromium)
	saveArtifact(t, "builder-report.json", out)
	var rep builderReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("builder.mjs: %v / %v\n%s", err, jerr, lastBytes(out, 4000))
	}
	for _, p := range rep.Problems {
		t.Errorf("builder: %s", p)
	}
	for _, c := range rep.Console {
		if strings.Contains(c, "pageerror") {
			t.Errorf("a page threw: %s", c)
		}
	}
	if err != nil || !rep.OK {
		t.Fatalf("builder.mjs failed: %v", err)
	}
	step := func(name string, v any) {
		t.Helper()
		if err := json.Unmarshal(rep.Steps[name], v); err != nil {
			t.Fatalf("step %s: %v: %s", name, err, rep.Steps[name])
		}
	}

	var bad struct{ Error string }
	step("badQuery", &bad)
	if !strings.Contains(bad.Error, "does not exist") {
		t.Errorf("a query on a missing table: %q, want the database's message", bad.Error)
	}

	var list struct {
		Title     string
		Thumbnail bool
	}
	step("list", &list)
	if list.Title != "Population of the world" || !list.Thumbnail {
		t.Errorf("the maps list: %+v", list)
	}

	var br struct {
		Error string
		Drawn int
	}
	step("brokenDataset", &br)
	if !strings.Contains(br.Error, "doomed") || br.Drawn != 1 {
		t.Errorf("a map whose table was dropped: error %q, %d layers drawn (want the message naming it, the other layer drawn)", br.Error, br.Drawn)
	}

	var drop struct{ Preview, Destination string }
	step("importDrop", &drop)
	if !strings.HasPrefix(drop.Preview, "csv") || !strings.Contains(drop.Preview, "latlon") || drop.Destination != "ne_110m_populated_places" {
		t.Errorf("a CSV dropped on the import dialog: preview %q, table %q", drop.Preview, drop.Destination)
	}
	var imp struct {
		Layers    int
		Banner    string
		MapLayers int
	}
	step("importGpkg", &imp)
	if n := u.count(t, "SELECT count(*) FROM public.imported_places_points"); imp.Layers < 2 || n == 0 || !strings.Contains(imp.Banner, "imported") || imp.MapLayers != 1 {
		t.Errorf("the GeoPackage import: %d layers offered, %d rows imported, banner %q, map of %d layers", imp.Layers, n, imp.Banner, imp.MapLayers)
	}

	var sq struct {
		Summary, CSVHeader, Error string
		CSVLines, Features        int
		History                   []string
	}
	step("sql", &sq)
	if europe := u.count(t, "SELECT count(*) FROM public.countries WHERE continent = 'Europe'"); !strings.HasPrefix(sq.Summary, strconv.Itoa(europe)+" rows") ||
		sq.CSVLines != europe+1 || !strings.Contains(sq.CSVHeader, "name") || sq.Features != europe || !strings.Contains(sq.Error, "nowhere") || len(sq.History) < 2 {
		t.Errorf("the SQL editor: %+v (want %d European countries)", sq, europe)
	}

	var w struct {
		Picked        string
		Before, After []int
		Layers        []builderLayer
		ChangedTiles  []bool
	}
	step("widgets", &w)
	sum := func(xs []int) (n int) {
		for _, x := range xs {
			n += x
		}
		return n
	}
	if africa := u.count(t, "SELECT count(*) FROM public.countries WHERE continent = 'Africa' AND pop_est > 1000000"); w.Picked != "Africa" || sum(w.After) != africa || sum(w.Before) <= sum(w.After) {
		t.Errorf("selecting %q in the category widget: histogram %v -> %v (want %d countries)", w.Picked, w.Before, w.After, africa)
	}
	// Only the filtered dataset's layer was drawn again, from new tiles.
	if len(w.ChangedTiles) != 2 || w.ChangedTiles[0] == w.ChangedTiles[1] {
		t.Errorf("the map after the selection: tiles changed %v, want exactly the query's layer", w.ChangedTiles)
	}

	var reload struct {
		Title   string
		Layers  []string
		Widgets []string
		Legend  string
	}
	step("reload", &reload)
	if reload.Title != "Population of the world" || len(reload.Layers) != 2 || !slices.Equal(reload.Widgets, []string{"histogram", "category"}) ||
		!strings.Contains(reload.Legend, "pop_est") || !strings.Contains(reload.Legend, "Africa") {
		t.Errorf("after a reload: %+v", reload)
	}

	var params struct {
		BoundBefore, BoundAfter map[string]any
		CountBefore, CountAfter string
		Params                  []string
	}
	step("params", &params)
	over1, over3 := u.count(t, "SELECT count(*) FROM public.countries WHERE pop_est > 100000000"), u.count(t, "SELECT count(*) FROM public.countries WHERE pop_est > 300000000")
	if params.BoundBefore["min_pop"] != 1e8 || params.BoundAfter["min_pop"] != 3e8 || params.CountBefore != strconv.Itoa(over1) ||
		params.CountAfter != strconv.Itoa(over3) || !slices.Equal(params.Params, []string{"min_pop=300000000"}) {
		t.Errorf("SQL parameters: %+v (want :min_pop bound to 1e8 then 3e8, counting %d then %d countries)", params, over1, over3)
	}

	type widgetState struct {
		Total    int
		First    string
		Years    [][2]float64
		Min, Max float64
	}
	var more struct {
		Before, Ranged widgetState
		Year           struct {
			Total  int
			Picked int
		}
	}
	step("moreWidgets", &more)
	const over = "FROM public.countries WHERE pop_est > 1000000"
	yearSum := func(ys [][2]float64) (n int) {
		for _, y := range ys {
			n += int(y[1])
		}
		return n
	}
	all, biggest := u.count(t, "SELECT count(*) "+over), u.text(t, "SELECT cartodb_id::text "+over+" ORDER BY pop_est DESC LIMIT 1")
	lo, hi := u.count(t, "SELECT floor(min(pop_est))::bigint "+over), u.count(t, "SELECT floor(max(pop_est))::bigint "+over)
	ranged := u.count(t, "SELECT count(*) "+over+" AND pop_est BETWEEN 50000000 AND 2000000000")
	firstYear := u.count(t, "SELECT min(2000 + cartodb_id % 20) "+over)
	inYear := u.count(t, "SELECT count(*) "+over+" AND pop_est BETWEEN 50000000 AND 2000000000 AND 2000 + cartodb_id % 20 = "+strconv.Itoa(firstYear))
	b, r := more.Before, more.Ranged
	if b.Total != all || b.First != biggest || int(b.Min) != lo || int(b.Max) != hi || yearSum(b.Years) != all || len(b.Years) != 20 {
		t.Errorf("range, time series and table widgets: %+v (want %d rows, cartodb_id %s first, %d to %d, 20 years)", b, all, biggest, lo, hi)
	}
	if r.Total != ranged || yearSum(r.Years) != ranged || more.Year.Picked != firstYear || more.Year.Total != inYear {
		t.Errorf("a range then a year: %+v, year %+v (want %d rows in the range, %d of them in %d)", r, more.Year, ranged, inYear, firstYear)
	}

	var viewer struct {
		Layers      []string
		EditUI      int
		PatchStatus int
		Listed      bool
	}
	step("viewerOpens", &viewer)
	if len(viewer.Layers) != 4 || viewer.EditUI != 0 || (viewer.PatchStatus != 403 && viewer.PatchStatus != 404) || !viewer.Listed {
		t.Errorf("the viewer: %+v (want the map drawn, no editor, edits refused, listed as shared)", viewer)
	}

	var pub struct {
		Status         int
		Layers         []string
		SignedIn       bool
		Legend         string
		FrameAncestors bool
	}
	step("publicLink", &pub)
	if pub.Status != 200 || pub.SignedIn || !slices.Equal(pub.Layers, viewer.Layers) || !strings.Contains(pub.Legend, "pop_est") || !pub.FrameAncestors {
		t.Errorf("the public link in a fresh browser: %+v (viewer saw %v)", pub, viewer.Layers)
	}
	for _, name := range []string{"builder-editor.png", "builder-viewer.png", "builder-public.png"} {
		if fi, err := os.Stat(filepath.Join(shots, name)); err != nil || fi.Size() < 10_000 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
}
