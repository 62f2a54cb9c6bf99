// Package adapttest checks Caddyfile adapt golden files, in the style of
// caddy's caddytest/integration/caddyfile_adapt_test.go: each
// *.caddyfiletest file holds a Caddyfile, a "----------" line, then either
// the expected JSON or text the adapt error must contain.
package adapttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile" // the caddyfile adapter
)

// Run checks every file matching glob. With update, it rewrites the
// expected JSON from the current output instead.
func Run(t *testing.T, glob string, update bool) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files match %s: %v", glob, err)
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
			if update {
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
