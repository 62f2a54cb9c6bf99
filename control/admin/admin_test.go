package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/admin"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/noderegistry"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

const secret = "s3cret-admin"

type fixture struct {
	srv *httptest.Server
	b   *pgbroker.Broker
	db  *pgxpool.Pool
}

func (f fixture) do(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var v map[string]any
	json.Unmarshal(b, &v)
	return res.StatusCode, v
}

func setup(t *testing.T, cfg any) fixture {
	db := pgtest.Meta(t)
	b := pgbroker.New(db.Pool, pgbroker.Config{}, nil)
	t.Cleanup(func() { b.Close() })
	mux := http.NewServeMux()
	if err := admin.Mount(mux, admin.Deps{Log: slog.New(slog.DiscardHandler), Meta: db.Pool, Broker: b,
		Config: cfg, Require: admin.BearerSecret(secret)}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	start := time.Now().Add(-90 * time.Second)
	noderegistry.Beat(ctx, db.Pool, noderegistry.Node{Component: "edge", Name: "e1", Version: "v9", Address: "10.0.0.1:8080", StartedAt: start, Ready: true,
		Stats: map[string]float64{"hits_total": 90, "misses_total": 10, "entries": 42}})
	noderegistry.Beat(ctx, db.Pool, noderegistry.Node{Component: "tiles", Name: "t1", Version: "v9", Address: "10.0.0.2:8081", StartedAt: start, Ready: false,
		Checks: map[string]string{"metadata_db": "connection refused"}})
	return fixture{srv: srv, b: b, db: db.Pool}
}

func TestAdminRequiresTheSecret(t *testing.T) {
	f := setup(t, nil)
	for _, tok := range []string{"", "wrong", secret + "x"} {
		if code, _ := f.do(t, "GET", "/api/admin/nodes", tok, ""); code != http.StatusUnauthorized {
			t.Errorf("GET /api/admin/nodes with token %q = %d, want 401", tok, code)
		}
	}
	if code, _ := f.do(t, "POST", "/api/admin/purge", "", `{"tags":["conn:x"]}`); code != http.StatusUnauthorized {
		t.Errorf("purge without token = %d, want 401", code)
	}
	// An empty secret turns the API off.
	mux := http.NewServeMux()
	db := pgtest.Meta(t)
	admin.Mount(mux, admin.Deps{Log: slog.New(slog.DiscardHandler), Meta: db.Pool, Broker: f.b, Require: admin.BearerSecret("")})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/admin/nodes", nil)
	req.Header.Set("Authorization", "Bearer ")
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("empty secret, empty bearer = %d, want 401", rec.Code)
	}
}

func TestAdminNodesAndCache(t *testing.T) {
	f := setup(t, nil)
	code, v := f.do(t, "GET", "/api/admin/nodes", secret, "")
	nodes, _ := v["nodes"].([]any)
	if code != 200 || len(nodes) != 2 {
		t.Fatalf("nodes = %d %v", code, v)
	}
	e1 := nodes[0].(map[string]any)
	if e1["name"] != "e1" || e1["version"] != "v9" || e1["ready"] != true || e1["alive"] != true || e1["uptime_seconds"].(float64) < 89 {
		t.Errorf("e1 = %v", e1)
	}
	t1 := nodes[1].(map[string]any)
	if t1["ready"] != false || t1["checks"].(map[string]any)["metadata_db"] != "connection refused" {
		t.Errorf("t1 = %v", t1)
	}
	if code, v := f.do(t, "GET", "/api/admin/nodes?component=router", secret, ""); code != 400 || v["code"] != "BAD_REQUEST" {
		t.Errorf("bad component = %d %v", code, v)
	}
	code, v = f.do(t, "GET", "/api/admin/cache", secret, "")
	edges, _ := v["edges"].([]any)
	if code != 200 || len(edges) != 1 || edges[0].(map[string]any)["hit_ratio"] != 0.9 {
		t.Errorf("cache = %d %v, want e1 with hit ratio 0.9", code, v)
	}
}

func TestAdminPurgeReachesSubscribers(t *testing.T) {
	f := setup(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := broker.Subscription{Topic: broker.TopicInvalidations, Name: "edge-e1-invalidations"}
	if err := f.b.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	code, v := f.do(t, "POST", "/api/admin/purge", secret, `{"tags":["src:local/public.places","conn:local"]}`)
	if code != http.StatusAccepted || v["message_id"] == "" {
		t.Fatalf("purge = %d %v", code, v)
	}
	got := make(chan cachetag.Invalidation, 1)
	rctx, rcancel := context.WithCancel(ctx)
	go f.b.Receive(rctx, sub, func(_ context.Context, m *broker.Message) error {
		var inv cachetag.Invalidation
		json.Unmarshal(m.Data, &inv)
		got <- inv
		rcancel()
		return nil
	})
	select {
	case inv := <-got:
		if len(inv.Tags) != 2 || inv.Tags[0] != "src:local/public.places" {
			t.Errorf("invalidation = %+v", inv)
		}
	case <-ctx.Done():
		t.Fatal("the purge never reached the subscription")
	}
	for body, want := range map[string]int{
		`{"tags":[]}`:                 400,
		`{"tags":["nope"]}`:           400,
		`{"tags":["src:a b"]}`:        400,
		`{"tags":["x:1"]}`:            400,
		`{}`:                          400,
		`{"urls":["api/v3/maps/x"]}`:  400,
		`{"urls":["ftp://h/x"]}`:      400,
		`{"prefix":"api/"}`:           400,
		`{"prefix":"/a b/"}`:          400,
		`not json`:                    400,
		`{"tags":["conn:x"],"bad":1}`: 400,
	} {
		if code, _ := f.do(t, "POST", "/api/admin/purge", secret, body); code != want {
			t.Errorf("purge %s = %d, want %d", body, code, want)
		}
	}
}

// Purges by URL and by prefix travel on the invalidations topic like tag
// purges, without credentials, and are recorded in the audit log.
func TestAdminPurgeByURLAndPrefix(t *testing.T) {
	f := setup(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := broker.Subscription{Topic: broker.TopicInvalidations, Name: "edge-e1-invalidations"}
	if err := f.b.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	got := make(chan cachetag.Invalidation, 10)
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	go f.b.Receive(rctx, sub, func(_ context.Context, m *broker.Message) error {
		var inv cachetag.Invalidation
		json.Unmarshal(m.Data, &inv)
		got <- inv
		return nil
	})
	next := func() cachetag.Invalidation {
		t.Helper()
		select {
		case inv := <-got:
			return inv
		case <-ctx.Done():
			t.Fatal("the purge never reached the subscription")
		}
		return cachetag.Invalidation{}
	}

	code, v := f.do(t, "POST", "/api/admin/purge", secret,
		`{"urls":["https://maps.example.com/api/v3/maps/local/table/3/4/2?src=a&access_token=eyJsecret&b=2","/api/v3/sql/local/query?q=select%201"]}`)
	if code != http.StatusAccepted || v["message_id"] == "" {
		t.Fatalf("purge urls = %d %v", code, v)
	}
	wantURLs := []string{"https://maps.example.com/api/v3/maps/local/table/3/4/2?src=a&b=2", "/api/v3/sql/local/query?q=select%201"}
	if inv := next(); strings.Join(inv.URLs, " ") != strings.Join(wantURLs, " ") || len(inv.Tags) != 0 || len(inv.Prefixes) != 0 || inv.Soft {
		t.Errorf("invalidation = %+v, want urls %q", inv, wantURLs)
	}

	code, v = f.do(t, "POST", "/api/admin/purge", secret, `{"prefix":"/api/v3/maps/local/","soft":true}`)
	if code != http.StatusAccepted || v["prefix"] != "/api/v3/maps/local/" {
		t.Fatalf("purge prefix = %d %v", code, v)
	}
	if inv := next(); len(inv.Prefixes) != 1 || inv.Prefixes[0] != "/api/v3/maps/local/" || !inv.Soft || len(inv.URLs) != 0 {
		t.Errorf("invalidation = %+v, want a soft purge of prefix /api/v3/maps/local/", inv)
	}

	code, _ = f.do(t, "POST", "/api/admin/purge", secret, `{"tags":["map:m1"],"urls":["/a"],"prefix":"/b/"}`)
	if code != http.StatusAccepted {
		t.Fatalf("purge of all three kinds = %d", code)
	}
	if inv := next(); len(inv.Tags) != 1 || len(inv.URLs) != 1 || len(inv.Prefixes) != 1 {
		t.Errorf("invalidation = %+v, want one tag, url and prefix", inv)
	}

	type row struct {
		Action, Target, ActorID string
		Detail                  map[string]any
	}
	var rows []row
	rs, err := f.db.Query(ctx, `SELECT action, target, actor_id, detail FROM audit_log ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.Action, &r.Target, &r.ActorID, &r.Detail); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	rs.Close()
	if len(rows) != 3 {
		t.Fatalf("audit log = %+v, want 3 purges", rows)
	}
	for _, r := range rows {
		if r.Action != "admin.purge" || r.ActorID != "admin-token" || r.Detail["message_id"] == nil {
			t.Errorf("audit row = %+v, want admin.purge by admin-token with the message id", r)
		}
	}
	if rows[0].Target != strings.Join(wantURLs, " ") || len(rows[0].Detail["urls"].([]any)) != 2 {
		t.Errorf("audit of the URL purge = %+v", rows[0])
	}
	if rows[1].Target != "/api/v3/maps/local/" || rows[1].Detail["prefix"] != "/api/v3/maps/local/" || rows[1].Detail["soft"] != true {
		t.Errorf("audit of the prefix purge = %+v", rows[1])
	}
	if rows[2].Target != "map:m1 /a /b/" {
		t.Errorf("audit of the mixed purge = %+v", rows[2])
	}
	b, _ := json.Marshal(rows)
	if strings.Contains(string(b), "eyJsecret") {
		t.Errorf("the audit log holds the access token: %s", b)
	}
}

func TestWithoutCredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/a", "/a"},
		{"/a?access_token=x", "/a"},
		{"/a?b=1&access_token=x&c=2", "/a?b=1&c=2"},
		{"https://h/a?API_KEY=x&b=%2C#f", "https://h/a?b=%2C#f"},
		{"/a?b", "/a?b"},
	}
	for _, tt := range tests {
		if got := admin.WithoutCredentials(tt.in); got != tt.want {
			t.Errorf("withoutCredentials(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAdminDeadLettersInspectReplayDrop(t *testing.T) {
	f := setup(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub := broker.Subscription{Topic: broker.TopicImports, Name: "imports-workers", MaxAttempts: 1, MinBackoff: 10 * time.Millisecond}
	if err := f.b.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{`{"import":"a"}`, `{"import":"b"}`} {
		if _, err := f.b.Publish(ctx, broker.TopicImports, []byte(d), nil); err != nil {
			t.Fatal(err)
		}
	}
	// A failing handler dead-letters both.
	var failing atomic.Bool
	failing.Store(true)
	var handled atomic.Int64
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	go f.b.Receive(rctx, sub, func(_ context.Context, m *broker.Message) error {
		if failing.Load() {
			return errors.New("worker broken")
		}
		if bytes.Contains(m.Data, []byte(`"a"`)) {
			handled.Add(1)
		}
		return nil
	})
	var letters []any
	for deadline := time.Now().Add(15 * time.Second); len(letters) < 2; {
		_, v := f.do(t, "GET", "/api/admin/broker/subscriptions/imports-workers/dead-letters", secret, "")
		letters, _ = v["dead_letters"].([]any)
		if time.Now().After(deadline) {
			t.Fatalf("dead letters = %v, want 2", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := letters[0].(map[string]any)
	if first["last_error"] != "worker broken" || first["topic"] != "imports" {
		t.Errorf("dead letter = %v", first)
	}
	code, v := f.do(t, "GET", "/api/admin/broker/subscriptions", secret, "")
	subs, _ := v["subscriptions"].([]any)
	if code != 200 || len(subs) != 1 || subs[0].(map[string]any)["dead_letters"].(float64) != 2 {
		t.Errorf("subscriptions = %d %v", code, v)
	}

	// Fixed worker: replay "a", drop "b".
	failing.Store(false)
	var aID, bID string
	for _, l := range letters {
		m := l.(map[string]any)
		if strings.Contains(string(must(json.Marshal(m["data"]))), `"a"`) {
			aID = m["id"].(string)
		} else {
			bID = m["id"].(string)
		}
	}
	if code, v := f.do(t, "POST", "/api/admin/broker/subscriptions/imports-workers/dead-letters/"+aID+"/replay", secret, ""); code != 200 {
		t.Fatalf("replay = %d %v", code, v)
	}
	for deadline := time.Now().Add(10 * time.Second); handled.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the replayed message was never handled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := f.do(t, "DELETE", "/api/admin/broker/subscriptions/imports-workers/dead-letters/"+bID, secret, ""); code != 204 {
		t.Errorf("drop = %d, want 204", code)
	}
	// Both changes are in the audit log, by the admin token.
	var actions []string
	rows, _ := f.db.Query(context.Background(), `SELECT action || ' ' || target || ' ' || actor_id FROM audit_log ORDER BY id`)
	for rows.Next() {
		var a string
		rows.Scan(&a)
		actions = append(actions, a)
	}
	rows.Close()
	want := []string{"admin.dead_letter.replay imports-workers/" + aID + " admin-token", "admin.dead_letter.drop imports-workers/" + bID + " admin-token"}
	if strings.Join(actions, "|") != strings.Join(want, "|") {
		t.Errorf("audit log = %q, want %q", actions, want)
	}
	for _, p := range []string{aID, bID, "999999", "x"} {
		if code, _ := f.do(t, "DELETE", "/api/admin/broker/subscriptions/imports-workers/dead-letters/"+p, secret, ""); code != 404 {
			t.Errorf("drop of gone %s = %d, want 404", p, code)
		}
		if code, _ := f.do(t, "POST", "/api/admin/broker/subscriptions/imports-workers/dead-letters/"+p+"/replay", secret, ""); code != 404 {
			t.Errorf("replay of gone %s = %d, want 404", p, code)
		}
	}
	_, v = f.do(t, "GET", "/api/admin/broker/subscriptions/imports-workers/dead-letters", secret, "")
	if l, _ := v["dead_letters"].([]any); len(l) != 0 {
		t.Errorf("dead letters after replay and drop = %v, want none", v)
	}
}

func must(b []byte, _ error) []byte { return b }

func TestAdminConfigRedactsSecrets(t *testing.T) {
	type peers struct {
		Token string   `json:"token"`
		List  []string `json:"list"`
	}
	cfg := struct {
		DatabaseURL string `json:"database_url"`
		SecretKey   string `json:"secret_key"`
		PublicURL   string `json:"public_url"`
		SMTP        struct {
			Password string `json:"smtp_password"`
			Host     string `json:"host"`
		} `json:"smtp"`
		Peers     peers  `json:"peers"`
		MaxConns  int    `json:"max_conns"`
		PubSubURL string `json:"pubsub_url"`
	}{DatabaseURL: "postgres://meridian:hunter2@db:5432/meridian?sslmode=disable", SecretKey: "c2VjcmV0",
		PublicURL: "https://maps.example.com", Peers: peers{Token: "peer-secret", List: []string{"http://10.0.0.5:8091"}},
		MaxConns: 10, PubSubURL: "https://pubsub.example.com/?access_token=abc"}
	cfg.SMTP.Password, cfg.SMTP.Host = "mailpw", "smtp.example.com"
	f := setup(t, cfg)
	code, v := f.do(t, "GET", "/api/admin/config", secret, "")
	b, _ := json.Marshal(v)
	for _, leaked := range []string{"hunter2", "c2VjcmV0", "peer-secret", "mailpw", "abc"} {
		if strings.Contains(string(b), leaked) {
			t.Errorf("config leaks %q: %s", leaked, b)
		}
	}
	for _, kept := range []string{"maps.example.com", "smtp.example.com", "10.0.0.5:8091", "meridian:REDACTED@db:5432", `"max_conns":10`} {
		if !strings.Contains(string(b), kept) {
			t.Errorf("config lacks %q: %s", kept, b)
		}
	}
	if code != 200 {
		t.Errorf("config = %d", code)
	}
}
