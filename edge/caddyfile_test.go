package main

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/meridian-gis/meridian"
)

// The shipped Caddyfile adapts without warnings, configures both Meridian
// apps, puts the token check before the cache before the tiles engine on
// the API routes, sends the rest of /api to the control plane (compressed)
// and serves the web apps from the binary's file system.
func TestRootCaddyfileAdapts(t *testing.T) {
	js, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(meridian.Caddyfile, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("warning: line %d: %s", w.Line, w.Message)
	}
	var cfg struct {
		Apps struct {
			Meridian *struct {
				DatabaseURL string `json:"database_url"`
			} `json:"meridian"`
			Cache       *json.RawMessage `json:"meridian_cache"`
			Filesystems struct {
				Filesystems []struct {
					Name       string `json:"name"`
					FileSystem struct {
						Backend string `json:"backend"`
					} `json:"file_system"`
				} `json:"filesystems"`
			} `json:"caddy.filesystems"`
			HTTP struct {
				Servers map[string]struct {
					Routes []route `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(js, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Apps.Meridian == nil || cfg.Apps.Cache == nil {
		t.Fatalf("apps meridian and meridian_cache must be configured: %s", js)
	}
	if got := cfg.Apps.Meridian.DatabaseURL; got != "{env.MERIDIAN_DATABASE_URL}" {
		t.Errorf("database_url = %q, want the runtime placeholder (no secret in the adapted config)", got)
	}
	chains := map[string][]string{}
	for _, srv := range cfg.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			r.chains("", chains)
		}
	}
	want := []string{"meridian_tile_metrics", "meridian_auth", "meridian_cache", "reverse_proxy"}
	got := chains["/api/v3/maps/*"]
	if len(got) != len(want) {
		t.Fatalf("handlers for /api/v3/maps/* = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("handlers for /api/v3/maps/* = %v, want %v", got, want)
		}
	}
	if _, ok := chains["/healthz"]; !ok {
		t.Errorf("no /healthz route")
	}
	for _, tt := range []struct {
		path string
		want []string // the handlers, in order, ending the chain
	}{
		{"/api", []string{"encode", "reverse_proxy"}},
		{"/acc", []string{"static_response"}},
		{"/acc/*", []string{"rewrite", "file_server"}},
		{"/assets/*", []string{"headers", "file_server"}},
	} {
		if got := chains[tt.path]; len(got) < len(tt.want) || !slices.Equal(got[len(got)-len(tt.want):], tt.want) {
			t.Errorf("handlers for %s = %v, want them to end with %v", tt.path, got, tt.want)
		}
	}
	fsys := cfg.Apps.Filesystems.Filesystems
	if len(fsys) != 1 || fsys[0].Name != "webapps" || fsys[0].FileSystem.Backend != "meridian_webapps" {
		t.Errorf("file systems = %+v, want webapps backed by meridian_webapps", fsys)
	}
}

type route struct {
	Match  []map[string]json.RawMessage `json:"match"`
	Handle []struct {
		Handler string  `json:"handler"`
		Routes  []route `json:"routes"`
	} `json:"handle"`
}

// chains records, per first path of a matcher, the handler names in order,
// descending into subroutes.
func (r route) chains(path string, out map[string][]string) {
	for _, m := range r.Match {
		var paths []string
		if json.Unmarshal(m["path"], &paths) == nil && len(paths) > 0 {
			path = paths[0]
		}
	}
	for _, h := range r.Handle {
		if h.Handler == "subroute" {
			for _, sr := range h.Routes {
				sr.chains(path, out)
			}
			continue
		}
		out[path] = append(out[path], h.Handler)
	}
}
