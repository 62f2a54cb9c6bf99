package importer

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

var stagingComment = regexp.MustCompile(`^meridian import (\S+) started (\S+)$`)

// CleanupStale drops the staging tables of imports that started more than
// olderThan ago and are not running now (their import lock is free): what
// a crashed import leaves when it is never retried. Import itself drops
// its own staging tables, and those of an earlier attempt with the same
// ImportID. It returns the tables dropped ("schema.table").
func CleanupStale(ctx context.Context, pool *pgxpool.Pool, olderThan time.Duration) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT n.nspname, c.relname, coalesce(obj_description(c.oid, 'pg_class'), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND c.relname LIKE '\_mi\_%'`)
	if err != nil {
		return nil, fmt.Errorf("listing staging tables: %w", err)
	}
	type cand struct {
		t  tableName
		id string
	}
	var cands []cand
	for rows.Next() {
		var schema, name, comment string
		if err := rows.Scan(&schema, &name, &comment); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing staging tables: %w", err)
		}
		m := stagingComment.FindStringSubmatch(comment)
		if m == nil {
			continue
		}
		started, err := time.Parse(time.RFC3339, m[2])
		if err != nil || time.Since(started) < olderThan {
			continue
		}
		cands = append(cands, cand{tableName{Schema: schema, Name: name}, m[1]})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing staging tables: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	defer conn.Release()
	var dropped []string
	for _, c := range cands {
		key := lockKey("import:" + c.t.Schema + ":" + c.id)
		var free bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&free); err != nil {
			return dropped, fmt.Errorf("checking import %s: %w", c.id, err)
		}
		if !free {
			continue // still running
		}
		_, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+c.t.Sanitized())
		conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key)
		if err != nil {
			return dropped, fmt.Errorf("dropping %s: %w", c.t, err)
		}
		dropped = append(dropped, c.t.String())
	}
	return dropped, nil
}
