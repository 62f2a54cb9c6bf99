package nodeupstreams

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Source
		wantErr string
	}{
		{"defaults", "meridian_nodes", Source{}, ""},
		{"component", "meridian_nodes control", Source{Component: "control"}, ""},
		{"options", "meridian_nodes tiles {\nrefresh 500ms\nstale_after 5s\nhealth_uri /readyz\nhealth_interval 250ms\nhealth_timeout 1s\n}",
			Source{Component: "tiles", Refresh: caddy.Duration(500 * time.Millisecond), StaleAfter: caddy.Duration(5 * time.Second),
				HealthURI: "/readyz", HealthInterval: caddy.Duration(250 * time.Millisecond), HealthTimeout: caddy.Duration(time.Second)}, ""},
		{"two components", "meridian_nodes tiles edge", Source{}, "wrong argument count"},
		{"unknown option", "meridian_nodes {\nbogus 1s\n}", Source{}, "unknown meridian_nodes option"},
		{"bad duration", "meridian_nodes {\nrefresh soon\n}", Source{}, "refresh"},
		{"missing value", "meridian_nodes {\nrefresh\n}", Source{}, "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Source
			err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalCaddyfile(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Component != tt.want.Component || s.Refresh != tt.want.Refresh || s.StaleAfter != tt.want.StaleAfter ||
				s.HealthURI != tt.want.HealthURI || s.HealthInterval != tt.want.HealthInterval || s.HealthTimeout != tt.want.HealthTimeout {
				t.Errorf("UnmarshalCaddyfile(%q) = %+v, want %+v", tt.in, s, tt.want)
			}
		})
	}
}

func TestValidateComponent(t *testing.T) {
	if err := (&Source{Component: "router"}).Validate(); err == nil {
		t.Error("Validate accepted an unknown component")
	}
	if err := (&Source{Component: "tiles"}).Validate(); err != nil {
		t.Error(err)
	}
}

// With no healthy node the source says so (Caddy then uses the static
// upstreams); the node of a failed request is ejected at once and a probe
// round is asked for.
func TestEjection(t *testing.T) {
	s := &Source{Component: "tiles", kick: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler)}
	s.st = &state{upstreams: map[string]*reverseproxy.Upstream{}, ejected: map[string]bool{}}
	if _, err := s.GetUpstreams(nil); err != ErrNoNodes {
		t.Fatalf("GetUpstreams with no node = %v, want ErrNoNodes", err)
	}
	a, b := &reverseproxy.Upstream{Dial: "10.0.0.1:8081"}, &reverseproxy.Upstream{Dial: "10.0.0.2:8081"}
	s.st.upstreams[a.Dial], s.st.upstreams[b.Dial] = a, b
	s.st.healthy = []*reverseproxy.Upstream{a, b}
	repl := caddy.NewReplacer()
	repl.Set("http.reverse_proxy.upstream.hostport", a.Dial)
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	if err := s.ResetCache(req); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUpstreams(req)
	if err != nil || len(got) != 1 || got[0] != b {
		t.Errorf("after a failure on %s: upstreams %v, %v; want only %s", a.Dial, got, err, b.Dial)
	}
	select {
	case <-s.kick:
	default:
		t.Error("no probe round asked for after the failure")
	}
}
