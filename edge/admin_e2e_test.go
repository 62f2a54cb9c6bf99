package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/grant"
)

// The admin console (/admin/) of one `meridian up` in headless Chromium
// (compat/admin.mjs): signed in with the admin token it lists the nodes as
// ready and the edge's cache, purges a tag, replays a dead letter and shows
// the config; then, signed in as the organization's administrator, it
// lists the users, cancels a running batch job and shows the purge in the
// audit log. (internal/netcluster runs the same walk on a cluster.)
func TestAdminConsoleInBrowser(t *testing.T) {
	needTool(t, "node")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = needTool(t, "chromium")
	}
	appBuilt(t, "admin/index.html", "admin")
	const adminToken = "admin-secret-of-the-console-test"
	u := startImpUp(t, "MERIDIAN_CONTROL_ADMIN_TOKEN="+adminToken)
	dir := compatDir(t)
	ctx := context.Background()

	adminGet := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", u.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	var nodes struct {
		Nodes []struct {
			Name string `json:"name"`
		} `json:"nodes"`
	}
	adminGet("/api/admin/nodes", &nodes)
	if len(nodes.Nodes) == 0 {
		t.Fatal("the node registry lists no node")
	}
	// A dead letter of the worker's imports subscription, to replay.
	const sub = "workers-imports"
	if _, err := u.meta.Pool.Exec(ctx, `INSERT INTO broker_dead_letters (subscription, message_id, topic, data, published_at, attempts, last_error)
		VALUES ($1, 900000001, 'imports', '{"id":"console-test"}', now(), 5, 'worker was away')`, sub); err != nil {
		t.Fatal(err)
	}

	// The first user to sign up is the organization's administrator; a
	// batch job runs long enough to be cancelled in the console.
	const email = "ops-admin@example.com"
	res, err := http.Post(u.base+"/accounts-api/signup", "application/json",
		strings.NewReader(`{"email":"`+email+`","password":"correct horse battery staple","name":"Ops Admin"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var cookie string
	for _, c := range res.Cookies() {
		if c.Name == "meridian_session" {
			cookie = c.Value
		}
	}
	if res.StatusCode != http.StatusCreated || cookie == "" {
		t.Fatalf("sign-up of the first user = %d, session cookie %q; want 201 and a session", res.StatusCode, cookie)
	}
	req, _ := http.NewRequest("POST", u.base+"/api/v3/sql/local/job", strings.NewReader(`{"query":"SELECT pg_sleep(60)","timeout_ms":90000}`))
	req.Header.Set("Authorization", "Bearer "+u.token(t, grant.APISQL))
	req.Header.Set("Content-Type", "application/json")
	if res, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("submitting a batch job = %d, want 201", res.StatusCode)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var n int
		u.meta.Pool.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE status = 'running'`).Scan(&n)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch job is not running after 30s")
		}
	}

	var shots string
	if a := os.Getenv(envArtifacts); a != "" {
		shots = filepath.Join(a, "admin")
		os.MkdirAll(shots, 0o755)
	}
	names := []string{nodes.Nodes[0].Name}
	out, err := runNode(t, dir, "admin.mjs", 3*time.Minute,
		"BASE_URL="+u.base, "ADMIN_TOKEN="+adminToken, "EXPECT_NODES="+strings.Join(names, " "),
		"PURGE_TAGS=src:local/public.places", "DEAD_SUB="+sub, "SESSION_COOKIE="+cookie, "USER_EMAIL="+email,
		"CHROMIUM="+chromium, "SCREENSHOT_DIR="+shots, "TIMEOUT_MS=30000")
	saveArtifact(t, "admin-report.json", out)
	var rep struct {
		OK             bool     `json:"ok"`
		Problems       []string `json:"problems"`
		PageErrors     []string `json:"pageErrors"`
		ConsoleErrors  []string `json:"consoleErrors"`
		FailedRequests []string `json:"failedRequests"`
		BadResponses   []string `json:"badResponses"`
		Steps          []struct {
			Name    string `json:"name"`
			Message string `json:"message"`
			Before  int    `json:"before"`
			After   int    `json:"after"`
			Config  string `json:"config"`
			Who     string `json:"who"`
			Invite  bool   `json:"invite"`
			Quota   string `json:"quota"`
			Row     string `json:"row"`
		} `json:"steps"`
	}
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("admin.mjs (exit %v) printed no JSON report: %v\n%s", err, jerr, lastBytes(out, 4000))
	}
	if !rep.OK || err != nil {
		t.Errorf("admin.mjs: ok=%v exit %v, problems %q", rep.OK, err, rep.Problems)
	}
	if len(rep.PageErrors)+len(rep.ConsoleErrors)+len(rep.FailedRequests)+len(rep.BadResponses) > 0 {
		t.Errorf("page errors %q\nconsole errors %q\nfailed requests %q\nresponses >= 400 %q",
			rep.PageErrors, rep.ConsoleErrors, rep.FailedRequests, rep.BadResponses)
	}
	for _, s := range rep.Steps {
		switch s.Name {
		case "purge", "auditedPurge":
			if !strings.Contains(s.Message, "published") {
				t.Errorf("%s: %q, want the purge published", s.Name, s.Message)
			}
		case "replay":
			if s.Before != 1 || s.After != 0 || !strings.HasPrefix(s.Message, "Replayed ") {
				t.Errorf("replay: %d dead letters, then %d, %q; want 1, then 0, replayed", s.Before, s.After, s.Message)
			}
		case "config":
			if strings.Contains(s.Config, adminToken) || !strings.Contains(s.Config, "REDACTED") {
				t.Errorf("the console's config shows the admin token, or redacts nothing")
			}
		case "orgs":
			if !strings.HasPrefix(s.Message, "Created Console Org") || !s.Invite || s.Quota != "The geocoding quota is 5 a month." || !strings.Contains(s.Row, "geocoding 0/5*") {
				t.Errorf("creating an organization in the console: %+v", s)
			}
		case "session":
			if !strings.HasPrefix(s.Who, "administrator") {
				t.Errorf("signed in as the administrator, the bar says %q", s.Who)
			}
		case "cancelJob":
			if !strings.HasPrefix(s.Message, "Cancelled job ") {
				t.Errorf("cancelling the batch job: %q", s.Message)
			}
		}
	}
}
