package tokenstore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
)

// recorder is a Publisher that keeps what it is given (the broker drivers
// are tested on their own; here only the message contract matters).
type recorder struct {
	mu   sync.Mutex
	msgs []broker.Message
	err  error
}

func (r *recorder) Publish(_ context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return "", r.err
	}
	id := fmt.Sprint(len(r.msgs) + 1)
	r.msgs = append(r.msgs, broker.Message{ID: id, Topic: topic, Data: bytes.Clone(data), Attributes: attrs, PublishedAt: time.Now(), Attempt: 1})
	return id, nil
}

func (r *recorder) last(t *testing.T) *broker.Message {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.msgs) == 0 {
		t.Fatal("nothing published")
	}
	m := r.msgs[len(r.msgs)-1]
	return &m
}

type env struct {
	master  string // m1's base64 key
	db      *pgtest.DB
	keyring *secret.Keyring
	pub     *recorder
	store   *Store
}

func setup(t *testing.T) *env {
	t.Helper()
	db := pgtest.Meta(t)
	master := secret.GenerateKey()
	kr, err := secret.ParseKeyring("m1:" + master)
	if err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	return &env{master: master, db: db, keyring: kr, pub: pub, store: New(db.Pool, kr, pub)}
}

// node is one edge/tiles node: its own Verifier kept by a Watcher on a
// Store without keyring or publisher.
func (e *env) node(t *testing.T, cfg WatcherConfig) *Watcher {
	t.Helper()
	v := grant.NewVerifier(nil, nil, grant.VerifierConfig{})
	w := NewWatcher(New(e.db.Pool, nil, nil), v, cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err := w.Reload(t.Context()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	return w
}

func spec() Spec {
	return Spec{
		Owner:     "user-1",
		Name:      "stores-app",
		Grants:    []grant.Grant{{Connection: "pg", Source: "public.stores"}, {Connection: "pg", Source: "SELECT * FROM public.shops"}},
		APIs:      []grant.API{grant.APIMaps, grant.APISQL},
		Referers:  []string{"https://app.example.com"},
		ExpiresAt: time.Now().Add(time.Hour),
	}
}

func (e *env) create(t *testing.T, s Spec) (string, *Token) {
	t.Helper()
	tok, meta, err := e.store.Create(t.Context(), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return tok, meta
}

func TestEnsureSigningKeyConcurrent(t *testing.T) {
	e := setup(t)
	const n = 8
	kids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kids[i], errs[i] = New(e.db.Pool, e.keyring, nil).EnsureSigningKey(t.Context())
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("EnsureSigningKey %d: %v", i, errs[i])
		}
		if kids[i] != kids[0] {
			t.Errorf("EnsureSigningKey %d = %q, want %q (same key everywhere)", i, kids[i], kids[0])
		}
	}
	var count int
	if err := e.db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM signing_keys").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Errorf("signing_keys has %d rows, want 1", count)
	}
	again, err := e.store.EnsureSigningKey(t.Context())
	if err != nil || again != kids[0] {
		t.Errorf("EnsureSigningKey again = %q, %v; want %q", again, err, kids[0])
	}
}

func TestCreateAndVerify(t *testing.T) {
	e := setup(t)
	sp := spec()
	tok, meta := e.create(t, sp)
	if !strings.HasPrefix(tok, "eyJ") || strings.Count(tok, ".") != 2 {
		t.Errorf("token %q is not a compact JWS", tok)
	}
	if meta.ID == "" || meta.KeyID == "" || meta.Hint != tok[len(tok)-8:] || meta.Org != "default" {
		t.Errorf("metadata = %+v", meta)
	}

	w := e.node(t, WatcherConfig{})
	c, err := w.Verify(t.Context(), tok, time.Now())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.ID != meta.ID || c.Subject != "user-1" || c.Org != "default" || c.ExpiresAt != sp.ExpiresAt.Unix() {
		t.Errorf("claims = %+v, want jti %s, sub user-1, exp %d", c, meta.ID, sp.ExpiresAt.Unix())
	}
	if err := c.Allow(grant.APIMaps, "pg", "stores"); err != nil {
		t.Errorf("Allow(maps, pg, stores) = %v", err)
	}
	if err := c.Allow(grant.APIMaps, "pg", "public.secrets"); !errors.Is(err, grant.ErrNoGrant) {
		t.Errorf("Allow(maps, pg, public.secrets) = %v, want ErrNoGrant", err)
	}
	if err := c.AllowQuery(grant.APISQL, "pg", "SELECT *\n FROM public.shops"); err != nil {
		t.Errorf("AllowQuery = %v", err)
	}
	if err := c.Allow(grant.APIImports, "pg", "stores"); !errors.Is(err, grant.ErrAPINotAllowed) {
		t.Errorf("Allow(imports) = %v, want ErrAPINotAllowed", err)
	}
	if err := c.CheckReferer("https://evil.example"); !errors.Is(err, grant.ErrReferer) {
		t.Errorf("CheckReferer(evil) = %v, want ErrReferer", err)
	}

	got, err := e.store.Get(t.Context(), meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpiresAt.Equal(meta.ExpiresAt) || !got.CreatedAt.Equal(meta.CreatedAt) || got.Revoked() ||
		fmt.Sprint(got.ID, got.Org, got.Owner, got.Name, got.KeyID, got.Grants, got.APIs, got.Referers, got.Hint) !=
			fmt.Sprint(meta.ID, meta.Org, meta.Owner, meta.Name, meta.KeyID, meta.Grants, meta.APIs, meta.Referers, meta.Hint) {
		t.Errorf("Get = %+v, want %+v", got, meta)
	}
	if byTok, err := e.store.GetByToken(t.Context(), tok); err != nil || byTok.ID != meta.ID {
		t.Errorf("GetByToken = %v, %v; want ID %s", byTok, err, meta.ID)
	}
	if _, err := e.store.GetByToken(t.Context(), tok+"x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetByToken(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := e.store.Get(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) err = %v, want ErrNotFound", err)
	}
	again, err := e.store.TokenString(t.Context(), meta.ID)
	if err != nil || again != tok {
		t.Errorf("TokenString = %q, %v; want the token Create returned", again, err)
	}

	// A never-expiring token, and List.
	sp2 := spec()
	sp2.ExpiresAt = time.Time{}
	sp2.Referers = nil
	tok2, meta2 := e.create(t, sp2)
	c2, err := w.Verify(t.Context(), tok2, time.Now().Add(100*365*24*time.Hour))
	if err != nil || c2.ExpiresAt != 0 {
		t.Errorf("never-expiring token: claims %+v, err %v", c2, err)
	}
	list, err := e.store.List(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("List = %d tokens, want 2", len(list))
	}
	ids := map[string]bool{list[0].ID: true, list[1].ID: true}
	if !ids[meta.ID] || !ids[meta2.ID] || !list[1].ExpiresAt.IsZero() && !list[0].ExpiresAt.IsZero() {
		t.Errorf("List = %+v", list)
	}
	if other, err := e.store.List(t.Context(), "other-org"); err != nil || len(other) != 0 {
		t.Errorf("List(other-org) = %v, %v; want none", other, err)
	}

	// The token string is not stored anywhere.
	var found bool
	err = e.db.Pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM tokens t WHERE strpos(t::text, $1) > 0)", tok[strings.LastIndexByte(tok, '.')+1:]).Scan(&found)
	if err != nil || found {
		t.Errorf("token signature found in the tokens table (%v, %v)", found, err)
	}
}

func TestCreateValidation(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"no owner", func(s *Spec) { s.Owner = "" }, "owner is required"},
		{"no grants", func(s *Spec) { s.Grants = nil }, "at least one grant"},
		{"bad connection name", func(s *Spec) { s.Grants[0].Connection = "no spaces" }, "connection name"},
		{"unknown api", func(s *Spec) { s.APIs = []grant.API{"tiles"} }, "unknown API"},
		{"no apis", func(s *Spec) { s.APIs = nil }, "at least one API"},
		{"expired", func(s *Spec) { s.ExpiresAt = time.Now().Add(-time.Minute) }, "not in the future"},
		{"bad referer", func(s *Spec) { s.Referers = []string{"a b"} }, "referer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec()
			tt.mod(&s)
			_, _, err := e.store.Create(t.Context(), s)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Create err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	var n int
	e.db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM tokens").Scan(&n)
	if n != 0 {
		t.Errorf("%d tokens stored after invalid creates, want 0", n)
	}
}

func TestRevoke(t *testing.T) {
	e := setup(t)
	tok, meta := e.create(t, spec())
	tok2, _ := e.create(t, spec())
	nodeA := e.node(t, WatcherConfig{})
	nodeB := e.node(t, WatcherConfig{})
	for _, w := range []*Watcher{nodeA, nodeB} {
		if _, err := w.Verify(t.Context(), tok, time.Now()); err != nil { // now cached
			t.Fatalf("Verify before revoke: %v", err)
		}
	}

	if err := e.store.Revoke(t.Context(), meta.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	m := e.pub.last(t)
	var rm RevocationMessage
	if err := json.Unmarshal(m.Data, &rm); err != nil || m.Topic != broker.TopicTokenRevocations || rm.JTI != meta.ID || rm.Exp != meta.ExpiresAt.Unix() {
		t.Fatalf("published %s on %q (%v), want {jti:%s, exp:%d} on %q", m.Data, m.Topic, err, meta.ID, meta.ExpiresAt.Unix(), broker.TopicTokenRevocations)
	}
	got, err := e.store.Get(t.Context(), meta.ID)
	if err != nil || !got.Revoked() {
		t.Fatalf("Get after revoke = %+v, %v; want revoked", got, err)
	}

	// Node A gets the message.
	if err := nodeA.HandleRevocation(t.Context(), m); err != nil {
		t.Fatalf("HandleRevocation: %v", err)
	}
	if _, err := nodeA.Verify(t.Context(), tok, time.Now()); !errors.Is(err, grant.ErrRevoked) {
		t.Errorf("node A Verify after message = %v, want ErrRevoked", err)
	}
	if err := nodeA.HandleRevocation(t.Context(), m); err != nil { // redelivery
		t.Errorf("HandleRevocation redelivered: %v", err)
	}
	if _, err := nodeA.Verify(t.Context(), tok2, time.Now()); err != nil {
		t.Errorf("node A other token = %v, want valid", err)
	}

	// Node B missed it: still cached as valid until its periodic reload.
	if _, err := nodeB.Verify(t.Context(), tok, time.Now()); err != nil {
		t.Fatalf("node B before reload = %v, want still valid", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	nodeB.cfg.Interval = 20 * time.Millisecond
	go func() { done <- nodeB.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := nodeB.Verify(t.Context(), tok, time.Now())
		if errors.Is(err, grant.ErrRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B Verify after periodic reloads = %v, want ErrRevoked", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}

	// Revoking again is idempotent and publishes again.
	n := len(e.pub.msgs)
	if err := e.store.Revoke(t.Context(), meta.ID); err != nil {
		t.Errorf("second Revoke: %v", err)
	}
	if len(e.pub.msgs) != n+1 {
		t.Errorf("second Revoke published %d messages, want 1", len(e.pub.msgs)-n)
	}
	again, _ := e.store.Get(t.Context(), meta.ID)
	if !again.RevokedAt.Equal(got.RevokedAt) {
		t.Errorf("second Revoke moved revoked_at from %v to %v", got.RevokedAt, again.RevokedAt)
	}
	if err := e.store.Revoke(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke(unknown) = %v, want ErrNotFound", err)
	}

	revs, err := e.store.Revocations(t.Context())
	if err != nil || len(revs) != 1 || !revs[meta.ID].Equal(meta.ExpiresAt.Truncate(time.Second)) {
		t.Errorf("Revocations = %v, %v; want {%s: %v}", revs, err, meta.ID, meta.ExpiresAt)
	}
	// Expired revoked tokens leave the list.
	if _, err := e.db.Pool.Exec(t.Context(), "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1", meta.ID); err != nil {
		t.Fatal(err)
	}
	if revs, err := e.store.Revocations(t.Context()); err != nil || len(revs) != 0 {
		t.Errorf("Revocations after expiry = %v, %v; want none", revs, err)
	}
}

func TestRevokePublishFailure(t *testing.T) {
	e := setup(t)
	tok, meta := e.create(t, spec())
	w := e.node(t, WatcherConfig{})
	if _, err := w.Verify(t.Context(), tok, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.pub.err = errors.New("broker down")
	err := e.store.Revoke(t.Context(), meta.ID)
	if !errors.Is(err, ErrPublish) || !strings.Contains(err.Error(), "broker down") {
		t.Fatalf("Revoke with failing publisher = %v, want ErrPublish wrapping the cause", err)
	}
	if got, err := e.store.Get(t.Context(), meta.ID); err != nil || !got.Revoked() {
		t.Fatalf("revocation not kept after publish failure: %+v, %v", got, err)
	}
	if err := w.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Verify(t.Context(), tok, time.Now()); !errors.Is(err, grant.ErrRevoked) {
		t.Errorf("Verify after reload = %v, want ErrRevoked", err)
	}
	if err := New(e.db.Pool, e.keyring, nil).Revoke(t.Context(), meta.ID); !errors.Is(err, ErrPublish) {
		t.Errorf("Revoke without publisher = %v, want ErrPublish", err)
	}
}

func TestRotation(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	now := time.Now()
	old, oldMeta := e.create(t, spec())
	w := e.node(t, WatcherConfig{KeyReloadInterval: time.Millisecond})

	newKid, err := e.store.RotateKey(ctx)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if newKid == oldMeta.KeyID {
		t.Fatalf("RotateKey kept kid %s", newKid)
	}
	if kid, err := e.store.EnsureSigningKey(ctx); err != nil || kid != newKid {
		t.Errorf("EnsureSigningKey after rotation = %q, %v; want %q", kid, err, newKid)
	}
	fresh, freshMeta := e.create(t, spec())
	if freshMeta.KeyID != newKid {
		t.Errorf("new token kid = %s, want %s", freshMeta.KeyID, newKid)
	}

	// The node has not reloaded: the unknown kid triggers a key reload.
	if _, err := w.Verifier().Verify(fresh, now); !errors.Is(err, grant.ErrUnknownKey) {
		t.Fatalf("plain Verifier with stale keys = %v, want ErrUnknownKey", err)
	}
	if _, err := w.Verify(ctx, fresh, now); err != nil {
		t.Errorf("Watcher.Verify new-key token = %v, want valid after key reload", err)
	}
	if _, err := w.Verify(ctx, old, now); err != nil {
		t.Errorf("old-key token after rotation = %v, want valid", err)
	}
	if _, err := w.Verify(ctx, old, oldMeta.ExpiresAt.Add(time.Second)); !errors.Is(err, grant.ErrExpired) {
		t.Errorf("old-key token after its expiry = %v, want ErrExpired", err)
	}
	keys, err := e.store.PublicKeys(ctx)
	if err != nil || len(keys) != 2 || keys[oldMeta.KeyID] == nil || keys[newKid] == nil {
		t.Errorf("PublicKeys = %v, %v; want old and new", keys, err)
	}

	// The old key stays while its token lives.
	if pruned, err := e.store.PruneKeys(ctx, 0); err != nil || len(pruned) != 0 {
		t.Errorf("PruneKeys with a live old token = %v, %v; want none", pruned, err)
	}
	if _, err := e.db.Pool.Exec(ctx, "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1", oldMeta.ID); err != nil {
		t.Fatal(err)
	}
	if pruned, err := e.store.PruneKeys(ctx, time.Hour); err != nil || len(pruned) != 0 {
		t.Errorf("PruneKeys(minAge 1h) right after rotation = %v, %v; want none", pruned, err)
	}
	pruned, err := e.store.PruneKeys(ctx, 0)
	if err != nil || len(pruned) != 1 || pruned[0] != oldMeta.KeyID {
		t.Fatalf("PruneKeys after the old token expired = %v, %v; want [%s]", pruned, err, oldMeta.KeyID)
	}
	if err := w.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Verify(ctx, old, now); !errors.Is(err, grant.ErrUnknownKey) {
		t.Errorf("token of a pruned key = %v, want ErrUnknownKey", err)
	}
	if _, err := e.store.TokenString(ctx, oldMeta.ID); !errors.Is(err, ErrKeyGone) {
		t.Errorf("TokenString of a pruned key's token = %v, want ErrKeyGone", err)
	}
	if _, err := w.Verify(ctx, fresh, now); err != nil {
		t.Errorf("new token after prune = %v", err)
	}

	// A never-expiring token pins its key for good.
	sp := spec()
	sp.ExpiresAt = time.Time{}
	_, pinned := e.create(t, sp)
	if _, err := e.store.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	if pruned, err := e.store.PruneKeys(ctx, 0); err != nil || len(pruned) != 0 {
		t.Errorf("PruneKeys with a never-expiring token on %s = %v, %v; want none", pinned.KeyID, pruned, err)
	}
}

func TestWrongKeyTokens(t *testing.T) {
	e := setup(t)
	_, meta := e.create(t, spec())
	w := e.node(t, WatcherConfig{KeyReloadInterval: time.Millisecond})
	stranger, err := grant.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	c := &grant.Claims{ID: "forged", Subject: "x", Grants: []grant.Grant{{Connection: "pg", Source: "*"}}, APIs: []grant.API{grant.APIMaps}}
	forged, _ := grant.Sign(c, stranger)
	if _, err := w.Verify(t.Context(), forged, time.Now()); !errors.Is(err, grant.ErrUnknownKey) {
		t.Errorf("token signed by an unknown key = %v, want ErrUnknownKey", err)
	}
	impostor, _ := grant.Sign(c, grant.SigningKey{ID: meta.KeyID, Private: stranger.Private})
	if _, err := w.Verify(t.Context(), impostor, time.Now()); !errors.Is(err, grant.ErrBadSignature) {
		t.Errorf("token signed by another key under the real kid = %v, want ErrBadSignature", err)
	}
}

func TestPrivateKeysSealed(t *testing.T) {
	e := setup(t)
	kid, err := e.store.EnsureSigningKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var pub, enc []byte
	var encID string
	err = e.db.Pool.QueryRow(t.Context(), "SELECT public_key, private_key_enc, enc_key_id FROM signing_keys WHERE kid = $1", kid).Scan(&pub, &enc, &encID)
	if err != nil {
		t.Fatal(err)
	}
	if encID != "m1" {
		t.Errorf("enc_key_id = %q, want m1", encID)
	}
	seed, err := e.keyring.Open(enc, encID, keyAD(kid))
	if err != nil {
		t.Fatalf("opening the stored private key: %v", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
		t.Fatalf("stored private key does not match the public key")
	}
	for name, secretBytes := range map[string][]byte{"seed": seed, "private key": priv, "seed prefix": seed[:8]} {
		if bytes.Contains(enc, secretBytes) {
			t.Errorf("private_key_enc contains the %s in clear", name)
		}
	}
	if _, err := e.keyring.Open(enc, encID, keyAD("other-kid")); !errors.Is(err, secret.ErrDecrypt) {
		t.Errorf("opening with another kid as AD = %v, want ErrDecrypt", err)
	}

	// A store with another master key cannot sign.
	other, _ := secret.ParseKeyring("m1:" + secret.GenerateKey())
	_, _, err = New(e.db.Pool, other, e.pub).Create(t.Context(), spec())
	if !errors.Is(err, secret.ErrDecrypt) {
		t.Errorf("Create with the wrong master key = %v, want secret.ErrDecrypt", err)
	}
}

func TestResealAfterMasterKeyRotation(t *testing.T) {
	e := setup(t)
	tok, meta := e.create(t, spec())
	newMaster := secret.GenerateKey()
	both, err := secret.ParseKeyring("m2:" + newMaster + ",m1:" + e.master)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := New(e.db.Pool, both, e.pub).Reseal(t.Context()); err != nil || n != 1 {
		t.Fatalf("Reseal = %d, %v; want 1", n, err)
	}
	onlyNew, _ := secret.ParseKeyring("m2:" + newMaster)
	s := New(e.db.Pool, onlyNew, e.pub)
	if again, err := s.TokenString(t.Context(), meta.ID); err != nil || again != tok {
		t.Errorf("TokenString with only the new master key = %q, %v; want the original token", again, err)
	}
	if n, err := s.Reseal(t.Context()); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want 0", n, err)
	}
}

func TestHandleRevocationBadMessages(t *testing.T) {
	e := setup(t)
	w := e.node(t, WatcherConfig{})
	tests := []struct {
		name string
		m    *broker.Message
	}{
		{"nil", nil},
		{"not JSON", &broker.Message{ID: "1", Topic: broker.TopicTokenRevocations, Data: []byte("x")}},
		{"no jti", &broker.Message{ID: "2", Topic: broker.TopicTokenRevocations, Data: []byte(`{"exp":5}`)}},
		{"other topic", &broker.Message{ID: "3", Topic: broker.TopicInvalidations, Data: []byte(`{"jti":"a"}`)}},
	}
	for _, tt := range tests {
		if err := w.HandleRevocation(t.Context(), tt.m); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: HandleRevocation = %v, want ErrBadMessage", tt.name, err)
		}
	}
	if n := w.Verifier().Revocations().Len(); n != 0 {
		t.Errorf("revocation list has %d entries after bad messages, want 0", n)
	}
}
