package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/grant"
)

// The parts of compat/webapps.mjs's report the test reads.
type (
	webappsReport struct {
		OK             bool         `json:"ok"`
		Playwright     string       `json:"playwright"`
		Browser        string       `json:"browser"`
		Steps          []webappStep `json:"steps"`
		PageErrors     []string     `json:"pageErrors"`
		ConsoleErrors  []string     `json:"consoleErrors"`
		FailedRequests []string     `json:"failedRequests"`
		BadResponses   []string     `json:"badResponses"`
		Problems       []string     `json:"problems"`
	}
	webappStep struct {
		Name     string   `json:"name"`
		OK       bool     `json:"ok"`
		Problem  string   `json:"problem"`
		URL      string   `json:"url"`
		Heading  string   `json:"heading"`
		Title    string   `json:"title"`
		Who      string   `json:"who"`
		Imports  string   `json:"imports"`
		Statuses []string `json:"statuses"`
		Previews []struct {
			Path   string `json:"path"`
			Name   string `json:"name"`
			Token  bool   `json:"token"`
			Target string `json:"target"`
		} `json:"previews"`
		Message string     `json:"message"`
		Row     string     `json:"row"`
		Status  string     `json:"status"`
		Meta    string     `json:"meta"`
		Error   string     `json:"error"`
		Columns []string   `json:"columns"`
		Rows    [][]string `json:"rows"`
		Text    string     `json:"text"`
		Grants  [][]string `json:"grants"`
		APIs    []string   `json:"apis"`
		Server  string     `json:"server"`
		Pages   map[string]struct {
			Status  int    `json:"status"`
			Heading string `json:"heading"`
			Brand   string `json:"brand"`
		} `json:"pages"`
		Stored   []int  `json:"stored"`
		Redirect string `json:"redirect"`
	}
)

// pointsGeoJSON is a small FeatureCollection of named points.
func pointsGeoJSON(names ...string) []byte {
	type feature struct {
		Type       string            `json:"type"`
		Properties map[string]string `json:"properties"`
		Geometry   map[string]any    `json:"geometry"`
	}
	fc := struct {
		Type     string    `json:"type"`
		Features []feature `json:"features"`
	}{Type: "FeatureCollection"}
	for i, n := range names {
		fc.Features = append(fc.Features, feature{"Feature", map[string]string{"name": n},
			map[string]any{"type": "Point", "coordinates": []float64{float64(10 * i), float64(5 * i)}}})
	}
	b, _ := json.Marshal(fc)
	return b
}

// The web apps through `meridian up`: the edge serves both apps and their
// assets beside the APIs; then, in headless Chromium, a user signs in on
// /acc/ with a real token, lands on the workspace, sees the import the
// test made, uploads a file through the form and sees it finish, runs a
// query, submits a batch job and sees it finish, reads the token's grants
// on the accounts page, signs out, and signs in again with a next address
// off the origin, which it does not follow.
func TestWebAppsThroughUp(t *testing.T) {
	u := startImpUp(t)
	t.Run("routes", func(t *testing.T) { checkWebAppRoutes(t, u.base) })
	t.Run("browser", func(t *testing.T) {
		needTool(t, "node")
		chromium := os.Getenv("CHROMIUM")
		if chromium == "" {
			chromium = needTool(t, "chromium")
		}
		appBuilt(t, "acc/index.html", "accounts")
		appBuilt(t, "index.html", "workspace")
		dir := compatDir(t)
		tok := u.token(t, grant.APIMaps, grant.APISQL, grant.APIImports)
		count := func(sql string) int {
			t.Helper()
			var n int
			if err := u.data.Pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			return n
		}

		// An import made through the API before the browser arrives.
		id := u.upload(t, tok, "first.geojson", pointsGeoJSON("Lima", "Oslo"), "connection", "local", "destination", "web_first")
		if imp := u.poll(t, tok, "/api/v3/imports/"+id); imp["status"] != "success" {
			t.Fatalf("the test's own import ended %v", imp)
		}
		upload := filepath.Join(t.TempDir(), "cities.geojson")
		if err := os.WriteFile(upload, pointsGeoJSON("Canberra", "Accra", "Bogotá"), 0o644); err != nil {
			t.Fatal(err)
		}
		const (
			query  = "SELECT name FROM public.web_upload ORDER BY name"
			jobSQL = "UPDATE public.web_upload SET name = upper(name) WHERE name = 'Accra'"
		)
		var shots string // screenshots for people, with the other artifacts
		if a := os.Getenv(envArtifacts); a != "" {
			shots = filepath.Join(a, "webapps")
			if err := os.MkdirAll(shots, 0o755); err != nil {
				t.Logf("screenshots: %v", err)
			}
		}
		out, err := runNode(t, dir, "webapps.mjs", 5*time.Minute,
			"SCREENSHOT_DIR="+shots,
			"BASE_URL="+u.base,
			"TOKEN="+tok,
			"UPLOAD_FILE="+upload,
			"UPLOAD_TABLE=web_upload",
			"WAIT_FOR_TABLE=public.web_first",
			"SQL="+query,
			"JOB_SQL="+jobSQL,
			"CHROMIUM="+chromium,
			"TIMEOUT_MS=30000",
		)
		saveArtifact(t, "webapps-report.json", out)
		var rep webappsReport
		if jerr := json.Unmarshal(out, &rep); jerr != nil {
			t.Fatalf("webapps.mjs (exit %v) printed no JSON report: %v\n%s", err, jerr, lastBytes(out, 4000))
		}
		t.Logf("Chromium %s via playwright-core %s", rep.Browser, rep.Playwright)
		if strings.Contains(string(out), tok) {
			t.Errorf("the report holds the token")
		}
		steps := map[string]webappStep{}
		for _, s := range rep.Steps {
			steps[s.Name] = s
		}
		if !rep.OK || err != nil {
			t.Errorf("webapps.mjs: ok=%v exit %v, problems %q", rep.OK, err, rep.Problems)
		}
		// Nothing the Content-Security-Policy refused, nothing thrown, no failed call.
		if len(rep.PageErrors)+len(rep.ConsoleErrors)+len(rep.FailedRequests)+len(rep.BadResponses) > 0 {
			t.Errorf("page errors %q\nconsole errors %q\nfailed requests %q\nresponses >= 400 %q",
				rep.PageErrors, rep.ConsoleErrors, rep.FailedRequests, rep.BadResponses)
		}

		if s := steps["redirect"]; s.URL != "/acc/?next=%2F" || s.Heading != "Sign in" {
			t.Errorf("signed out, / led to %q showing %q; want /acc/?next=%%2F and the sign-in", s.URL, s.Heading)
		}
		s := steps["signIn"]
		if s.URL != "/" || s.Title != "Meridian · Imports" || !strings.Contains(s.Who, "import-test") {
			t.Errorf("after signing in: %q titled %q, header %q; want the workspace's imports, signed in as import-test", s.URL, s.Title, s.Who)
		}
		if !strings.Contains(s.Imports, "public.web_first") || !slices.Equal(s.Statuses, []string{"success"}) {
			t.Errorf("the imports list shows %q (statuses %q); want public.web_first, success", s.Imports, s.Statuses)
		}
		if len(s.Previews) != 1 || s.Previews[0].Path != "/api/v3/maps/local/preview" || s.Previews[0].Name != "public.web_first" ||
			!s.Previews[0].Token || s.Previews[0].Target != "_blank" {
			t.Errorf("map links of the imports list = %+v; want one to the preview of public.web_first with the token, in a new tab", s.Previews)
		}
		if s := steps["upload"]; s.Status != "success" || !strings.Contains(s.Message, "public.web_upload queued") ||
			!strings.Contains(s.Row, "cities.geojson") || !strings.Contains(s.Row, "3") {
			t.Errorf("the upload through the form: message %q, row %q (%s); want it queued, then success with 3 rows", s.Message, s.Row, s.Status)
		}
		if n := count("SELECT count(*) FROM public.web_upload"); n != 3 {
			t.Errorf("public.web_upload holds %d rows, want the 3 uploaded", n)
		}
		if s := steps["sql"]; s.URL != "/sql" || !slices.Equal(s.Columns, []string{"name"}) ||
			!slices.EqualFunc(s.Rows, [][]string{{"Accra"}, {"Bogotá"}, {"Canberra"}}, slices.Equal[[]string]) || !strings.HasPrefix(s.Meta, "3 rows") {
			t.Errorf("the SQL view at %q showed columns %q, rows %q, %q (error %q); want name: Accra, Bogotá, Canberra",
				s.URL, s.Columns, s.Rows, s.Meta, s.Error)
		}
		if s := steps["job"]; s.URL != "/jobs" || s.Status != "success" || !strings.Contains(s.Row, "UPDATE 1") || !strings.Contains(s.Message, "queued") {
			t.Errorf("the batch job: message %q, jobs row %q (%s) at %q; want it queued, then success with UPDATE 1", s.Message, s.Row, s.Status, s.URL)
		}
		if n := count("SELECT count(*) FROM public.web_upload WHERE name = 'ACCRA'"); n != 1 {
			t.Errorf("after the job, %d rows are named ACCRA, want 1", n)
		}
		if s := steps["maps"]; !strings.Contains(s.Text, "* on local") {
			t.Errorf("the maps view shows %q; want it to name the * grant on local", s.Text)
		}
		a := steps["account"]
		if !slices.EqualFunc(a.Grants, [][]string{{"local", "*", "every table and query"}}, slices.Equal[[]string]) ||
			!slices.Equal(a.APIs, []string{"maps", "sql", "imports"}) || a.Server != "accepted" {
			t.Errorf("the account page shows grants %q, APIs %q, server check %q; want local * (everything), maps sql imports, accepted",
				a.Grants, a.APIs, a.Server)
		}
		for path, want := range map[string]string{"/acc/tokens": "Not found", "/no/such/view": "Not found"} {
			p := steps["deepLinks"].Pages[path]
			if p.Status != 200 || p.Heading != want || p.Brand != "Meridian" {
				t.Errorf("deep link %s: %d, heading %q, brand %q; want the app's own %q page", path, p.Status, p.Heading, p.Brand, want)
			}
		}
		if s := steps["signOut"]; !slices.Equal(s.Stored, []int{0, 0}) || s.Redirect != "/acc/?next=%2Fsql" {
			t.Errorf("after signing out: storage holds %v items, /sql led to %q; want none, and the sign-in", s.Stored, s.Redirect)
		}
		if s := steps["offsiteNext"]; s.URL != "/" {
			t.Errorf("signing in with next=/\\t/evil.example/ led to %q, want / on this origin", s.URL)
		}
	})
}
