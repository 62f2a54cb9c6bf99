package pgcluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

// uniquePlan returns a plan whose names are unique to this test and drops
// what it names when the test ends.
func uniquePlan(t *testing.T, admin string) pgcluster.Plan {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	sfx := hex.EncodeToString(b[:])
	p := pgcluster.Plan{
		MetaDB: "prov_meta_" + sfx, MetaRole: "prov_meta_" + sfx + "_owner", MetaPassword: pgcluster.RandomPassword(),
		DataDB: "prov_data_" + sfx, DataRole: "prov_data_" + sfx + "_user", DataPassword: pgcluster.RandomPassword(),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer c.Close(ctx)
		for _, q := range []string{
			"DROP DATABASE IF EXISTS " + p.MetaDB + " WITH (FORCE)",
			"DROP DATABASE IF EXISTS " + p.DataDB + " WITH (FORCE)",
			"DROP ROLE IF EXISTS " + p.MetaRole,
			"DROP ROLE IF EXISTS " + p.DataRole,
		} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Logf("cleanup: %s: %v", q, err)
			}
		}
	})
	return p
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", pgdb.Redact(url), err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// checkProvisioned runs the assertions every provisioned cluster must pass.
func checkProvisioned(t *testing.T, res pgcluster.Result, p pgcluster.Plan) {
	t.Helper()
	ctx := context.Background()

	// The data role owns the data database: it can create tables there and
	// use PostGIS.
	data := connect(t, res.DataURL)
	var user, pgis string
	if err := data.QueryRow(ctx, "SELECT current_user, postgis_version()").Scan(&user, &pgis); err != nil {
		t.Fatalf("SELECT postgis_version() as the data role: %v", err)
	}
	if user != p.DataRole || pgis == "" {
		t.Errorf("data connection: user %q, postgis %q; want user %q and a PostGIS version", user, pgis, p.DataRole)
	}
	if _, err := data.Exec(ctx, "CREATE TABLE IF NOT EXISTS public.pts (id int, geom geometry(Point, 4326))"); err != nil {
		t.Errorf("creating a table as the data role: %v", err)
	}
	var super bool
	if err := data.QueryRow(ctx, "SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || super {
		t.Errorf("data role privileged = %v (err %v), want false", super, err)
	}

	// The data role cannot connect to the metadata database.
	asData, err := pgx.ParseConfig(res.DataURL)
	if err != nil {
		t.Fatal(err)
	}
	asData.Database = p.MetaDB
	if c, err := pgx.ConnectConfig(ctx, asData); err == nil {
		c.Close(ctx)
		t.Errorf("data role connected to metadata database %s; want permission denied", p.MetaDB)
	} else if got := sqlState(err); got != "42501" {
		t.Errorf("data role connecting to %s: SQLSTATE %q (%v), want 42501 insufficient_privilege", p.MetaDB, got, err)
	}

	// The metadata role owns its database: the migrations apply as it.
	pool, err := pgdb.NewPool(ctx, res.MetaURL, pgdb.PoolConfig{MaxConns: 2}, nil)
	if err != nil {
		t.Fatalf("opening metadata pool: %v", err)
	}
	defer pool.Close()
	if _, err := pgdb.Migrate(ctx, pool); err != nil {
		t.Errorf("migrating the metadata database as its owner: %v", err)
	}
}

func TestProvisionTwice(t *testing.T) {
	admin := pgtest.AdminURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := uniquePlan(t, admin)

	first, err := pgcluster.Provision(ctx, admin, p)
	if err != nil {
		t.Fatalf("first Provision: %v", err)
	}
	want := []string{"role " + p.MetaRole, "role " + p.DataRole, "database " + p.MetaDB, "database " + p.DataDB, "extension postgis", "extension pgrouting"}
	if !slices.Equal(first.Created, want) {
		t.Errorf("first run created %q, want %q", first.Created, want)
	}
	checkProvisioned(t, first, p)

	second, err := pgcluster.Provision(ctx, admin, p)
	if err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	if len(second.Created) != 0 {
		t.Errorf("second run created %q, want nothing", second.Created)
	}
	if second.MetaURL != first.MetaURL || second.DataURL != first.DataURL {
		t.Errorf("second run URLs differ from the first")
	}
	checkProvisioned(t, second, p)

	// Tables made by the data role survive a rerun.
	var n int
	if err := connect(t, second.DataURL).QueryRow(ctx, "SELECT count(*) FROM public.pts").Scan(&n); err != nil {
		t.Errorf("table created before the rerun: %v", err)
	}
}

func TestProvisionRejectsBadPlans(t *testing.T) {
	pw := pgcluster.RandomPassword()
	tests := []struct {
		name string
		p    pgcluster.Plan
		want string
	}{
		{"no passwords", pgcluster.Plan{}, "MetaPassword is required"},
		{"same roles", pgcluster.Plan{MetaPassword: pw, DataPassword: pw, MetaRole: "x", DataRole: "x"}, "roles must differ"},
		{"same databases", pgcluster.Plan{MetaPassword: pw, DataPassword: pw, DataDB: "meridian"}, "databases must differ"},
		{"reserved", pgcluster.Plan{MetaPassword: pw, DataPassword: pw, MetaDB: "postgres"}, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Validation happens before any connection: the URL is never dialled.
			_, err := pgcluster.Provision(context.Background(), "postgres://nobody@127.0.0.1:1/x", tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Provision(%+v) error = %v, want one containing %q", tt.p, err, tt.want)
			}
		})
	}
	if err := (pgcluster.Plan{MetaPassword: pw, DataPassword: pw}).Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v, want nil", err)
	}
}

// TestProvisionPasswordCluster provisions a cluster that checks passwords
// (the throwaway test cluster trusts every loopback connection), as the
// make run cluster does: the SCRAM verifiers we send must let the roles in
// with their passwords and keep them out with others, and a rerun with new
// passwords must rotate them.
func TestProvisionPasswordCluster(t *testing.T) {
	pgtest.AdminURL(t) // integration test: same opt-in as the others
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "meridian-provtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // the postgres user must reach it when we are root

	c, err := pgcluster.Open(ctx, dir, pgcluster.Options{Password: pgcluster.RandomPassword(), Fast: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Stop(sctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})

	p := pgcluster.Plan{MetaPassword: pgcluster.RandomPassword(), DataPassword: pgcluster.RandomPassword()}
	res, err := pgcluster.Provision(ctx, c.SuperuserURL("postgres"), p)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	checkProvisioned(t, res, pgcluster.Plan{MetaDB: "meridian", MetaRole: "meridian", DataDB: "meridian_data", DataRole: "meridian_data"})

	wrong := c.URL("meridian_data", "meridian_data", "not-the-password")
	if conn, err := pgx.Connect(ctx, wrong); err == nil {
		conn.Close(ctx)
		t.Error("data role connected with a wrong password")
	} else if got := sqlState(err); got != "28P01" {
		t.Errorf("wrong password: SQLSTATE %q (%v), want 28P01 invalid_password", got, err)
	}

	// Rotation: the new password works, the old one no longer does.
	old := res.DataURL
	p.DataPassword = pgcluster.RandomPassword()
	res2, err := pgcluster.Provision(ctx, c.SuperuserURL("postgres"), p)
	if err != nil {
		t.Fatalf("Provision with a new password: %v", err)
	}
	connect(t, res2.DataURL)
	if conn, err := pgx.Connect(ctx, old); err == nil {
		conn.Close(ctx)
		t.Error("old data password still accepted after rotation")
	}
}
