package netcluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// needTool returns a tool's path; missing, it skips the test, or fails it
// under MERIDIAN_REQUIRE_DB (CI, where make test installs it).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("MERIDIAN_REQUIRE_DB") != "" {
			t.Fatalf("%s not found: %v", name, err)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

// The admin console in headless Chromium, on the cluster: it lists every
// node as ready, shows both edges' caches, purges a source across the
// cluster (edge e1 then misses it), and replays a dead letter of edge e2's
// invalidation subscription (it leaves the dead letters and is delivered).
func (c *cluster) adminConsole(t *testing.T) {
	node := needTool(t, "node")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = needTool(t, "chromium")
	}
	compat, _ := filepath.Abs("../../compat")
	if _, err := os.Stat(filepath.Join(compat, "node_modules", "playwright-core")); err != nil {
		npm := needTool(t, "npm")
		if out, err := exec.Command(npm, "ci", "--prefix", compat, "--no-audit", "--no-fund").CombinedOutput(); err != nil {
			t.Fatalf("npm ci in compat/: %v\n%s", err, out)
		}
	}
	ctx := context.Background()
	p := tilePath(0, 0, 0)
	c.waitCached(t, p, 30*time.Second, "e1")
	const sub = "edge-e2-invalidations"
	if _, err := c.meta.Exec(ctx, `INSERT INTO broker_dead_letters (subscription, message_id, topic, data, published_at, attempts, last_error)
		VALUES ($1, 900000001, 'invalidations', '{"tags":["map:console-test"],"reason":"dead letter test"}', now(), 5, 'edge was away')`, sub); err != nil {
		t.Fatal(err)
	}

	// The first user to sign up is the default organization's admin; a
	// batch job of theirs runs long enough to be cancelled in the console.
	const email = "ops-admin@example.com"
	cookie := c.signUpAdmin(t, email)
	jobID := c.longJob(t)

	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, node, filepath.Join(compat, "admin.mjs"))
	cmd.Dir = compat
	cmd.Env = append(os.Environ(),
		"BASE_URL=http://"+c.hosts["e1"].Addr(edgePort),
		"ADMIN_TOKEN="+adminToken,
		"EXPECT_NODES=e1 e2 t1 t2 t3 ctl wrk",
		"PURGE_TAGS=src:local/public.places",
		"DEAD_SUB="+sub,
		"SESSION_COOKIE="+cookie,
		"USER_EMAIL="+email,
		"CHROMIUM="+chromium,
		"TIMEOUT_MS=30000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rep struct {
		OK             bool     `json:"ok"`
		Browser        string   `json:"browser"`
		Problems       []string `json:"problems"`
		PageErrors     []string `json:"pageErrors"`
		ConsoleErrors  []string `json:"consoleErrors"`
		FailedRequests []string `json:"failedRequests"`
		BadResponses   []string `json:"badResponses"`
		Steps          []struct {
			Name    string     `json:"name"`
			Rows    [][]string `json:"rows"`
			Message string     `json:"message"`
			ID      string     `json:"id"`
			Before  int        `json:"before"`
			After   int        `json:"after"`
			Config  string     `json:"config"`
		} `json:"steps"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("admin.mjs (%v) printed no report: %v\n%s\n%s", err, jerr, stdout.String(), stderr.String())
	}
	t.Logf("Chromium %s", rep.Browser)
	if !rep.OK || err != nil {
		t.Errorf("admin.mjs: ok=%v (%v), problems %q\n%s", rep.OK, err, rep.Problems, stderr.String())
	}
	if len(rep.PageErrors)+len(rep.ConsoleErrors)+len(rep.FailedRequests)+len(rep.BadResponses) > 0 {
		t.Errorf("page errors %q, console errors %q, failed requests %q, responses >= 400 %q",
			rep.PageErrors, rep.ConsoleErrors, rep.FailedRequests, rep.BadResponses)
	}
	steps := map[string]int{}
	for i, s := range rep.Steps {
		steps[s.Name] = i
	}
	if i, ok := steps["nodes"]; !ok || len(rep.Steps[i].Rows) < 7 {
		t.Errorf("nodes step = %+v, want every node", rep.Steps)
	}
	if i, ok := steps["caches"]; !ok || len(rep.Steps[i].Rows) != 2 {
		t.Errorf("caches step shows %v, want both edges", rep.Steps)
	}
	if i, ok := steps["purge"]; !ok || !strings.Contains(rep.Steps[i].Message, "published") {
		t.Errorf("purge step = %+v", rep.Steps)
	}
	if i, ok := steps["replay"]; !ok || rep.Steps[i].ID != "900000001" || rep.Steps[i].After != rep.Steps[i].Before-1 {
		t.Errorf("replay step = %+v, want the dead letter replayed and gone from the list", rep.Steps)
	}
	if i, ok := steps["config"]; !ok || strings.Contains(rep.Steps[i].Config, c.key) || !strings.Contains(rep.Steps[i].Config, "REDACTED") {
		t.Errorf("config shown by the console leaks the key or redacts nothing")
	}
	for _, name := range []string{"session", "cancelJob", "auditedPurge"} {
		if _, ok := steps[name]; !ok {
			t.Errorf("session step %s missing: %+v", name, rep.Steps)
		}
	}
	var status string
	c.meta.QueryRow(ctx, `SELECT status FROM jobs WHERE id = $1`, jobID).Scan(&status)
	if status != "cancelled" {
		t.Errorf("the batch job cancelled in the console is %q, want cancelled", status)
	}
	// The purge reached e1; the replayed message was delivered to e2 and
	// acked (no dead letter, no pending delivery left).
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, h, _, _ := c.get("e1", p)
		var dead, pending int
		c.meta.QueryRow(ctx, `SELECT (SELECT count(*) FROM broker_dead_letters WHERE subscription = $1),
			(SELECT count(*) FROM broker_deliveries d JOIN broker_messages m ON m.id = d.message_id
			 WHERE d.subscription = $1 AND m.data::text LIKE '%console-test%')`, sub).Scan(&dead, &pending)
		if !isHit(h) && dead == 0 && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the console: e1 Cache-Status %q, %d dead letters and %d pending deliveries on %s", h.Get("Cache-Status"), dead, pending, sub)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signUpAdmin signs up the first user through the edge (the default
// organization's admin) and returns the session cookie's value.
func (c *cluster) signUpAdmin(t *testing.T, email string) string {
	t.Helper()
	body := `{"email":"` + email + `","password":"correct horse battery staple","name":"Ops Admin"}`
	res, err := c.client.Post("http://"+c.hosts["e1"].Addr(edgePort)+"/accounts-api/signup", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated || !strings.Contains(string(b), `"admin"`) {
		t.Fatalf("sign-up of the first user = %d %s, want 201 as admin", res.StatusCode, b)
	}
	for _, ck := range res.Cookies() {
		if ck.Name == "meridian_session" {
			return ck.Value
		}
	}
	t.Fatal("sign-up set no session cookie")
	return ""
}

// longJob submits a batch SQL job that sleeps for a minute and waits until
// it runs; it returns the job's id.
func (c *cluster) longJob(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	tok, _, err := tokenstore.New(c.meta, mustKeyring(t, c.key), nil).Create(ctx, tokenstore.Spec{Owner: "cluster-test",
		Grants: []grant.Grant{{Connection: "local", Source: "*"}}, APIs: []grant.API{grant.APISQL}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+c.hosts["e1"].Addr(edgePort)+"/api/v3/sql/local/job",
		strings.NewReader(`{"query":"SELECT pg_sleep(60)","timeout_ms":90000}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	id := jsonField(b, "jobId")
	if res.StatusCode >= 300 || id == "" {
		t.Fatalf("submitting a batch job = %d %s", res.StatusCode, b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		var status string
		c.meta.QueryRow(ctx, `SELECT status FROM jobs WHERE id = $1`, id).Scan(&status)
		if status == "running" {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %q after 30s, want running", id, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
