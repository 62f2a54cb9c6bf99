package dataconn

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier is the part of a pgx pool or transaction Usable and MayUse run on.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// usableBy is the rule (PLATFORM.md §3): a user may use their
// organization's shared connections and their own private ones.
const usableBy = `org_id = $1 AND (privacy = 'shared' OR owner_id = $2)`

// Usable lists, by name, the connections user may use in org.
func Usable(ctx context.Context, db Querier, org, user string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT name FROM connections WHERE `+usableBy+` ORDER BY name`, org, user)
	if err != nil {
		return nil, fmt.Errorf("dataconn: usable connections: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("dataconn: usable connections: %w", err)
	}
	return names, nil
}

// MayUse reports whether user may use connection name of org.
func MayUse(ctx context.Context, db Querier, org, user, name string) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM connections WHERE `+usableBy+` AND name = $3)`, org, user, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("dataconn: connection %q: %w", name, err)
	}
	return ok, nil
}
