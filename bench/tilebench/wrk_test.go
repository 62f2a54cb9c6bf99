package tilebench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/bench/load"
)

func TestWrkScriptRejects(t *testing.T) {
	for _, paths := range [][]string{
		nil,
		{"relative/path"},
		{`/a"b`},
		{`/a\b`},
		{"/a b"},
		{"/é"},
	} {
		if _, err := WrkScript(paths, 2); err == nil {
			t.Errorf("WrkScript(%q) = nil error, want a refusal", paths)
		}
	}
	s, err := WrkScript([]string{"/a?x=1&y=2,3", "/b"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"/a?x=1&y=2,3",`, `"/b",`, "n / 2", "function request()"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
}

// wrk runs the script against a counting server: every path is requested,
// nothing else is, and wrk's -H headers go with each request.
func TestWrkScriptDrivesWrk(t *testing.T) {
	if testing.Short() {
		t.Skip("runs wrk for a second")
	}
	wrk, err := load.LookWrk()
	if err != nil {
		t.Skip("wrk is not installed")
	}
	var paths []string
	for i := range 50 {
		paths = append(paths, fmt.Sprintf("/api/v3/maps/local/table/5/%d/11?name=admin1&columns=name,admin", i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var noAuth int
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.RequestURI()]++
		if r.Header.Get("Authorization") != "Bearer t0k" {
			noAuth++
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	script, err := WrkScript(paths, 2)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "s.lua")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := load.Wrk{Path: wrk, Threads: 2, Connections: 4, Duration: time.Second,
		Headers: []string{"Authorization: Bearer t0k"}, Script: file}.Run(context.Background(), "http://"+ln.Addr().String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if res.Requests == 0 || res.Non2xx3xx > 0 {
		t.Fatalf("wrk: %d requests, %d non-2xx; want some, all 204", res.Requests, res.Non2xx3xx)
	}
	for _, p := range paths {
		if seen[p] == 0 {
			t.Errorf("path %s never requested", p)
		}
		delete(seen, p)
	}
	if len(seen) > 0 {
		t.Errorf("requests outside the list: %v", seen)
	}
	if noAuth > 0 {
		t.Errorf("%d requests without the -H Authorization header", noAuth)
	}
}
