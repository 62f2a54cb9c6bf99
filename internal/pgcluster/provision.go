package pgcluster

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Plan names the databases and roles Provision creates. Zero name fields
// take the defaults given; the passwords are required, so that the caller
// decides where they are kept (make run keeps them under .meridian/).
type Plan struct {
	// MetaDB is the metadata database (MERIDIAN_DATABASE_URL). Default: "meridian".
	MetaDB string
	// MetaRole owns MetaDB; Meridian connects to it as this role. Default: "meridian".
	MetaRole string
	// MetaPassword is MetaRole's password, set on every run. Required.
	MetaPassword string
	// DataDB is the data database (PostGIS), reached through a data
	// connection. Default: "meridian_data".
	DataDB string
	// DataRole owns DataDB and its tables; user SQL runs as this role, which
	// cannot connect to MetaDB. Default: "meridian_data".
	DataRole string
	// DataPassword is DataRole's password, set on every run. Required.
	DataPassword string
}

// Result tells the caller how to reach what Provision made.
type Result struct {
	// MetaURL connects to MetaDB as MetaRole.
	MetaURL string
	// DataURL connects to DataDB as DataRole.
	DataURL string
	// Created lists what this run created, such as "role meridian" or
	// "database meridian_data"; empty when everything already existed.
	Created []string
}

// provisionLock serializes concurrent Provision calls on one cluster.
const provisionLock int64 = 0x6d65727072766e // "merprvn"

// scramIterations matches PostgreSQL's default scram_iterations.
const scramIterations = 4096

func (p *Plan) setDefaults() {
	if p.MetaDB == "" {
		p.MetaDB = "meridian"
	}
	if p.MetaRole == "" {
		p.MetaRole = "meridian"
	}
	if p.DataDB == "" {
		p.DataDB = "meridian_data"
	}
	if p.DataRole == "" {
		p.DataRole = "meridian_data"
	}
}

// Validate reports every problem with p (after defaults).
func (p Plan) Validate() error {
	p.setDefaults()
	var errs []error
	if p.MetaPassword == "" {
		errs = append(errs, errors.New("plan: MetaPassword is required"))
	}
	if p.DataPassword == "" {
		errs = append(errs, errors.New("plan: DataPassword is required"))
	}
	if p.MetaDB == p.DataDB {
		errs = append(errs, fmt.Errorf("plan: metadata and data databases must differ (both %q)", p.MetaDB))
	}
	if p.MetaRole == p.DataRole {
		errs = append(errs, fmt.Errorf("plan: metadata and data roles must differ (both %q)", p.MetaRole))
	}
	for _, n := range []string{p.MetaDB, p.DataDB} {
		if n == "postgres" || strings.HasPrefix(n, "template") {
			errs = append(errs, fmt.Errorf("plan: database name %q is reserved", n))
		}
	}
	return errors.Join(errs...)
}

// Provision makes, on the cluster reached by superuserURL, the metadata
// database owned by its role and the data database (with the postgis
// extension) owned by the data role, with the passwords in p. It is
// idempotent: on a rerun it only resets passwords and privileges.
// CONNECT on the metadata database is revoked from PUBLIC, so the data
// role, which runs user SQL, can neither connect to it nor read it.
// Passwords are sent as SCRAM verifiers, so they never appear in clear in
// the server's statement log.
func Provision(ctx context.Context, superuserURL string, p Plan) (Result, error) {
	p.setDefaults()
	if err := p.Validate(); err != nil {
		return Result{}, err
	}
	conn, err := pgx.Connect(ctx, superuserURL)
	if err != nil {
		return Result{}, fmt.Errorf("provisioning: connecting as superuser: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", provisionLock); err != nil {
		return Result{}, fmt.Errorf("provisioning: taking lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", provisionLock)

	var self string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&self); err != nil {
		return Result{}, fmt.Errorf("provisioning: reading current user: %w", err)
	}
	if self == p.MetaRole || self == p.DataRole {
		return Result{}, fmt.Errorf("provisioning: role %q is the superuser connecting; pick other role names", self)
	}

	var res Result
	for _, r := range []struct{ name, password string }{{p.MetaRole, p.MetaPassword}, {p.DataRole, p.DataPassword}} {
		created, err := ensureRole(ctx, conn, r.name, r.password)
		if err != nil {
			return Result{}, err
		}
		if created {
			res.Created = append(res.Created, "role "+r.name)
		}
	}
	for _, d := range []struct{ name, owner string }{{p.MetaDB, p.MetaRole}, {p.DataDB, p.DataRole}} {
		created, err := ensureDatabase(ctx, conn, d.name, d.owner)
		if err != nil {
			return Result{}, err
		}
		if created {
			res.Created = append(res.Created, "database "+d.name)
		}
	}
	meta := pgx.Identifier{p.MetaDB}.Sanitize()
	for _, q := range []string{
		"REVOKE ALL ON DATABASE " + meta + " FROM PUBLIC",
		"GRANT ALL ON DATABASE " + meta + " TO " + pgx.Identifier{p.MetaRole}.Sanitize(),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return Result{}, fmt.Errorf("provisioning: restricting database %s: %w", p.MetaDB, err)
		}
	}

	dataAdmin, err := withDatabase(superuserURL, p.DataDB)
	if err != nil {
		return Result{}, err
	}
	dc, err := pgx.Connect(ctx, dataAdmin)
	if err != nil {
		return Result{}, fmt.Errorf("provisioning: connecting to %s as superuser: %w", p.DataDB, err)
	}
	defer dc.Close(context.WithoutCancel(ctx))
	var hasPostGIS bool
	if err := dc.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')").Scan(&hasPostGIS); err != nil {
		return Result{}, fmt.Errorf("provisioning: checking postgis in %s: %w", p.DataDB, err)
	}
	if !hasPostGIS {
		if _, err := dc.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS postgis"); err != nil {
			return Result{}, fmt.Errorf("provisioning: creating extension postgis in %s: %w", p.DataDB, err)
		}
		res.Created = append(res.Created, "extension postgis")
	}

	// pgRouting (Location Data Services) needs a superuser too; created
	// when the package is installed (scripts/ensure-deps.sh installs it).
	var hasRouting, canRouting bool
	if err := dc.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgrouting'),
		EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgrouting')`).Scan(&hasRouting, &canRouting); err != nil {
		return Result{}, fmt.Errorf("provisioning: checking pgrouting in %s: %w", p.DataDB, err)
	}
	if !hasRouting && canRouting {
		if _, err := dc.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pgrouting"); err != nil {
			return Result{}, fmt.Errorf("provisioning: creating extension pgrouting in %s: %w", p.DataDB, err)
		}
		res.Created = append(res.Created, "extension pgrouting")
	}

	if res.MetaURL, err = roleURL(superuserURL, p.MetaDB, p.MetaRole, p.MetaPassword); err != nil {
		return Result{}, err
	}
	if res.DataURL, err = roleURL(superuserURL, p.DataDB, p.DataRole, p.DataPassword); err != nil {
		return Result{}, err
	}
	return res, nil
}

// RandomPassword returns a new random password: 32 URL-safe characters
// (192 bits), safe unquoted in URLs and libpq connection strings.
func RandomPassword() string {
	var b [24]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func ensureRole(ctx context.Context, conn *pgx.Conn, name, password string) (created bool, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("provisioning: looking up role %s: %w", name, err)
	}
	verb, doing := "CREATE", "creating"
	if exists {
		verb, doing = "ALTER", "altering"
	}
	// A role we manage is never privileged, even if an older one was.
	q := verb + " ROLE " + pgx.Identifier{name}.Sanitize() +
		" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD " +
		quoteLiteral(passwordVerifier(password))
	if _, err := conn.Exec(ctx, q); err != nil {
		return false, fmt.Errorf("provisioning: %s role %s: %w", doing, name, err)
	}
	return !exists, nil
}

func ensureDatabase(ctx context.Context, conn *pgx.Conn, name, owner string) (created bool, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("provisioning: looking up database %s: %w", name, err)
	}
	db, own := pgx.Identifier{name}.Sanitize(), pgx.Identifier{owner}.Sanitize()
	q := "ALTER DATABASE " + db + " OWNER TO " + own
	if !exists {
		q = "CREATE DATABASE " + db + " OWNER " + own + " TEMPLATE template0 ENCODING 'UTF8'"
	}
	if _, err := conn.Exec(ctx, q); err != nil {
		return false, fmt.Errorf("provisioning: database %s: %w", name, err)
	}
	return !exists, nil
}

// passwordVerifier returns the SCRAM-SHA-256 verifier PostgreSQL would
// store for password, so the clear text never reaches the server. Only
// printable ASCII passwords are hashed here: for others PostgreSQL's
// SASLprep normalization would have to be reproduced, so they are sent as
// they are and the server hashes them.
func passwordVerifier(password string) string {
	for i := 0; i < len(password); i++ {
		if password[i] < 0x21 || password[i] > 0x7e {
			return password
		}
	}
	var salt [16]byte
	rand.Read(salt[:])
	return scramVerifier(password, salt[:], scramIterations)
}

// scramVerifier computes a SCRAM-SHA-256 verifier (RFC 5802, RFC 7677) in
// PostgreSQL's text form: SCRAM-SHA-256$iter:salt$StoredKey:ServerKey.
func scramVerifier(password string, salt []byte, iter int) string {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		// Only FIPS-140 mode refuses these parameters; let the server hash.
		return password
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(server))
}

// quoteLiteral quotes s as an SQL string literal (for statements, such as
// CREATE ROLE, that take no bind parameters).
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// withDatabase returns rawURL pointing at database db.
func withDatabase(rawURL, db string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "", errors.New("provisioning: superuser URL must be a postgres:// URL")
	}
	u.Path = "/" + db
	u.RawPath = ""
	return u.String(), nil
}

// roleURL returns rawURL pointing at database db as role with password.
func roleURL(rawURL, db, role, password string) (string, error) {
	s, err := withDatabase(rawURL, db)
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(s)
	u.User = url.UserPassword(role, password)
	return u.String(), nil
}
