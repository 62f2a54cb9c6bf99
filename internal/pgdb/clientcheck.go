package pgdb

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ClientCheck returns an AfterConnect hook that sets the new session's
// client_connection_check_interval to d, then runs next (if any).
//
// PostgreSQL learns that a client went away only when it reads or writes
// its socket, or every client_connection_check_interval while a query
// runs. pgx ends a query whose context is cancelled by closing the
// connection after a cancel request, and a cancel request that reaches
// the server between two protocol messages (the statement not started
// yet) is dropped: without the check, that query runs on to its
// statement_timeout for nobody.
//
// The setting exists from PostgreSQL 14; the hook skips older servers,
// and a server that cannot poll its sockets refuses it (logged at debug
// level on log, when not nil): the session works as before.
func ClientCheck(d time.Duration, next func(context.Context, *pgx.Conn) error, log *slog.Logger) func(context.Context, *pgx.Conn) error {
	set := "SET client_connection_check_interval = " + strconv.FormatInt(max(d.Milliseconds(), 1), 10)
	return func(ctx context.Context, conn *pgx.Conn) error {
		if serverMajor(conn.PgConn()) >= 14 {
			// Simple protocol, one round trip.
			if err := conn.PgConn().Exec(ctx, set).Close(); err != nil {
				if conn.PgConn().IsClosed() {
					return fmt.Errorf("setting client_connection_check_interval: %w", err)
				}
				if log != nil {
					log.LogAttrs(ctx, slog.LevelDebug, "client_connection_check_interval refused", slog.Any("err", err))
				}
			}
		}
		if next != nil {
			return next(ctx, conn)
		}
		return nil
	}
}

// serverMajor returns the major version of c's server (15 for
// "15.8 (Debian 15.8-1)"), 0 when it does not say.
func serverMajor(c *pgconn.PgConn) int {
	v := c.ParameterStatus("server_version")
	n := 0
	for i := 0; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		n = n*10 + int(v[i]-'0')
	}
	return n
}
