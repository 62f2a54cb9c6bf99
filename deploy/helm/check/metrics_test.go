package check

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const repoRoot = "../../.."

// metricRef matches metric names in PromQL: ours and Caddy's.
var metricRef = regexp.MustCompile(`\b(?:meridian|caddy)_[a-z0-9_]+\b`)

// TestDashboardAndAlertMetricsExist fails when the Grafana dashboard or the
// alert rules name a metric that no code registers: every name must be
// built by a registration in our Go source or Caddy's (literal names,
// Namespace/Subsystem/Name options, prefix + name concatenations).
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	var exprs []string
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/meridian.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if s, ok := v.Query.(string); ok {
			exprs = append(exprs, s)
		}
	}
	if len(exprs) < 15 {
		t.Fatalf("dashboard has %d queries, want the full overview", len(exprs))
	}
	for _, r := range loadRules(t) {
		exprs = append(exprs, r.Expr)
	}

	known := newRegistry(t)
	missing := map[string]bool{}
	for _, e := range exprs {
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") {
			t.Errorf("unbalanced expression: %s", e)
		}
		for _, m := range metricRef.FindAllString(e, -1) {
			if !known.has(m) {
				missing[m] = true
			}
		}
	}
	for m := range missing {
		t.Errorf("metric %s is referenced but registered nowhere in the code", m)
	}
	// The check itself must catch a wrong name.
	if known.has("meridian_tiles_no_such_metric_total") || !known.has("meridian_tiles_render_seconds_bucket") {
		t.Error("metric registry check is broken")
	}
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	doc, _ := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/README.md"))
	var out []rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.For == "" {
				t.Errorf("rule %+v: alert, expr and for are required", r)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description annotations are required", r.Alert)
			}
			if !strings.Contains(string(doc), "| "+r.Alert+" |") {
				t.Errorf("%s is not documented in deploy/prometheus/README.md", r.Alert)
			}
			out = append(out, r)
		}
	}
	if len(out) < 8 {
		t.Errorf("%d alert rules, want the documented set", len(out))
	}
	return out
}

// registry holds the metric names the code can register: exact names and
// patterns where one part is a string the same package names elsewhere.
type registry struct {
	exact    map[string]bool
	patterns []*regexp.Regexp
}

func (r *registry) has(name string) bool {
	for _, n := range []string{name, strings.TrimSuffix(name, "_bucket"), strings.TrimSuffix(name, "_sum"), strings.TrimSuffix(name, "_count")} {
		if r.exact[n] {
			return true
		}
		for _, p := range r.patterns {
			if p.MatchString(n) {
				return true
			}
		}
	}
	return false
}

func newRegistry(t *testing.T) *registry {
	t.Helper()
	r := &registry{exact: map[string]bool{}}
	dirs := map[string][]string{} // package dir -> files
	add := func(root string, skip func(string) bool) {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				if skip(p) {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
			}
			return nil
		})
	}
	add(repoRoot, func(p string) bool {
		base := filepath.Base(p)
		return base == ".git" || base == "node_modules" || base == "testdata" || strings.HasSuffix(p, "deploy/helm/check")
	})
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/caddyserver/caddy/v2")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Fatalf("locating Caddy's source (go list -m): %v", err)
	}
	caddyDir := strings.TrimSpace(string(out))
	add(filepath.Join(caddyDir, "modules", "caddyhttp"), func(string) bool { return false })
	for _, f := range []string{"metrics.go", "admin.go"} {
		if _, err := os.Stat(filepath.Join(caddyDir, f)); err == nil {
			dirs[caddyDir] = append(dirs[caddyDir], filepath.Join(caddyDir, f))
		}
	}
	for _, files := range dirs {
		r.scanPackage(files)
	}
	if len(r.exact) == 0 {
		t.Fatal("no metric names found in the source")
	}
	return r
}

var nameLike = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// scanPackage records the names one package can register.
func (r *registry) scanPackage(files []string) {
	fset := token.NewFileSet()
	var asts []*ast.File
	for _, f := range files {
		a, err := parser.ParseFile(fset, f, nil, 0)
		if err == nil {
			asts = append(asts, a)
		}
	}
	consts := map[string]string{} // identifiers bound to one string literal
	lits := map[string]bool{}
	for _, a := range asts {
		ast.Inspect(a, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && n.Kind == token.STRING && nameLike.MatchString(s) {
					lits[s] = true
				}
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if i < len(n.Values) {
						if s, ok := literal(n.Values[i]); ok {
							consts[name.Name] = s
						}
					}
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if id, ok := lhs.(*ast.Ident); ok && i < len(n.Rhs) {
						if s, ok := literal(n.Rhs[i]); ok {
							consts[id.Name] = s
						}
					}
				}
			}
			return true
		})
	}
	var alts []string
	for l := range lits {
		alts = append(alts, regexp.QuoteMeta(l))
	}
	sort.Strings(alts)
	wildcard := "(?:" + strings.Join(alts, "|") + ")"
	value := func(e ast.Expr) (string, bool) {
		if s, ok := literal(e); ok {
			return s, true
		}
		if id, ok := e.(*ast.Ident); ok {
			s, ok := consts[id.Name]
			return s, ok
		}
		return "", false
	}
	for _, a := range asts {
		ast.Inspect(a, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, ok := literal(n); ok && (strings.HasPrefix(s, "meridian_") || strings.HasPrefix(s, "caddy_")) {
					r.exact[s] = true
				}
			case *ast.CompositeLit: // prometheus.XxxOpts{Namespace, Subsystem, Name}
				parts := map[string]string{}
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					k, ok := kv.Key.(*ast.Ident)
					if !ok || (k.Name != "Namespace" && k.Name != "Subsystem" && k.Name != "Name") {
						continue
					}
					if v, ok := value(kv.Value); ok {
						parts[k.Name] = v
					} else if k.Name == "Name" {
						if p := concat(kv.Value, value, wildcard); p != "" {
							parts[k.Name] = "\x00" + p
						}
					}
				}
				if name, ok := parts["Name"]; ok {
					var pre []string
					for _, k := range []string{"Namespace", "Subsystem"} {
						if parts[k] != "" {
							pre = append(pre, parts[k])
						}
					}
					if strings.HasPrefix(name, "\x00") {
						prefix := ""
						if len(pre) > 0 {
							prefix = regexp.QuoteMeta(strings.Join(pre, "_") + "_")
						}
						r.patterns = append(r.patterns, regexp.MustCompile("^"+prefix+name[1:]+"$"))
					} else {
						r.exact[strings.Join(append(pre, name), "_")] = true
					}
				}
			case *ast.BinaryExpr:
				if n.Op == token.ADD {
					if p := concat(n, value, wildcard); strings.HasPrefix(p, "meridian_") || strings.HasPrefix(p, "caddy_") {
						r.patterns = append(r.patterns, regexp.MustCompile("^"+p+"$"))
					}
				}
			}
			return true
		})
	}
}

// concat turns a + chain into a regexp: known strings quoted, anything
// else a string the package names.
func concat(e ast.Expr, value func(ast.Expr) (string, bool), wildcard string) string {
	if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
		return concat(b.X, value, wildcard) + concat(b.Y, value, wildcard)
	}
	if s, ok := literal(e); ok {
		return regexp.QuoteMeta(s)
	}
	// An identifier may be bound to different strings in the package
	// (names are resolved per package, not per scope): any of them.
	if s, ok := value(e); ok {
		return "(?:" + regexp.QuoteMeta(s) + "|" + wildcard + ")"
	}
	return wildcard
}

func literal(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}
