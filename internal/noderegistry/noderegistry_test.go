package noderegistry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/noderegistry"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func TestBeatListExpire(t *testing.T) {
	db := pgtest.Meta(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	for _, n := range []noderegistry.Node{
		{Component: "tiles", Name: "t1", Version: "v1", Address: "10.0.0.1:8081", StartedAt: start, Ready: true},
		{Component: "tiles", Name: "t2", Version: "v1", Address: "10.0.0.2:8081", StartedAt: start, Ready: false,
			Checks: map[string]string{"metadata_db": "connection refused"}},
		{Component: "edge", Name: "e1", Address: "10.0.0.9:8080", StartedAt: start, Ready: true},
	} {
		if err := noderegistry.Beat(ctx, db.Pool, n); err != nil {
			t.Fatal(err)
		}
	}
	all, err := noderegistry.List(ctx, db.Pool, noderegistry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Component != "edge" || !all[0].Alive || !all[0].StartedAt.Equal(start) {
		t.Fatalf("List = %+v, want 3 alive nodes, edge first, started %v", all, start)
	}
	if all[2].Checks["metadata_db"] != "connection refused" {
		t.Errorf("t2 checks = %v", all[2].Checks)
	}
	ready, _ := noderegistry.List(ctx, db.Pool, noderegistry.Filter{Component: "tiles", LiveReadyOnly: true})
	if len(ready) != 1 || ready[0].Name != "t1" {
		t.Errorf("ready tiles = %+v, want t1 only", ready)
	}

	// t1 goes silent: stale for readers, then expired.
	db.Pool.Exec(ctx, `UPDATE nodes SET heartbeat_at = now() - interval '1 hour' WHERE name = 't1'`)
	ready, _ = noderegistry.List(ctx, db.Pool, noderegistry.Filter{Component: "tiles", LiveReadyOnly: true, StaleAfter: 15 * time.Second})
	if len(ready) != 0 {
		t.Errorf("ready tiles after t1 went silent = %+v, want none", ready)
	}
	n, err := noderegistry.Expire(ctx, db.Pool, 10*time.Minute)
	if err != nil || n != 1 {
		t.Errorf("Expire = %d, %v; want 1 row", n, err)
	}

	// A bad node is refused before any SQL.
	if err := noderegistry.Beat(ctx, db.Pool, noderegistry.Node{Component: "router", Name: "x"}); !errors.Is(err, noderegistry.ErrBadNode) {
		t.Errorf("Beat(unknown component) = %v, want ErrBadNode", err)
	}
	if err := noderegistry.Beat(ctx, db.Pool, noderegistry.Node{Component: "tiles"}); !errors.Is(err, noderegistry.ErrBadNode) {
		t.Errorf("Beat(no name) = %v, want ErrBadNode", err)
	}
}

func TestHeartbeaterReportsReadinessAndRemovesOnStop(t *testing.T) {
	db := pgtest.Meta(t)
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":"draining","checks":{"metadata_db":"ok"}}`))
			return
		}
		w.Write([]byte(`{"status":"ok","checks":{"metadata_db":"ok"}}`))
	}))
	defer srv.Close()
	h := &noderegistry.Heartbeater{
		Node:     noderegistry.Node{Component: "control", Name: "c1", Version: "v2", Address: "10.0.0.3:8082"},
		Ready:    noderegistry.HTTPReady(srv.Client(), srv.URL+"/readyz"),
		Interval: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, db.Pool) }()
	waitFor := func(what string, ok func([]noderegistry.Node) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			nodes, err := noderegistry.List(context.Background(), db.Pool, noderegistry.Filter{Component: "control"})
			if err == nil && ok(nodes) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: registry still shows %+v (%v)", what, nodes, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("registered ready", func(n []noderegistry.Node) bool {
		return len(n) == 1 && n[0].Ready && n[0].Version == "v2" && n[0].Checks["metadata_db"] == "ok"
	})
	ready = false
	waitFor("draining", func(n []noderegistry.Node) bool {
		return len(n) == 1 && !n[0].Ready && n[0].Checks["status"] == "draining"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor("removed at stop", func(n []noderegistry.Node) bool { return len(n) == 0 })
}

func TestAdvertised(t *testing.T) {
	tests := []struct{ listen, host, fallback, want string }{
		{"127.0.0.1:8081", "", "h", "127.0.0.1:8081"},
		{"0.0.0.0:8081", "", "pod-1", "pod-1:8081"},
		{":8081", "", "pod-1", "pod-1:8081"},
		{"0.0.0.0:8081", "10.1.2.3", "pod-1", "10.1.2.3:8081"},
		{"[::]:8081", "", "h", "h:8081"},
	}
	for _, tt := range tests {
		if got := noderegistry.Advertised(tt.listen, tt.host, tt.fallback); got != tt.want {
			t.Errorf("Advertised(%q, %q, %q) = %q, want %q", tt.listen, tt.host, tt.fallback, got, tt.want)
		}
	}
	if got := noderegistry.LocalURL("0.0.0.0:8081", "/readyz"); got != "http://127.0.0.1:8081/readyz" {
		t.Errorf("LocalURL = %q", got)
	}
}
