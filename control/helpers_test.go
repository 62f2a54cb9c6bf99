package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// apiEnv is a control plane serving on 127.0.0.1 with a real metadata
// database, token store and postgres broker, and a data connection
// "local" (its URL is never opened by the control plane).
type apiEnv struct {
	base   string
	db     *pgtest.DB
	broker *pgbroker.Broker
	tokens *tokenstore.Store
	cfg    Config
	kr     *secret.Keyring
}

func startAPI(t *testing.T, mod func(*Config)) *apiEnv {
	t.Helper()
	db := pgtest.Meta(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	kr, err := secret.ParseKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dataconn.New(db.Pool, kr).Create(ctx, dataconn.Connection{Name: "local", Kind: "postgres", URL: "postgres://u:p@127.0.0.1:1/data"}); err != nil {
		t.Fatal(err)
	}
	b := pgbroker.New(db.Pool, pgbroker.Config{}, log)
	t.Cleanup(func() { b.Close() })
	store := tokenstore.New(db.Pool, kr, b)
	if _, err := store.EnsureSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	w := tokenstore.NewWatcher(store, grant.NewVerifier(nil, nil, grant.VerifierConfig{}), tokenstore.WatcherConfig{}, log)
	if err := w.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := Config{Addr: addr, Jobs: JobsConfig{ImportDir: t.TempDir()}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, Deps{Log: log, Meta: db.Pool, Broker: b, Tokens: w, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	e := &apiEnv{base: "http://" + addr, db: db, broker: b, tokens: store, cfg: s.cfg, kr: kr}
	for i := 0; ; i++ {
		res, err := http.Get(e.base + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		if i == 100 {
			t.Fatalf("control did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e
}

// token creates a token with grants "conn:source" for apis.
func (e *apiEnv) token(t *testing.T, apis []grant.API, grants ...grant.Grant) string {
	t.Helper()
	tok, _, err := e.tokens.Create(context.Background(), tokenstore.Spec{Owner: "tester", Grants: grants, APIs: apis})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request and decodes the JSON answer into out (if not nil).
func (e *apiEnv) do(t *testing.T, method, path, token, contentType string, body io.Reader, out any) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json (body %s)", method, path, ct, raw)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	if out != nil {
		json.Unmarshal(raw, out)
	}
	return res.StatusCode, m
}

func (e *apiEnv) postJSON(t *testing.T, path, token string, v any, out any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(v)
	return e.do(t, "POST", path, token, "application/json", bytes.NewReader(b), out)
}

// multipartBody builds an upload: fields first (in order), then the file.
func multipartBody(t *testing.T, fields [][2]string, filename string, content []byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	if filename != "" {
		fw, err := mw.CreateFormFile("file", filename)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(content)
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

// subscribe creates a subscription on topic and returns a channel of its
// messages (received until the test ends).
func subscribe(t *testing.T, b broker.Broker, topic string) <-chan *broker.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub := broker.Subscription{Topic: topic, Name: "test-" + topic}
	if err := b.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *broker.Message, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Receive(ctx, sub, func(_ context.Context, m *broker.Message) error { ch <- m; return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

func receive(t *testing.T, ch <-chan *broker.Message) *broker.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

// dirEntries lists the import folder.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

// testdata returns a file of the shared geodata library
// ($MERIDIAN_TESTDATA, default ../../shared/data), skipping without it.
func testdata(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test data %s: %v (set MERIDIAN_TESTDATA)", rel, err)
	}
	return p
}
