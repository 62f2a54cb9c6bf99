package peercache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang/groupcache"
	pb "github.com/golang/groupcache/groupcachepb"
)

func TestOwnerIsStable(t *testing.T) {
	a := New(Options{Self: "http://a:1"})
	a.Set("http://b:1", "http://c:1")
	b := New(Options{Self: "http://b:1"})
	b.Set("http://c:1", "http://a:1/")
	owners := map[string]int{}
	for i := range 3000 {
		k := fmt.Sprintf("mvt/0123456789abcdef/1/12/%d/%d", i, i*7)
		oa, ob := a.Owner(k), b.Owner(k)
		if oa != ob {
			t.Fatalf("nodes disagree on the owner of %s: %s vs %s", k, oa, ob)
		}
		owners[oa]++
		_, remote := a.PickPeer(k)
		if remote != (oa != "http://a:1") {
			t.Fatalf("PickPeer(%s) remote = %v, owner %s", k, remote, oa)
		}
	}
	for o, n := range owners {
		if n < 500 {
			t.Errorf("owner %s has %d of 3000 keys: uneven ring", o, n)
		}
	}
	if got := a.Peers(); len(got) != 3 {
		t.Errorf("Peers() = %v", got)
	}
}

func TestHTTPRoundTrip(t *testing.T) {
	server := New(Options{Self: "http://server", Token: "s3cret"})
	h := server.Handler(func(ctx context.Context, key string) ([]byte, error) {
		if key == "fail" {
			return nil, errors.New("boom")
		}
		return []byte("value of " + key), nil
	})
	ts := httptest.NewServer(h)
	defer ts.Close()

	client := New(Options{Self: "http://client", Token: "s3cret"})
	client.Set(ts.URL)
	g := &getter{pool: client, base: ts.URL + "/_peers/"}
	var out pb.GetResponse
	group, key := "g", "mvt/abc/1/2/3/4 with/slashes?"
	ctx := context.Background()
	if err := g.Get(ctx, &pb.GetRequest{Group: &group, Key: &key}, &out); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if string(out.Value) != "value of "+key {
		t.Errorf("got %q", out.Value)
	}
	fail := "fail"
	if err := g.Get(ctx, &pb.GetRequest{Group: &group, Key: &fail}, &out); err == nil {
		t.Errorf("failing fill succeeded")
	}
	// Without the token: refused.
	res, err := http.Get(ts.URL + "/_peers/g/k")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("no token: %d, want 403", res.StatusCode)
	}
	var _ groupcache.ProtoGetter = g
}

func TestResolve(t *testing.T) {
	got, err := Resolve(context.Background(), nil, "http", "localhost", "8091")
	if err != nil {
		t.Skipf("no resolver for localhost here: %v", err)
	}
	found := false
	for _, u := range got {
		if u == "http://127.0.0.1:8091" || u == "http://[::1]:8091" {
			found = true
		}
	}
	if !found {
		t.Errorf("Resolve(localhost) = %v", got)
	}
}
