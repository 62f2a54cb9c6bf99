// Package tokenstore keeps API access tokens and their signing keys in the
// metadata database, and keeps every node's grant.Verifier current.
//
// Signing keys are Ed25519 (grant.SigningKey). The private half is stored
// sealed with the master secret.Keyring, bound to its kid. Exactly one key
// is active and signs new tokens; RotateKey makes a new one active and
// retires the old one, which keeps verifying the tokens it signed until
// PruneKeys finds none of them alive.
//
// The token string is not stored. A token row keeps the claims as columns
// (for listing) and the exact signed part of the JWS (signing_input).
// Ed25519 signatures are deterministic, so TokenString re-creates the
// byte-identical token by signing that input again: the Tokens API can
// show a token like CARTO does, while a copy of the metadata database
// without the master key holds no usable token. token_sha256 allows a
// lookup by token string.
//
// Revoke marks the row, then publishes {"jti":…,"exp":…} on
// broker.TopicTokenRevocations; each node's Watcher applies it to its
// Verifier within about a second, and reloads everything periodically as
// a backstop.
package tokenstore

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/secret"
)

// Errors returned by the Store.
var (
	// ErrNotFound: no token with this ID (or token string).
	ErrNotFound = errors.New("tokenstore: token not found")
	// ErrInvalid: the Spec cannot be issued; the message says why.
	ErrInvalid = errors.New("tokenstore: invalid token spec")
	// ErrPublish: the revocation is stored but could not be published;
	// nodes will pick it up at their next periodic reload.
	ErrPublish = errors.New("tokenstore: publishing revocation failed")
	// ErrKeyGone: the token's signing key was pruned, so the token can no
	// longer be re-created (it could not be verified either).
	ErrKeyGone = errors.New("tokenstore: signing key of this token no longer exists")
)

// rotateLockID serializes RotateKey across nodes ("tokrot" in ASCII).
const rotateLockID int64 = 0x746f6b726f74

// Publisher publishes broker messages; broker.Broker satisfies it.
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// Store persists tokens and signing keys. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	keyring *secret.Keyring
	pub     Publisher
	now     func() time.Time
}

// New returns a Store on the metadata database. keyring seals and opens
// signing keys and pub publishes revocations; nodes that only verify
// (edge, tiles: PublicKeys, Revocations, Watcher) may pass nil for both.
func New(pool *pgxpool.Pool, keyring *secret.Keyring, pub Publisher) *Store {
	return &Store{pool: pool, keyring: keyring, pub: pub, now: time.Now}
}

// Spec describes a token to create.
type Spec struct {
	// Org is the organization ID. Default: "default".
	Org string
	// Owner is the creating user's ID (the token's sub). Required.
	Owner string
	// Name is a label for display.
	Name string
	// Grants the token carries: at least one.
	Grants []grant.Grant
	// APIs the token may be used with: at least one of maps, sql,
	// imports, lds.
	APIs []grant.API
	// Referers optionally restrict browser use (grant.Claims.CheckReferer).
	Referers []string
	// ExpiresAt, if not zero, must be in the future (at second precision).
	// Zero: the token never expires.
	ExpiresAt time.Time
	// Kind is what the token is for: KindAPI (default), KindSession or KindMap.
	Kind string
}

// Token kinds (the tokens.kind column).
const (
	KindAPI     = "api"
	KindSession = "session"
	KindMap     = "map"
)

// Token is a token's metadata (never the token string: see TokenString).
type Token struct {
	ID        string // jti
	Org       string
	Owner     string
	Name      string
	KeyID     string // kid of the signing key
	Grants    []grant.Grant
	APIs      []grant.API
	Referers  []string
	ExpiresAt time.Time // zero: never
	CreatedAt time.Time
	RevokedAt time.Time // zero: not revoked
	Hint      string    // last 8 characters of the token, for display
}

// Revoked reports whether the token was revoked.
func (t *Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// Expired reports whether the token is expired at now.
func (t *Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// RevocationMessage is the payload published on
// broker.TopicTokenRevocations.
type RevocationMessage struct {
	// JTI is the revoked token's ID.
	JTI string `json:"jti"`
	// Exp is the token's expiry in Unix seconds; 0 or absent: never.
	Exp int64 `json:"exp,omitempty"`
}

func keyAD(kid string) []byte { return []byte("meridian signing key " + kid) }

// EnsureSigningKey returns the active signing key's kid, creating the key
// if there is none. Several nodes starting at once create exactly one
// (a partial unique index allows one active key; losers use the winner's).
func (s *Store) EnsureSigningKey(ctx context.Context) (string, error) {
	for range 3 {
		var kid string
		err := s.pool.QueryRow(ctx, "SELECT kid FROM signing_keys WHERE active").Scan(&kid)
		if err == nil {
			return kid, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", fmt.Errorf("reading active signing key: %w", err)
		}
		if err := s.insertKey(ctx, s.pool, "ON CONFLICT DO NOTHING"); err != nil {
			return "", fmt.Errorf("creating signing key: %w", err)
		}
	}
	return "", errors.New("creating signing key: no active key after 3 attempts")
}

// rowQuerier is a pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// insertKey generates a key and inserts it as the active one.
func (s *Store) insertKey(ctx context.Context, db rowQuerier, onConflict string) error {
	k, err := grant.NewSigningKey()
	if err != nil {
		return err
	}
	enc, encID, err := s.keyring.Seal(k.Private.Seed(), keyAD(k.ID))
	if err != nil {
		return fmt.Errorf("sealing private key: %w", err)
	}
	var n int
	err = db.QueryRow(ctx, `WITH ins AS (
		INSERT INTO signing_keys (kid, algorithm, public_key, private_key_enc, enc_key_id, active)
		VALUES ($1, $2, $3, $4, $5, true) `+onConflict+` RETURNING 1)
		SELECT count(*) FROM ins`,
		k.ID, grant.Alg, []byte(k.Public()), enc, encID).Scan(&n)
	return err
}

// RotateKey makes a new signing key active and retires the current one,
// which keeps verifying its tokens (PublicKeys still returns it). It
// returns the new kid. Nodes pick the new key up through their Watcher
// (periodic reload, or at once on the first token with an unknown kid).
func (s *Store) RotateKey(ctx context.Context) (string, error) {
	var kid string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", rotateLockID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE signing_keys SET active = false, retired_at = now() WHERE active"); err != nil {
			return err
		}
		if err := s.insertKey(ctx, tx, ""); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT kid FROM signing_keys WHERE active").Scan(&kid)
	})
	if err != nil {
		return "", fmt.Errorf("rotating signing key: %w", err)
	}
	return kid, nil
}

// PruneKeys deletes retired keys retired for longer than minAge that no
// live token uses (a token is live when neither revoked nor expired), and
// returns their kids. A key with a live token, or a never-expiring one,
// is never deleted.
func (s *Store) PruneKeys(ctx context.Context, minAge time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, `DELETE FROM signing_keys k
		WHERE NOT k.active AND k.retired_at < now() - make_interval(secs => $1)
		  AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.kid = k.kid AND t.revoked_at IS NULL
		                  AND (t.expires_at IS NULL OR t.expires_at > now()))
		RETURNING kid`, minAge.Seconds())
	if err != nil {
		return nil, fmt.Errorf("pruning signing keys: %w", err)
	}
	kids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pruning signing keys: %w", err)
	}
	return kids, nil
}

// Reseal re-encrypts the private signing keys sealed with an older
// master key under the keyring's active key (after a master key
// rotation), and returns how many it changed.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	active := s.keyring.ActiveID()
	rows, err := s.pool.Query(ctx, "SELECT kid, private_key_enc, enc_key_id FROM signing_keys WHERE enc_key_id <> $1", active)
	if err != nil {
		return 0, fmt.Errorf("resealing signing keys: %w", err)
	}
	type row struct {
		kid, encID string
		enc        []byte
	}
	var todo []row
	var r row
	if _, err := pgx.ForEachRow(rows, []any{&r.kid, &r.enc, &r.encID}, func() error {
		todo = append(todo, row{r.kid, r.encID, append([]byte(nil), r.enc...)})
		return nil
	}); err != nil {
		return 0, fmt.Errorf("resealing signing keys: %w", err)
	}
	n := 0
	for _, r := range todo {
		enc, encID, err := s.keyring.Reseal(r.enc, r.encID, keyAD(r.kid))
		if err != nil {
			return n, fmt.Errorf("resealing signing key %s: %w", r.kid, err)
		}
		tag, err := s.pool.Exec(ctx, "UPDATE signing_keys SET private_key_enc = $1, enc_key_id = $2 WHERE kid = $3 AND enc_key_id = $4", enc, encID, r.kid, r.encID)
		if err != nil {
			return n, fmt.Errorf("resealing signing key %s: %w", r.kid, err)
		}
		n += int(tag.RowsAffected())
	}
	return n, nil
}

// PublicKeys returns every stored signing key's public half by kid (the
// active one and the retired ones not yet pruned), for grant.KeySet.
func (s *Store) PublicKeys(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	rows, err := s.pool.Query(ctx, "SELECT kid, public_key FROM signing_keys WHERE algorithm = $1", grant.Alg)
	if err != nil {
		return nil, fmt.Errorf("loading public keys: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	var kid string
	var pub []byte
	_, err = pgx.ForEachRow(rows, []any{&kid, &pub}, func() error {
		keys[kid] = ed25519.PublicKey(append([]byte(nil), pub...))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading public keys: %w", err)
	}
	return keys, nil
}

// Revocations returns the revoked tokens that have not expired yet, with
// their expiry (zero: never), for grant.RevocationList.Replace.
func (s *Store) Revocations(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, expires_at FROM tokens
		WHERE revoked_at IS NOT NULL AND (expires_at IS NULL OR expires_at > now())`)
	if err != nil {
		return nil, fmt.Errorf("loading revocations: %w", err)
	}
	revs := map[string]time.Time{}
	var id string
	var exp *time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &exp}, func() error {
		revs[id] = deref(exp)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading revocations: %w", err)
	}
	return revs, nil
}

// Create validates spec, signs a token with the active key (creating one
// if needed) and stores its metadata. It returns the token string, which
// the caller hands to the user, and the metadata.
func (s *Store) Create(ctx context.Context, spec Spec) (string, *Token, error) {
	now := s.now()
	if spec.Org == "" {
		spec.Org = "default"
	}
	if spec.Kind == "" {
		spec.Kind = KindAPI
	}
	var problems []error
	if spec.Owner == "" {
		problems = append(problems, fmt.Errorf("%w: owner is required", ErrInvalid))
	}
	if !spec.ExpiresAt.IsZero() && spec.ExpiresAt.Unix() <= now.Unix() {
		problems = append(problems, fmt.Errorf("%w: expiration %s is not in the future", ErrInvalid, spec.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	c := &grant.Claims{
		ID:       newID(),
		Subject:  spec.Owner,
		Org:      spec.Org,
		IssuedAt: now.Unix(),
		Grants:   spec.Grants,
		APIs:     spec.APIs,
		Referers: spec.Referers,
	}
	if !spec.ExpiresAt.IsZero() {
		c.ExpiresAt = spec.ExpiresAt.Unix()
	}
	if err := c.Validate(); err != nil {
		problems = append(problems, fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	if len(problems) > 0 {
		return "", nil, fmt.Errorf("creating token: %w", errors.Join(problems...))
	}
	if _, err := s.EnsureSigningKey(ctx); err != nil {
		return "", nil, fmt.Errorf("creating token: %w", err)
	}

	var token string
	t := &Token{
		ID: c.ID, Org: c.Org, Owner: c.Subject, Name: spec.Name,
		Grants: c.Grants, APIs: c.APIs, Referers: c.Referers,
		ExpiresAt: c.Expiry(), CreatedAt: time.Unix(c.IssuedAt, 0),
	}
	if t.Referers == nil {
		t.Referers = []string{}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// FOR SHARE: a concurrent RotateKey waits until this token is in.
		key, err := s.loadKey(ctx, tx, "SELECT kid, private_key_enc, enc_key_id FROM signing_keys WHERE active FOR SHARE")
		if err != nil {
			return err
		}
		token, err = grant.Sign(c, key)
		if err != nil {
			return err
		}
		t.KeyID = key.ID
		t.Hint = token[len(token)-8:]
		grants, err := json.Marshal(c.Grants)
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(token))
		_, err = tx.Exec(ctx, `INSERT INTO tokens
			(id, org_id, owner, name, kid, grants, apis, referers, expires_at, created_at, signing_input, token_sha256, token_hint, kind)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			t.ID, t.Org, t.Owner, t.Name, t.KeyID, grants, apiStrings(t.APIs), t.Referers,
			nullTime(t.ExpiresAt), t.CreatedAt, grant.SigningInput(token), sum[:], t.Hint, spec.Kind)
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("creating token: %w", err)
	}
	return token, t, nil
}

// loadKey reads and opens one signing key (kid, private_key_enc,
// enc_key_id) selected by query.
func (s *Store) loadKey(ctx context.Context, db rowQuerier, query string, args ...any) (grant.SigningKey, error) {
	var kid, encID string
	var enc []byte
	if err := db.QueryRow(ctx, query, args...).Scan(&kid, &enc, &encID); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return grant.SigningKey{}, ErrKeyGone
		}
		return grant.SigningKey{}, fmt.Errorf("reading signing key: %w", err)
	}
	seed, err := s.keyring.Open(enc, encID, keyAD(kid))
	if err != nil {
		return grant.SigningKey{}, fmt.Errorf("opening signing key %s: %w", kid, err)
	}
	if len(seed) != ed25519.SeedSize {
		return grant.SigningKey{}, fmt.Errorf("opening signing key %s: seed is %d bytes", kid, len(seed))
	}
	return grant.SigningKey{ID: kid, Private: ed25519.NewKeyFromSeed(seed)}, nil
}

const tokenColumns = `id, org_id, owner, name, kid, grants, apis, referers, expires_at, created_at, revoked_at, token_hint`

func scanToken(row pgx.Row) (*Token, error) {
	var t Token
	var grants []byte
	var apis []string
	var exp, revoked *time.Time
	err := row.Scan(&t.ID, &t.Org, &t.Owner, &t.Name, &t.KeyID, &grants, &apis, &t.Referers, &exp, &t.CreatedAt, &revoked, &t.Hint)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(grants, &t.Grants); err != nil {
		return nil, fmt.Errorf("decoding grants of token %s: %w", t.ID, err)
	}
	for _, a := range apis {
		t.APIs = append(t.APIs, grant.API(a))
	}
	t.ExpiresAt, t.RevokedAt = deref(exp), deref(revoked)
	return &t, nil
}

// Get returns the metadata of token id (revoked or expired ones too).
func (s *Store) Get(ctx context.Context, id string) (*Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("getting token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting token %s: %w", id, err)
	}
	return t, nil
}

// GetByToken returns the metadata of the token whose string is token (the
// CARTO Tokens API addresses tokens by their string).
func (s *Store) GetByToken(ctx context.Context, token string) (*Token, error) {
	sum := sha256.Sum256([]byte(token))
	t, err := scanToken(s.pool.QueryRow(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE token_sha256 = $1", sum[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("getting token by string: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting token by string: %w", err)
	}
	return t, nil
}

// List returns the tokens of org, newest first, revoked and expired ones
// included (see Token.Revoked and Token.Expired).
func (s *Store) List(ctx context.Context, org string) ([]Token, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE org_id = $1 ORDER BY created_at DESC, id", org)
	if err != nil {
		return nil, fmt.Errorf("listing tokens of %s: %w", org, err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens of %s: %w", org, err)
		}
		out = append(out, *t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tokens of %s: %w", org, err)
	}
	return out, nil
}

// ListOwned returns the API tokens (kind 'api') owner made in org, newest
// first; revoked ones only when withRevoked.
func (s *Store) ListOwned(ctx context.Context, org, owner string, withRevoked bool) ([]Token, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+tokenColumns+` FROM tokens
		WHERE org_id = $1 AND owner = $2 AND kind = 'api' AND ($3 OR revoked_at IS NULL) ORDER BY created_at DESC, id`, org, owner, withRevoked)
	if err != nil {
		return nil, fmt.Errorf("listing tokens of %s: %w", owner, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Token, error) {
		t, err := scanToken(row)
		if err != nil {
			return Token{}, err
		}
		return *t, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tokens of %s: %w", owner, err)
	}
	return out, nil
}

// Rename sets token id's display name.
func (s *Store) Rename(ctx context.Context, id, name string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tokens SET name = $2 WHERE id = $1`, id, name)
	if err != nil {
		return fmt.Errorf("renaming token %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("renaming token %s: %w", id, ErrNotFound)
	}
	return nil
}

// TokenString re-creates token id's string by signing its stored signing
// input again with its key: byte-identical to what Create returned. It
// fails with ErrKeyGone when the key was pruned.
func (s *Store) TokenString(ctx context.Context, id string) (string, error) {
	var input, kid string
	err := s.pool.QueryRow(ctx, "SELECT signing_input, kid FROM tokens WHERE id = $1", id).Scan(&input, &kid)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("re-creating token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("re-creating token %s: %w", id, err)
	}
	key, err := s.loadKey(ctx, s.pool, "SELECT kid, private_key_enc, enc_key_id FROM signing_keys WHERE kid = $1", kid)
	if err != nil {
		return "", fmt.Errorf("re-creating token %s: %w", id, err)
	}
	return grant.SignInput(input, key.Private), nil
}

// Revoke marks token id revoked (idempotent: an already revoked token
// keeps its first revocation time) and publishes the revocation on
// broker.TopicTokenRevocations. When publishing fails the revocation
// stays stored and the error wraps ErrPublish: nodes apply it at their
// next periodic reload, and calling Revoke again re-publishes.
func (s *Store) Revoke(ctx context.Context, id string) error {
	var exp *time.Time
	err := s.pool.QueryRow(ctx, `UPDATE tokens SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1 RETURNING expires_at`, id).Scan(&exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("revoking token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	msg := RevocationMessage{JTI: id}
	if exp != nil {
		msg.Exp = exp.Unix()
	}
	data, _ := json.Marshal(msg)
	if s.pub == nil {
		return fmt.Errorf("revoking token %s: %w: no publisher configured", id, ErrPublish)
	}
	if _, err := s.pub.Publish(ctx, broker.TopicTokenRevocations, data, map[string]string{"jti": id}); err != nil {
		return fmt.Errorf("revoking token %s: %w: %w", id, ErrPublish, err)
	}
	return nil
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func apiStrings(apis []grant.API) []string {
	out := make([]string, len(apis))
	for i, a := range apis {
		out[i] = string(a)
	}
	return out
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
