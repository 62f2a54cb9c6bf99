package control

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func TestServeHealthAndErrors(t *testing.T) {
	db := pgtest.Meta(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	s, err := New(Config{Addr: addr}, Deps{Log: slog.New(slog.DiscardHandler), Meta: db.Pool, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	base := "http://" + addr
	var res *http.Response
	for i := 0; i < 50; i++ {
		if res, err = http.Get(base + "/readyz"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/readyz = %v %v, want 200", res, err)
	}
	res.Body.Close()

	res, err = http.Get(base + "/api/nope")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != 404 || body["error"] == nil || body["code"] != "NOT_FOUND" {
		t.Errorf("unknown route = %d %v, want 404 JSON error", res.StatusCode, body)
	}

	db.Pool.Close() // a dead metadata database makes the node unready
	res, err = http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with closed DB pool = %d, want 503", res.StatusCode)
	}
}
