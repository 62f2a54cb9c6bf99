package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// testNode opens a node on the test database the way `meridian up` does,
// with its token watcher and revocation subscription running.
func testNode(t *testing.T, ctx context.Context, dbURL, key, name string) *node {
	t.Helper()
	cfg := &Config{DatabaseURL: dbURL, SecretKey: key, Node: name}
	cfg.setDefaults()
	nd, err := openNode(ctx, cfg, "test", needs{db: true, secret: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nd.close)
	if err := nd.prepareTokens(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range nd.background {
		go c.run(ctx)
	}
	return nd
}

// A revocation published once reaches every node through the broker, each
// on its own subscription, within about a second.
func TestRevocationReachesEveryNode(t *testing.T) {
	db := pgtest.Meta(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := secret.GenerateKey()
	a := testNode(t, ctx, db.URL, key, "a")
	b := testNode(t, ctx, db.URL, key, "b")

	kr, _ := secret.ParseKeyring(key)
	store := tokenstore.New(db.Pool, kr, a.broker)
	tok, meta, err := store.Create(ctx, tokenstore.Spec{
		Owner: "test", Grants: []grant.Grant{{Connection: "local", Source: "public.countries"}}, APIs: []grant.API{grant.APIMaps},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*node{a, b} {
		c, err := nd.tokens.Verify(ctx, tok, time.Now())
		if err != nil {
			t.Fatalf("node %s: fresh token refused: %v", nd.cfg.Node, err)
		}
		if err := c.Allow(grant.APIMaps, "local", "public.countries"); err != nil {
			t.Errorf("node %s: granted source refused: %v", nd.cfg.Node, err)
		}
	}
	// Give both subscriptions time to exist before publishing.
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	if err := store.Revoke(ctx, meta.ID); err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*node{a, b} {
		for {
			_, err := nd.tokens.Verify(ctx, tok, time.Now())
			if errors.Is(err, grant.ErrRevoked) {
				t.Logf("node %s refused the revoked token %v after Revoke", nd.cfg.Node, time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("node %s still accepts the token 5s after revocation (err %v)", nd.cfg.Node, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
