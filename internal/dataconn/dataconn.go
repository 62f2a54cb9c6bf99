// Package dataconn is the registry of data-warehouse connections: the
// databases where users' data lives and user SQL runs (as opposed to the
// metadata database). Store keeps them in the connections table with
// their settings (credentials included) sealed by the master
// secret.Keyring; Pools opens one pgx pool per connection on demand.
//
// Credentials never leave the package in clear except through Get (for
// opening a pool): List returns redacted connections, and Connection's
// String and LogValue redact the URL.
package dataconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/secret"
)

// KindPostgres is the only kind of connection so far (PostgreSQL with
// PostGIS).
const KindPostgres = "postgres"

// Errors returned by Store and Pools.
var (
	// ErrNotFound: no connection with this name.
	ErrNotFound = errors.New("dataconn: connection not found")
	// ErrExists: a connection with this name already exists (possibly in
	// another organization: names are global).
	ErrExists = errors.New("dataconn: connection already exists")
	// ErrInvalid: the connection's name, kind, URL or options are invalid.
	ErrInvalid = errors.New("dataconn: invalid connection")
	// ErrClosed: Pools was closed.
	ErrClosed = errors.New("dataconn: pools closed")
)

// Options tune the pool opened for a connection. Zero fields take the
// PoolsConfig defaults.
type Options struct {
	// MaxConns caps the connection's pool. Default: PoolsConfig.MaxConns.
	MaxConns int32
	// StatementTimeout is set as statement_timeout on every session.
	// Zero: PoolsConfig.StatementTimeout; negative: no timeout.
	StatementTimeout time.Duration
	// ReadOnly sets default_transaction_read_only, so sessions cannot
	// write unless a transaction asks for READ WRITE explicitly. Use a
	// database role without write privileges for a hard guarantee.
	ReadOnly bool
}

// Connection is one data connection.
type Connection struct {
	// ID is set by the store.
	ID string
	// Org is the owning organization's ID. Default: "default".
	Org string
	// Name identifies the connection in API paths and grants:
	// [A-Za-z0-9][A-Za-z0-9_-]{0,62}, unique across organizations.
	Name string
	// Kind is the database kind. Default and only value: "postgres".
	Kind string
	// URL is a postgres:// or postgresql:// URL with credentials. Secret:
	// stored sealed, redacted by Redacted, String and LogValue.
	URL string
	// Options tune the connection's pool.
	Options Options
	// Owner is the id of the user who made it ("" for the CLI's).
	Owner string
	// Privacy is "shared" (every member of the organization may use it,
	// the default) or "private" (only its owner).
	Privacy string
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt, UpdatedAt time.Time
	// OpenErr is set by List on a connection whose sealed settings could
	// not be opened (its master key left the keyring); URL is then empty.
	OpenErr error
}

// Redacted returns a copy of c with the password in URL (userinfo and
// password/sslpassword query parameters) replaced by "xxxxx", for
// display.
func (c Connection) Redacted() Connection {
	c.URL = RedactURL(c.URL)
	return c
}

// String describes c without credentials.
func (c Connection) String() string {
	return fmt.Sprintf("dataconn.Connection{Name: %s, Kind: %s, URL: %s}", c.Name, c.Kind, RedactURL(c.URL))
}

// GoString is String, so that %#v does not print credentials either.
func (c Connection) GoString() string { return c.String() }

// LogValue logs c without credentials.
func (c Connection) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", c.Name), slog.String("kind", c.Kind), slog.String("url", RedactURL(c.URL)))
}

// RedactURL returns u with its password, if any, replaced by "xxxxx" in
// the userinfo and in password and sslpassword query parameters. A URL
// that does not parse is replaced entirely.
func RedactURL(u string) string {
	if u == "" {
		return ""
	}
	pu, err := url.Parse(u)
	if err != nil {
		return "(unparseable URL)"
	}
	if pu.User != nil {
		if _, has := pu.User.Password(); has {
			pu.User = url.UserPassword(pu.User.Username(), "xxxxx")
		}
	}
	if q := pu.Query(); len(q) > 0 {
		changed := false
		for k := range q {
			if lk := strings.ToLower(k); lk == "password" || lk == "sslpassword" {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if changed {
			pu.RawQuery = q.Encode()
		}
	}
	return pu.String()
}

// sealed is the JSON sealed into connections.config_enc.
type sealed struct {
	URL                string `json:"url"`
	MaxConns           int32  `json:"max_conns,omitempty"`
	StatementTimeoutMS int64  `json:"statement_timeout_ms,omitempty"`
	ReadOnly           bool   `json:"read_only,omitempty"`
}

// configAD binds a sealed config to its connection's name, so that a
// ciphertext copied to another row does not open.
func configAD(name string) []byte { return []byte("meridian connection " + name) }

// Store persists connections in the metadata database. It is safe for
// concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	keyring *secret.Keyring

	mu        sync.Mutex
	listeners []func(name string) // told after a change, for Pools
}

// New returns a Store on the metadata database, sealing settings with
// keyring.
func New(pool *pgxpool.Pool, keyring *secret.Keyring) *Store {
	return &Store{pool: pool, keyring: keyring}
}

func (s *Store) onChange(fn func(name string)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, fn)
	s.mu.Unlock()
}

func (s *Store) changed(name string) {
	s.mu.Lock()
	ls := append([]func(string){}, s.listeners...)
	s.mu.Unlock()
	for _, fn := range ls {
		fn(name)
	}
}

// Validate checks c and fills defaults (Org, Kind). Errors wrap
// ErrInvalid and never contain the password.
func Validate(c *Connection) error {
	if c.Org == "" {
		c.Org = "default"
	}
	if c.Kind == "" {
		c.Kind = KindPostgres
	}
	if c.Privacy == "" {
		c.Privacy = PrivacyShared
	}
	var errs []error
	if c.Privacy != PrivacyShared && c.Privacy != PrivacyPrivate {
		errs = append(errs, fmt.Errorf("%w: privacy %q, want %q or %q", ErrInvalid, c.Privacy, PrivacyShared, PrivacyPrivate))
	}
	if !grant.ValidConnectionName(c.Name) {
		errs = append(errs, fmt.Errorf("%w: name %q must match [A-Za-z0-9][A-Za-z0-9_-]{0,62}", ErrInvalid, c.Name))
	}
	if c.Kind != KindPostgres {
		errs = append(errs, fmt.Errorf("%w: kind %q is not supported (want %q)", ErrInvalid, c.Kind, KindPostgres))
	}
	if err := validateURL(c.URL); err != nil {
		errs = append(errs, err)
	}
	if c.Options.MaxConns < 0 || c.Options.MaxConns > 1000 {
		errs = append(errs, fmt.Errorf("%w: max conns %d out of range 0..1000", ErrInvalid, c.Options.MaxConns))
	}
	return errors.Join(errs...)
}

func validateURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("%w: URL is required", ErrInvalid)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included: not wrapped.
		return fmt.Errorf("%w: URL does not parse", ErrInvalid)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("%w: URL scheme %q, want postgres:// or postgresql://", ErrInvalid, u.Scheme)
	}
	if _, err := pgxpool.ParseConfig(raw); err != nil {
		msg := err.Error() // pgconn redacts passwords; scrub again to be sure
		if u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
		for _, k := range []string{"password", "sslpassword"} {
			if pw := u.Query().Get(k); pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
		return fmt.Errorf("%w: URL rejected by the driver: %s", ErrInvalid, msg)
	}
	return nil
}

func (s *Store) seal(c *Connection) ([]byte, string, error) {
	cfg := sealed{URL: c.URL, MaxConns: c.Options.MaxConns, ReadOnly: c.Options.ReadOnly}
	if c.Options.StatementTimeout != 0 {
		cfg.StatementTimeoutMS = c.Options.StatementTimeout.Milliseconds()
		if cfg.StatementTimeoutMS == 0 { // sub-millisecond: keep the sign
			cfg.StatementTimeoutMS = 1
			if c.Options.StatementTimeout < 0 {
				cfg.StatementTimeoutMS = -1
			}
		}
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("encoding settings: %w", err)
	}
	enc, keyID, err := s.keyring.Seal(data, configAD(c.Name))
	if err != nil {
		return nil, "", fmt.Errorf("sealing settings: %w", err)
	}
	return enc, keyID, nil
}

func (s *Store) open(c *Connection, enc []byte, keyID string) error {
	data, err := s.keyring.Open(enc, keyID, configAD(c.Name))
	if err != nil {
		return fmt.Errorf("opening settings of connection %s: %w", c.Name, err)
	}
	var cfg sealed
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("decoding settings of connection %s: %w", c.Name, err)
	}
	c.URL = cfg.URL
	c.Options = Options{
		MaxConns:         cfg.MaxConns,
		StatementTimeout: time.Duration(cfg.StatementTimeoutMS) * time.Millisecond,
		ReadOnly:         cfg.ReadOnly,
	}
	return nil
}

// Privacy values.
const (
	PrivacyShared  = "shared"
	PrivacyPrivate = "private"
)

const columns = "id, org_id, name, kind, config_enc, key_id, created_at, updated_at, coalesce(owner_id, ''), privacy"

func scan(row pgx.Row) (*Connection, []byte, string, error) {
	var c Connection
	var enc []byte
	var keyID string
	err := row.Scan(&c.ID, &c.Org, &c.Name, &c.Kind, &enc, &keyID, &c.CreatedAt, &c.UpdatedAt, &c.Owner, &c.Privacy)
	return &c, enc, keyID, err
}

// Create stores a new connection. It fails with ErrExists when the name
// is taken and ErrInvalid when c does not validate.
func (s *Store) Create(ctx context.Context, c Connection) (*Connection, error) {
	if err := Validate(&c); err != nil {
		return nil, fmt.Errorf("creating connection %s: %w", c.Name, err)
	}
	enc, keyID, err := s.seal(&c)
	if err != nil {
		return nil, fmt.Errorf("creating connection %s: %w", c.Name, err)
	}
	out, _, _, err := scan(s.pool.QueryRow(ctx, `INSERT INTO connections (org_id, name, kind, config_enc, key_id, owner_id, privacy)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7) RETURNING `+columns, c.Org, c.Name, c.Kind, enc, keyID, c.Owner, c.Privacy))
	if pgdb.IsUniqueViolation(err) {
		return nil, fmt.Errorf("creating connection %s: %w", c.Name, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("creating connection %s: %w", c.Name, err)
	}
	out.URL, out.Options = c.URL, c.Options
	s.changed(c.Name)
	return out, nil
}

// Upsert creates the connection or replaces the kind, URL and options of
// the one with the same name in the same organization, and reports
// whether it was created. A name taken by another organization is
// ErrExists. Open pools of the connection are re-opened.
func (s *Store) Upsert(ctx context.Context, c Connection) (*Connection, bool, error) {
	if err := Validate(&c); err != nil {
		return nil, false, fmt.Errorf("saving connection %s: %w", c.Name, err)
	}
	enc, keyID, err := s.seal(&c)
	if err != nil {
		return nil, false, fmt.Errorf("saving connection %s: %w", c.Name, err)
	}
	var out Connection
	var created bool
	err = s.pool.QueryRow(ctx, `INSERT INTO connections (org_id, name, kind, config_enc, key_id, owner_id, privacy)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7)
		ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, config_enc = EXCLUDED.config_enc,
			key_id = EXCLUDED.key_id, updated_at = greatest(now(), connections.updated_at + interval '1 microsecond')
		WHERE connections.org_id = EXCLUDED.org_id
		RETURNING id, org_id, name, kind, created_at, updated_at, coalesce(owner_id, ''), privacy, xmax = 0`,
		c.Org, c.Name, c.Kind, enc, keyID, c.Owner, c.Privacy).Scan(&out.ID, &out.Org, &out.Name, &out.Kind, &out.CreatedAt, &out.UpdatedAt, &out.Owner, &out.Privacy, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("saving connection %s: %w (in another organization)", c.Name, ErrExists)
	}
	if err != nil {
		return nil, false, fmt.Errorf("saving connection %s: %w", c.Name, err)
	}
	out.URL, out.Options = c.URL, c.Options
	s.changed(c.Name)
	return &out, created, nil
}

// Get returns the connection with its credentials. An error opening the
// sealed settings (master key removed from the keyring, or a different
// key under the same ID) wraps secret.ErrUnknownKeyID or secret.ErrDecrypt.
func (s *Store) Get(ctx context.Context, name string) (*Connection, error) {
	c, enc, keyID, err := scan(s.pool.QueryRow(ctx, "SELECT "+columns+" FROM connections WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("getting connection %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting connection %s: %w", name, err)
	}
	if err := s.open(c, enc, keyID); err != nil {
		return nil, fmt.Errorf("getting connection %s: %w", name, err)
	}
	return c, nil
}

// List returns org's connections by name, redacted (no password). A
// connection whose settings cannot be opened is listed with OpenErr set.
func (s *Store) List(ctx context.Context, org string) ([]Connection, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+columns+" FROM connections WHERE org_id = $1 ORDER BY name", org)
	if err != nil {
		return nil, fmt.Errorf("listing connections of %s: %w", org, err)
	}
	defer rows.Close()
	var out []Connection
	for rows.Next() {
		c, enc, keyID, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("listing connections of %s: %w", org, err)
		}
		if err := s.open(c, enc, keyID); err != nil {
			c.OpenErr = err
		}
		out = append(out, c.Redacted())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing connections of %s: %w", org, err)
	}
	return out, nil
}

// Delete removes the connection (and, by cascade, its sources, imports
// and jobs records) and closes its pools.
func (s *Store) Delete(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM connections WHERE name = $1", name)
	if err != nil {
		return fmt.Errorf("deleting connection %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("deleting connection %s: %w", name, ErrNotFound)
	}
	s.changed(name)
	return nil
}

// Versions returns every connection's updated_at by name, for Pools to
// notice changes made by other nodes.
func (s *Store) Versions(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, "SELECT name, updated_at FROM connections")
	if err != nil {
		return nil, fmt.Errorf("reading connection versions: %w", err)
	}
	out := map[string]time.Time{}
	var name string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&name, &at}, func() error {
		out[name] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading connection versions: %w", err)
	}
	return out, nil
}

// Reseal re-encrypts every connection's settings with the keyring's
// active key (after a master key rotation) and returns how many rows
// changed. Rows already sealed with the active key are left alone.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	active := s.keyring.ActiveID()
	rows, err := s.pool.Query(ctx, "SELECT name, config_enc, key_id FROM connections WHERE key_id <> $1", active)
	if err != nil {
		return 0, fmt.Errorf("resealing connections: %w", err)
	}
	type row struct {
		name, keyID string
		enc         []byte
	}
	var todo []row
	var r row
	if _, err := pgx.ForEachRow(rows, []any{&r.name, &r.enc, &r.keyID}, func() error {
		todo = append(todo, row{r.name, r.keyID, append([]byte(nil), r.enc...)})
		return nil
	}); err != nil {
		return 0, fmt.Errorf("resealing connections: %w", err)
	}
	n := 0
	for _, r := range todo {
		enc, keyID, err := s.keyring.Reseal(r.enc, r.keyID, configAD(r.name))
		if err != nil {
			return n, fmt.Errorf("resealing connection %s: %w", r.name, err)
		}
		// Settings are unchanged: updated_at stays, pools stay open.
		tag, err := s.pool.Exec(ctx, "UPDATE connections SET config_enc = $1, key_id = $2 WHERE name = $3 AND key_id = $4", enc, keyID, r.name, r.keyID)
		if err != nil {
			return n, fmt.Errorf("resealing connection %s: %w", r.name, err)
		}
		n += int(tag.RowsAffected())
	}
	return n, nil
}
