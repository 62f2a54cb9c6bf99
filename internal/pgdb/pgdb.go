// Package pgdb holds what every part of Meridian needs from PostgreSQL: a
// pgx pool built from a URL with sane limits and a logging tracer, the
// versioned metadata schema embedded in the binary with a Migrate that is
// safe to run twice and concurrently, and helpers to branch on SQLSTATE.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolConfig tunes a pool. Zero fields take the defaults given.
type PoolConfig struct {
	// MaxConns caps open connections. Default: 10.
	MaxConns int32 `json:"max_conns,omitempty"`
	// ConnectTimeout bounds connection attempts. Default: 5s.
	ConnectTimeout time.Duration `json:"-"`
	// ApplicationName shows in pg_stat_activity. Default: "meridian".
	ApplicationName string `json:"-"`
	// SlowQuery logs queries slower than this at warn level. Default: 1s;
	// negative disables.
	SlowQuery time.Duration `json:"-"`
	// ClientCheckInterval, when positive, is the sessions'
	// client_connection_check_interval (ClientCheck). Zero: off.
	ClientCheckInterval time.Duration `json:"-"`
}

// ErrBadURL is returned for a database URL that cannot be parsed.
var ErrBadURL = errors.New("pgdb: bad database URL")

// NewPool opens a pool on dbURL and checks that the server answers, so that
// an unreachable database fails startup with a clear error instead of at
// the first request. Errors never contain the password.
func NewPool(ctx context.Context, dbURL string, pc PoolConfig, log *slog.Logger) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("%w %s", ErrBadURL, Redact(dbURL))
	}
	if pc.MaxConns == 0 {
		pc.MaxConns = 10
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = 5 * time.Second
	}
	if pc.ApplicationName == "" {
		pc.ApplicationName = "meridian"
	}
	if pc.SlowQuery == 0 {
		pc.SlowQuery = time.Second
	}
	cfg.MaxConns = pc.MaxConns
	cfg.ConnConfig.ConnectTimeout = pc.ConnectTimeout
	cfg.ConnConfig.RuntimeParams["application_name"] = pc.ApplicationName
	if log != nil && pc.SlowQuery > 0 {
		cfg.ConnConfig.Tracer = &tracer{log: log, slow: pc.SlowQuery}
	}
	if pc.ClientCheckInterval > 0 {
		cfg.AfterConnect = ClientCheck(pc.ClientCheckInterval, cfg.AfterConnect, log)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", Redact(dbURL), err)
	}
	pctx, cancel := context.WithTimeout(ctx, pc.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to %s: %w", Redact(dbURL), err)
	}
	return pool, nil
}

// Redact returns dbURL with any password replaced by "xxxxx".
func Redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.Host == "" {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// IsUniqueViolation reports whether err is a unique_violation (23505).
func IsUniqueViolation(err error) bool { return hasCode(err, "23505") }

// IsUndefinedTable reports whether err is an undefined_table (42P01).
func IsUndefinedTable(err error) bool { return hasCode(err, "42P01") }

// IsQueryCanceled reports whether err is query_canceled (57014), which is
// what statement_timeout and cancellation produce.
func IsQueryCanceled(err error) bool { return hasCode(err, "57014") }

func hasCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

type tracer struct {
	log  *slog.Logger
	slow time.Duration
}

type traceKey struct{}

type traceData struct {
	start time.Time
	sql   string
}

func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceData{start: time.Now(), sql: d.SQL})
}

func (t *tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	td, ok := ctx.Value(traceKey{}).(traceData)
	if !ok {
		return
	}
	if el := time.Since(td.start); el > t.slow {
		sql := td.sql
		if len(sql) > 300 {
			sql = sql[:300] + "…"
		}
		t.log.LogAttrs(ctx, slog.LevelWarn, "slow query", slog.Duration("elapsed", el), slog.String("sql", sql), slog.Any("err", d.Err))
	}
}
