package tagcache

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

var update = flag.Bool("update", false, "rewrite the JSON of testdata/adapt/*.caddyfiletest")

// TestCaddyfileAdapt checks testdata/adapt/*.caddyfiletest, in the style of
// caddy's caddytest/integration/caddyfile_adapt_test.go: a Caddyfile,
// "----------", then the expected JSON, or else text the adapt error must
// contain.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, expected, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatalf("%s: no ---------- separator", file)
			}
			caddyfile = strings.TrimSpace(caddyfile) + "\n"
			expected = strings.TrimSpace(expected)

			result, warnings, err := adapter.Adapt([]byte(caddyfile), nil)
			if expected != "" && expected[0] != '{' {
				if err == nil {
					t.Fatalf("adapting: no error, want one containing %q", expected)
				}
				if !strings.Contains(err.Error(), expected) {
					t.Errorf("adapting: error %q, want it to contain %q", err, expected)
				}
				return
			}
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("warning: %s:%d: %s: %s", file, w.Line, w.Directive, w.Message)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, result, "", "\t"); err != nil {
				t.Fatal(err)
			}
			got := pretty.String()
			if *update {
				out := strings.TrimSpace(caddyfile) + "\n----------\n" + got + "\n"
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != expected {
				t.Errorf("adapted JSON differs:\ngot:\n%s\nwant:\n%s", got, expected)
			}
		})
	}
}
