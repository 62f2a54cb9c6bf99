package lds

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Services whose use is counted.
const (
	ServiceGeocoding = "geocoding"
	ServiceRouting   = "routing"
	ServiceIsolines  = "isolines"
)

// services lists them in the order stats reports them.
var services = []string{ServiceGeocoding, ServiceRouting, ServiceIsolines}

// errQuota: the organization's monthly quota for a service is spent.
type errQuota struct {
	service     string
	quota, used int64
	asked       int64
}

func (e errQuota) Error() string {
	return fmt.Sprintf("monthly %s quota exhausted: %d of %d used this month, this request needs %d", e.service, e.used, e.quota, e.asked)
}

// quotas counts usage in the metadata database (lds_usage, lds_quotas).
type quotas struct {
	meta     *pgxpool.Pool
	defaults map[string]int64
	now      func() time.Time
}

func (q *quotas) month() time.Time {
	t := q.now().UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// limit is org's monthly quota for service.
func (q *quotas) limit(ctx context.Context, org, service string) (int64, error) {
	var v int64
	err := q.meta.QueryRow(ctx, "SELECT monthly_quota FROM lds_quotas WHERE org_id = $1 AND service = $2", org, service).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return q.defaults[service], nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading quota: %w", err)
	}
	return v, nil
}

// charge counts n uses of service by org, or returns errQuota (and
// counts nothing) when they do not fit in what is left this month.
func (q *quotas) charge(ctx context.Context, org, service string, n int64) error {
	limit, err := q.limit(ctx, org, service)
	if err != nil {
		return err
	}
	// The count commits without waiting for its WAL flush: a crash may
	// forget the last fraction of a second of use, which a monthly quota
	// tolerates, and a call does not wait for a disk flush.
	tx, err := q.meta.Begin(ctx)
	if err != nil {
		return fmt.Errorf("counting %s use: %w", service, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit TO off"); err != nil {
		return fmt.Errorf("counting %s use: %w", service, err)
	}
	var used int64
	err = tx.QueryRow(ctx, `INSERT INTO lds_usage AS u (org_id, service, month, used)
		SELECT $1::text, $2::text, $3::date, $4::bigint WHERE $4::bigint <= $5::bigint
		ON CONFLICT (org_id, service, month) DO UPDATE SET used = u.used + EXCLUDED.used
		WHERE u.used + EXCLUDED.used <= $5::bigint
		RETURNING used`, org, service, q.month(), n, limit).Scan(&used)
	if errors.Is(err, pgx.ErrNoRows) {
		cur, _ := q.used(ctx, org, service)
		return errQuota{service: service, quota: limit, used: cur, asked: n}
	}
	if err != nil {
		return fmt.Errorf("counting %s use: %w", service, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("counting %s use: %w", service, err)
	}
	return nil
}

func (q *quotas) used(ctx context.Context, org, service string) (int64, error) {
	var used int64
	err := q.meta.QueryRow(ctx, "SELECT used FROM lds_usage WHERE org_id = $1 AND service = $2 AND month = $3",
		org, service, q.month()).Scan(&used)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading usage: %w", err)
	}
	return used, nil
}
