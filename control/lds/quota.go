package lds

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
//
// It is one round trip: the quota (the organization's own, else the
// default) is read by the counting statement, and the batch is one
// implicit transaction that commits without waiting for its WAL flush. A
// crash may forget the last fraction of a second of use, which a monthly
// quota tolerates; a call does not wait for a disk flush.
func (q *quotas) charge(ctx context.Context, org, service string, n int64) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	counted := b.Queue(`WITH lim AS (SELECT coalesce((SELECT monthly_quota FROM lds_quotas WHERE org_id = $1 AND service = $2), $5::bigint) AS q)
		INSERT INTO lds_usage AS u (org_id, service, month, used)
		SELECT $1::text, $2::text, $3::date, $4::bigint FROM lim WHERE $4::bigint <= lim.q
		ON CONFLICT (org_id, service, month) DO UPDATE SET used = u.used + EXCLUDED.used
		WHERE u.used + EXCLUDED.used <= (SELECT q FROM lim)
		RETURNING used`, org, service, q.month(), n, q.defaults[service])
	var used int64
	counted.QueryRow(func(row pgx.Row) error { return row.Scan(&used) })
	err := q.meta.SendBatch(ctx, b).Close()
	if errors.Is(err, pgx.ErrNoRows) {
		limit, lerr := q.limit(ctx, org, service)
		if lerr != nil {
			return lerr
		}
		cur, _ := q.used(ctx, org, service)
		return errQuota{service: service, quota: limit, used: cur, asked: n}
	}
	if err != nil {
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

// Usage is an organization's use of one service this month.
type Usage struct {
	Service string `json:"service"`
	// MonthlyQuota is what the organization may use this month.
	MonthlyQuota int64 `json:"monthlyQuota"`
	// Used is what it used this month (UTC).
	Used int64 `json:"used"`
	// Override is set when the quota is the organization's own, not the
	// configured default.
	Override bool `json:"override"`
}

// Usage reports org's quotas and use this month, per service.
func (s *Service) Usage(ctx context.Context, org string) ([]Usage, error) {
	rows, err := s.quotas.meta.Query(ctx, `SELECT service, monthly_quota FROM lds_quotas WHERE org_id = $1`, org)
	if err != nil {
		return nil, fmt.Errorf("lds: quotas of %s: %w", org, err)
	}
	own, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Service string
		Quota   int64
	}])
	if err != nil {
		return nil, fmt.Errorf("lds: quotas of %s: %w", org, err)
	}
	out := make([]Usage, 0, len(services))
	for _, svc := range services {
		u := Usage{Service: svc, MonthlyQuota: s.quotas.defaults[svc]}
		for _, o := range own {
			if o.Service == svc {
				u.MonthlyQuota, u.Override = o.Quota, true
			}
		}
		if u.Used, err = s.quotas.used(ctx, org, svc); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// ErrUnknownService: SetQuota was given a service that is not counted.
var ErrUnknownService = errors.New("unknown service (geocoding, routing or isolines)")

// SetQuota sets org's monthly quota for service; nil returns it to the
// configured default. Use counted so far this month stays.
func (s *Service) SetQuota(ctx context.Context, org, service string, monthly *int64) error {
	if !slices.Contains(services, service) {
		return fmt.Errorf("lds: quota %q: %w", service, ErrUnknownService)
	}
	var err error
	if monthly == nil {
		_, err = s.quotas.meta.Exec(ctx, `DELETE FROM lds_quotas WHERE org_id = $1 AND service = $2`, org, service)
	} else {
		_, err = s.quotas.meta.Exec(ctx, `INSERT INTO lds_quotas (org_id, service, monthly_quota) VALUES ($1, $2, $3)
			ON CONFLICT (org_id, service) DO UPDATE SET monthly_quota = EXCLUDED.monthly_quota`, org, service, *monthly)
	}
	if err != nil {
		return fmt.Errorf("lds: setting the %s quota of %s: %w", service, org, err)
	}
	return nil
}
