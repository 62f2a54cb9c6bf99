package webapps

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/caddyserver/caddy/v2"
)

func TestFS(t *testing.T) {
	var f FS
	if _, err := f.Open("index.html"); err == nil || !strings.Contains(err.Error(), "not provisioned") {
		t.Errorf("Open before Provision: %v, want a not-provisioned error", err)
	}
	if err := f.Provision(caddy.Context{}); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	for _, page := range []struct{ name, want string }{
		{"index.html", "<title>Meridian · Workspace</title>"},
		{"acc/index.html", "<title>Meridian · Account</title>"},
	} {
		b, err := fs.ReadFile(&f, page.name)
		if err != nil || !strings.Contains(string(b), page.want) {
			t.Errorf("%s: %v, %.200q; want the page holding %q", page.name, err, b, page.want)
		}
	}
	assets, err := fs.Glob(&f, "assets/*.js")
	if err != nil || len(assets) < 3 {
		t.Fatalf("assets/*.js = %q, %v; want the shared, workspace and accounts scripts", assets, err)
	}
	if err := fstest.TestFS(&f, append([]string{"index.html", "acc/index.html"}, assets...)...); err != nil {
		t.Error(err)
	}
	if _, err := f.Open("preview/index.html"); err == nil {
		t.Error("the preview page's sources are served as web app files")
	}
}
