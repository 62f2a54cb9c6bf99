package meridian_test

// The layering test: tailscale's BadDeps idea (tstest/deptest), applied to
// Meridian's layout (docs ARCHITECTURE.md "Layout", STYLE.md §17). It reads
// the real import graph with `go list -deps` and fails when a package
// reaches, directly or through others, a package it is banned from. Every
// ban carries its reason. Rules naming packages that do not exist yet
// simply match nothing.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/meridian-gis/meridian"

// External module roots named in bans.
const (
	pgx      = "github.com/jackc/pgx/v5/..."
	fasthttp = "github.com/valyala/fasthttp/..."
	caddy    = "github.com/caddyserver/caddy/v2/..."
)

// rule bans the packages matching From (minus Except) from depending,
// directly or transitively, on any package matching Deny. Patterns are
// import paths; a trailing "/..." also matches everything below; a path
// without a dot in its first element is relative to the module.
type rule struct {
	From   []string
	Except []string
	Deny   []string
	Why    string
}

func layeringRules() []rule {
	// Leaf packages are shared by every component and must stay pure Go.
	leafPackages := []string{
		"internal/tile/...", "internal/grant/...", "internal/cachetag/...",
		"internal/source/...", "internal/secret/...", "internal/config/...", "static/...",
	}
	components := []string{"tiles", "control", "workers", "caddy-modules"}
	var rules []rule
	for _, c := range components {
		var others []string
		for _, o := range components {
			if o != c {
				others = append(others, o+"/...")
			}
		}
		rules = append(rules, rule{
			From: []string{c + "/..."}, Deny: others,
			Why: "components meet through the database, the broker and HTTP, never through Go imports: " +
				"each one ships and scales as its own container, and data flows one way (ARCHITECTURE.md)",
		})
	}
	return append(rules,
		rule{
			From: leafPackages, Deny: []string{pgx},
			Why: "leaf packages (tile math, grants, cache tags, sources, secrets, config, embedded web assets) hold no I/O: " +
				"the edge verifies tokens offline with them and their tests need no database",
		},
		rule{
			From: leafPackages, Deny: []string{fasthttp},
			Why: "leaf packages are shared with the net/http side (edge, control); fasthttp types must stay inside tiles",
		},
		rule{
			From: leafPackages, Deny: []string{caddy},
			Why: "leaf packages are linked by tiles, control and workers, which run without Caddy in their own containers",
		},
		rule{
			From: []string{"control/..."}, Deny: []string{fasthttp},
			Why: "control is plain net/http (timeouts, contexts per request); fasthttp is the tiles hot path's choice only",
		},
		rule{
			From: []string{"control/..."}, Deny: []string{caddy},
			Why: "`meridian control` runs as its own container behind any proxy; Caddy belongs to the edge",
		},
		rule{
			From: []string{"caddy-modules/..."}, Deny: []string{fasthttp},
			Why: "Caddy modules run in Caddy's net/http handler chain; fasthttp's request types cannot cross into it " +
				"and would only add weight to the edge",
		},
		rule{
			From: []string{"..."}, Except: []string{"edge/..."}, Deny: []string{"edge/..."},
			Why: "edge is the composition root (the custom Caddy main and its subcommands): it imports every component, " +
				"so nothing may import it back",
		},
		rule{
			From: []string{"..."}, Except: []string{"bench/..."}, Deny: []string{"bench/..."},
			Why: "bench is the load-test harness; product code must not link it",
		},
	)
}

// match reports whether pkg matches pattern (see rule).
func match(pattern, pkg string) bool {
	if pattern == "..." {
		return pkg == module || strings.HasPrefix(pkg, module+"/")
	}
	if first, _, _ := strings.Cut(pattern, "/"); !strings.Contains(first, ".") {
		pattern = module + "/" + pattern
	}
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == p || strings.HasPrefix(pkg, p+"/")
	}
	return pkg == pattern
}

func matchAny(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, pkg) })
}

// violation is one package reaching a banned one.
type violation struct {
	Pkg, Banned string
	Chain       []string // Pkg … Banned, each importing the next
	Why         string
}

func (v violation) String() string {
	short := make([]string, len(v.Chain))
	for i, p := range v.Chain {
		short[i] = strings.TrimPrefix(p, module+"/")
	}
	return strings.Join(short, " -> ") + "\n\tbanned because " + v.Why
}

// violations checks rules against graph (import path -> direct imports).
// It reports, per package and rule, the nearest banned package.
func violations(graph map[string][]string, rules []rule) []violation {
	pkgs := make([]string, 0, len(graph))
	for p := range graph {
		if match("...", p) {
			pkgs = append(pkgs, p)
		}
	}
	sort.Strings(pkgs)
	var out []violation
	for _, pkg := range pkgs {
		var applicable []rule
		for _, r := range rules {
			if matchAny(r.From, pkg) && !matchAny(r.Except, pkg) {
				applicable = append(applicable, r)
			}
		}
		if len(applicable) == 0 {
			continue
		}
		// Breadth-first from pkg, so each chain found is a shortest one.
		parent := map[string]string{pkg: ""}
		order := []string{pkg}
		for i := 0; i < len(order); i++ {
			imps := slices.Clone(graph[order[i]])
			sort.Strings(imps)
			for _, imp := range imps {
				if _, seen := parent[imp]; !seen {
					parent[imp] = order[i]
					order = append(order, imp)
				}
			}
		}
		for _, r := range applicable {
			for _, dep := range order[1:] {
				if !matchAny(r.Deny, dep) {
					continue
				}
				var chain []string
				for p := dep; p != ""; p = parent[p] {
					chain = append(chain, p)
				}
				slices.Reverse(chain)
				out = append(out, violation{Pkg: pkg, Banned: dep, Chain: chain, Why: r.Why})
				break
			}
		}
	}
	return out
}

// importGraph runs `go list -deps` on the module and returns every package
// in the build graph (tests excluded) with its direct imports.
func importGraph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Imports,Error", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Error != nil {
			// A broken package fails its own build; the layering is
			// checked on what does load.
			t.Logf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		graph[p.ImportPath] = p.Imports
	}
	return graph
}

func TestLayering(t *testing.T) {
	graph := importGraph(t)
	// Guard against a silent pass: the graph must hold our own packages.
	if _, ok := graph[module+"/internal/config"]; !ok {
		t.Fatalf("go list found no %s/internal/config: the import graph is empty or wrong (%d packages)", module, len(graph))
	}
	for _, v := range violations(graph, layeringRules()) {
		t.Errorf("%s may not depend on %s:\n\t%s", strings.TrimPrefix(v.Pkg, module+"/"), v.Banned, v)
	}
}

// TestLayeringCatchesViolations runs the rules on a made-up graph, so a
// checker that silently matches nothing cannot pass.
func TestLayeringCatchesViolations(t *testing.T) {
	m := func(rel string) string { return module + "/" + rel }
	graph := map[string][]string{
		m("tiles/internal/mvt"):           {m("internal/tile"), m("control/store")}, // component -> component
		m("internal/tile"):                {"fmt"},
		m("internal/tiles_helper"):        {"github.com/jackc/pgx/v5"}, // not internal/tile: allowed
		m("control/store"):                {"github.com/jackc/pgx/v5/pgxpool"},
		"github.com/jackc/pgx/v5/pgxpool": {"github.com/jackc/pgx/v5"},
		m("internal/grant"):               {m("internal/grant/wire")},
		m("internal/grant/wire"):          {m("internal/x")}, // leaf -> fasthttp, two hops away
		m("internal/x"):                   {"github.com/valyala/fasthttp"},
		m("caddy-modules/cache"):          {"github.com/valyala/fasthttp/fasthttpadaptor"},
		m("control/api"):                  {"github.com/caddyserver/caddy/v2/modules/caddyhttp"},
		m("workers/importer"):             {m("edge/cli")},
		m("edge/cli"):                     nil,
		m("edge"):                         {m("tiles/internal/mvt"), m("control/store"), m("bench/scenario")},
		m("bench/cmd/bench"):              {m("bench/scenario"), m("internal/tile")},
		m("bench/scenario"):               nil,
		m("internal/config"):              {m("bench/scenario")},
	}
	got := map[string]string{}
	for _, v := range violations(graph, layeringRules()) {
		got[strings.TrimPrefix(v.Pkg, module+"/")+" -> "+strings.TrimPrefix(v.Banned, module+"/")] = v.String()
	}
	want := []string{
		"tiles/internal/mvt -> control/store",
		"internal/grant -> github.com/valyala/fasthttp",
		"internal/grant/wire -> github.com/valyala/fasthttp",
		"caddy-modules/cache -> github.com/valyala/fasthttp/fasthttpadaptor",
		"control/api -> github.com/caddyserver/caddy/v2/modules/caddyhttp",
		"workers/importer -> edge/cli",
		"internal/config -> bench/scenario",
		"edge -> bench/scenario",
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("violation %q not reported", w)
		}
		delete(got, w)
	}
	for k, v := range got {
		t.Errorf("unexpected violation %q:\n%s", k, v)
	}
	// The chain shows the path, and the reason comes with it.
	for _, v := range violations(graph, layeringRules()) {
		if v.Pkg == m("internal/grant") {
			if s := v.String(); !strings.Contains(s, "internal/grant/wire -> internal/x -> github.com/valyala/fasthttp") || !strings.Contains(s, "banned because") {
				t.Errorf("violation text %q: want the import chain and the reason", s)
			}
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, pkg string
		want         bool
	}{
		{"internal/tile/...", module + "/internal/tile", true},
		{"internal/tile/...", module + "/internal/tile/sub", true},
		{"internal/tile/...", module + "/internal/tiles", false},
		{"edge/...", module + "/edge", true},
		{"...", module + "/anything/below", true},
		{"...", "github.com/other/mod", false},
		{pgx, "github.com/jackc/pgx/v5/pgconn", true},
		{pgx, "github.com/jackc/pgxlisten", false},
		{caddy, "github.com/caddyserver/caddy/v2", true},
	}
	for _, tt := range tests {
		if got := match(tt.pattern, tt.pkg); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.pkg, got, tt.want)
		}
	}
}
