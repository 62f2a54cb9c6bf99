package static

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// srcFS returns a minimal web app source tree, the Builder not built;
// extra adds files, and an empty string removes one.
func srcFS(extra map[string]string) fstest.MapFS {
	m := fstest.MapFS{
		"workspace/index.html": {Data: []byte(`<link rel="icon" href="../common/favicon.svg"><link rel="stylesheet" href="dist/workspace.css">` +
			`<script type="module" src="dist/workspace.js"></script><a href="/acc/">account</a><a href="#top">top</a><a href="https://example.com/x.js">x</a>`)},
		"workspace/dist/workspace.js":  {Data: []byte("console.log('workspace');")},
		"workspace/dist/workspace.css": {Data: []byte("body { margin: 0 }")},
		"accounts/index.html":          {Data: []byte(`<link rel="icon" href="../common/favicon.svg"><script type="module" src="dist/accounts.js"></script>`)},
		"accounts/dist/accounts.js":    {Data: []byte("console.log('accounts');")},
		"admin/index.html":             {Data: []byte(`<script type="module" src="dist/admin.js"></script>`)},
		"admin/dist/admin.js":          {Data: []byte("console.log('admin');")},
		"common/favicon.svg":           {Data: []byte("<svg/>")},
		"builder/index.html":           {Data: []byte(`<script type="module" src="dist/builder.js"></script>`)},
	}
	for k, v := range extra {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return m
}

var assetName = regexp.MustCompile(`^assets/[a-z][a-z-]*\.[0-9a-f]{10}\.(js|mjs|css|svg|txt)$`)

func TestBuildWebApps(t *testing.T) {
	apps, err := BuildWebApps(srcFS(nil))
	if err != nil {
		t.Fatalf("BuildWebApps: %v", err)
	}
	var assets []string
	fs.WalkDir(apps, AssetDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			assets = append(assets, p)
		}
		return err
	})
	if len(assets) != 5 {
		t.Fatalf("assets = %q, want favicon.svg, workspace.js, workspace.css, accounts.js and admin.js, once each", assets)
	}
	for _, a := range assets {
		if !assetName.MatchString(a) {
			t.Errorf("asset %s is not named <name>.<10 hex>.<ext>", a)
		}
	}
	if err := fstest.TestFS(apps, append([]string{"index.html", "acc/index.html"}, assets...)...); err != nil {
		t.Fatalf("the result is not a well-behaved fs.FS: %v", err)
	}
	page, _ := fs.ReadFile(apps, "index.html")
	refs := attrRefs(string(page))
	want := []string{"/" + find(assets, "assets/favicon.*.svg"), "/" + find(assets, "assets/workspace.*.css"), "/" + find(assets, "assets/workspace.*.js"),
		"/acc/", "#top", "https://example.com/x.js"}
	if !slices.Equal(refs, want) {
		t.Errorf("workspace page refs = %q, want %q", refs, want)
	}
	acc, _ := fs.ReadFile(apps, "acc/index.html")
	if refs := attrRefs(string(acc)); !slices.Equal(refs, []string{"/" + find(assets, "assets/favicon.*.svg"), "/" + find(assets, "assets/accounts.*.js")}) {
		t.Errorf("accounts page refs = %q", refs)
	}
	if b, _ := fs.ReadFile(apps, find(assets, "assets/favicon.*.svg")); string(b) != "<svg/>" {
		t.Errorf("favicon.svg served as %q", b)
	}

	// A changed file gets a new name; the others keep theirs.
	changed, err := BuildWebApps(srcFS(map[string]string{"common/favicon.svg": "<svg></svg>"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range assets {
		_, err := fs.Stat(changed, a)
		if strings.HasPrefix(a, "assets/favicon.") {
			if err == nil {
				t.Errorf("%s still served after favicon.svg changed", a)
			}
		} else if err != nil {
			t.Errorf("%s gone after an unrelated change: %v", a, err)
		}
	}
}

func TestBuildWebAppsRejects(t *testing.T) {
	for _, tt := range []struct {
		name  string
		extra map[string]string
		want  string
	}{
		{"missing asset", map[string]string{"accounts/index.html": `<script src="nope.js"></script>`}, `"nope.js" names no asset`},
		{"asset with a query", map[string]string{"accounts/index.html": `<script src="dist/accounts.js?v=1"></script>`}, "names no asset"},
		{"another page", map[string]string{"workspace/about.html": `<p>about</p>`}, "only the apps' index.html files are pages"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BuildWebApps(srcFS(tt.extra))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("BuildWebApps error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// Without its bundle an app's page says how to build it; with it, the
// page names the bundle's hashed asset.
func TestBuildWebAppsNotBuilt(t *testing.T) {
	apps, err := BuildWebApps(srcFS(map[string]string{"accounts/dist/accounts.js": ""}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"builder/index.html", "acc/index.html"} {
		if b, _ := fs.ReadFile(apps, p); !strings.Contains(string(b), "make static") {
			t.Errorf("unbuilt page %s = %q, want the build hint", p, b)
		}
	}
	apps, err = BuildWebApps(srcFS(map[string]string{"builder/dist/builder.js": "console.log('builder')"}))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := fs.ReadFile(apps, "builder/index.html"); !regexp.MustCompile(`src="/assets/builder\.[0-9a-f]{10}\.js"`).Match(b) {
		t.Errorf("built Builder page = %q, want its hashed bundle", b)
	}
}

// The embedded apps build, name only assets they have, and keep to what
// the edge's Content-Security-Policy allows (this origin's scripts and
// styles; no inline code, no inline styles). Their sources build the DOM
// without HTML strings (TestWebSources).
func TestWebAppsEmbedded(t *testing.T) {
	apps, err := WebApps()
	if err != nil {
		t.Fatalf("WebApps: %v", err)
	}
	type page struct{ path, script string }
	var pages []page
	for _, pg := range webAppPages {
		if _, err := fs.Stat(files, pg.bundle); err != nil {
			t.Logf("%s: not built (run make static)", pg.bundle)
			continue
		}
		pages = append(pages, page{pg.dst, "assets/" + strings.TrimSuffix(path.Base(pg.bundle), ".js") + ".*.js"})
	}
	for _, pg := range pages {
		b, err := fs.ReadFile(apps, pg.path)
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		var haveScript bool
		for _, ref := range attrRefs(page) {
			if !strings.HasPrefix(ref, "/") {
				t.Errorf("%s: reference %q is not an absolute path", pg.path, ref)
			}
			if strings.HasPrefix(ref, "/"+AssetDir+"/") {
				if _, err := fs.Stat(apps, ref[1:]); err != nil {
					t.Errorf("%s names %s: %v", pg.path, ref, err)
				}
				if ok, _ := path.Match("/"+pg.script, ref); ok {
					haveScript = true
				}
			}
		}
		if !haveScript {
			t.Errorf("%s does not load its script %s", pg.path, pg.script)
		}
		for _, bad := range []*regexp.Regexp{
			regexp.MustCompile(`<script(?:\s+(?:defer|type="[^"]*"))*\s*>`), // a script without src
			regexp.MustCompile(`<style`),
			regexp.MustCompile(`\sstyle=`),
			regexp.MustCompile(`\son[a-z]+=`),
		} {
			if m := bad.FindString(page); m != "" {
				t.Errorf("%s has %q, which the Content-Security-Policy blocks", pg.path, m)
			}
		}
	}
	err = fs.WalkDir(apps, AssetDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !assetName.MatchString(p) {
			t.Errorf("asset %s is not named <name>.<10 hex>.<ext>", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var attrRE = regexp.MustCompile(`\s(?:src|href)="([^"]*)"`)

// attrRefs lists a page's src and href values in order.
func attrRefs(page string) []string {
	var out []string
	for _, m := range attrRE.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// find returns the first name matching pattern.
func find(names []string, pattern string) string {
	for _, n := range names {
		if ok, _ := path.Match(pattern, n); ok {
			return n
		}
	}
	return "(none matching " + pattern + ")"
}

// The web apps' own sources (web/src) build the DOM with Preact, never
// from HTML strings, and evaluate no strings as code. (Their bundles hold
// Preact, which does handle innerHTML for dangerouslySetInnerHTML.)
func TestWebSources(t *testing.T) {
	var srcs []string
	err := filepath.WalkDir("../web/src", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(filepath.Ext(p), ".js") {
			srcs = append(srcs, p)
		}
		return err
	})
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no web app sources in ../web/src: %v", err)
	}
	for _, p := range srcs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "dangerouslySetInnerHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(string(b), sink) {
				t.Errorf("%s uses %s", p, sink)
			}
		}
	}
}
