package control_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/control/openapi"
	"github.com/meridian-gis/meridian/internal/identity"
)

// routePattern is a net/http route pattern as the control packages write
// it: "METHOD /path".
var routePattern = regexp.MustCompile(`"((?:GET|POST|PUT|PATCH|DELETE) /(?:api|workspace-api|accounts-api)/[^" ]*)"`)

// registeredRoutes reads the route patterns out of the control plane's
// source (every package under control/, tests excluded), so a route added
// anywhere is seen without being listed by hand.
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	routes := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "controltest") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range routePattern.FindAllStringSubmatch(string(b), -1) {
			routes[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 20 {
		t.Fatalf("found only %d routes in the source: the scan is broken", len(routes))
	}
	return routes
}

func TestOpenAPIAgreesWithRoutes(t *testing.T) {
	documented := map[string]bool{}
	for _, op := range openapi.Ops {
		key := op.Method + " " + op.Path
		if documented[key] {
			t.Errorf("%s is documented twice", key)
		}
		documented[key] = true
	}
	for r := range registeredRoutes(t) {
		if !documented[r] {
			t.Errorf("route %q is not in the OpenAPI document: add an Op to control/openapi.Ops", r)
		}
	}

	// Every documented operation is routed: it answers with something
	// other than the router's "no route" 404 or a 405.
	e := controltest.Start(t, func(c *control.Config, _ *control.Deps) {
		c.AdminToken = "admin-secret"
		c.SSO.Issuer, c.SSO.ClientID = "http://127.0.0.1:1", "meridian" // routed; discovery is lazy
	})
	u := e.NewUser(t, identity.DefaultOrg, identity.RoleAdmin)
	fill := regexp.MustCompile(`\{[^}]+\}`)
	for _, op := range openapi.Ops {
		path := fill.ReplaceAllString(op.Path, "x")
		res, raw := u.Do(t, op.Method, path, nil)
		if res.StatusCode == http.StatusMethodNotAllowed || strings.Contains(string(raw), "no route for") {
			t.Errorf("%s %s is documented but not routed: %d %s", op.Method, op.Path, res.StatusCode, raw)
		}
	}

	// The served documents are OpenAPI 3.1 and split by prefix.
	for path, prefix := range map[string]string{"/api/openapi.json": "/api/", "/workspace-api/openapi.json": "/workspace-api/"} {
		res, raw := e.Do(t, "GET", path, nil, nil)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
		var doc struct {
			OpenAPI string                    `json:"openapi"`
			Paths   map[string]map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil || doc.OpenAPI != "3.1.0" || len(doc.Paths) == 0 {
			t.Fatalf("%s: %v %q %d paths", path, err, doc.OpenAPI, len(doc.Paths))
		}
		ids := map[string]bool{}
		for p, item := range doc.Paths {
			if !strings.HasPrefix(p, prefix) && !(prefix == "/workspace-api/" && strings.HasPrefix(p, "/accounts-api/")) {
				t.Errorf("%s documents %s", path, p)
			}
			for m, o := range item {
				op := o.(map[string]any)
				id, _ := op["operationId"].(string)
				if id == "" || ids[id] {
					t.Errorf("%s %s: operationId %q missing or repeated", m, p, id)
				}
				ids[id] = true
				if op["responses"] == nil {
					t.Errorf("%s %s: no responses", m, p)
				}
				params, _ := op["parameters"].([]any)
				if n := strings.Count(p, "{"); n != len(params) {
					t.Errorf("%s %s: %d path parameters declared, %d in the path", m, p, len(params), n)
				}
			}
		}
	}
}
