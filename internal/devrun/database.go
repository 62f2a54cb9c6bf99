package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/pgdb"
)

// database is where Meridian's data lives for this run.
type database struct {
	// metaURL is MERIDIAN_DATABASE_URL: the metadata database as its owner.
	metaURL string
	// dataURL is the demo data database as the data role; empty when there
	// is none (external metadata database without MERIDIAN_DEMO_DATABASE_URL).
	dataURL string
	// cluster is the private cluster, nil when MERIDIAN_DATABASE_URL is set.
	cluster *pgcluster.Cluster
	// startedCluster is true when this run started the cluster.
	startedCluster bool
}

// prepareDatabase returns the databases to use: the ones named in the
// environment, or those of the private cluster under stateDir/pg, which it
// creates, starts and provisions as needed.
func prepareDatabase(ctx context.Context, stateDir string, log *slog.Logger) (database, error) {
	if u := os.Getenv("MERIDIAN_DATABASE_URL"); u != "" {
		log.Info("using MERIDIAN_DATABASE_URL; no private cluster", "url", pgdb.Redact(u))
		return database{metaURL: u, dataURL: os.Getenv("MERIDIAN_DEMO_DATABASE_URL")}, nil
	}
	if _, err := pgcluster.BinDir(); err != nil {
		return database{}, fmt.Errorf("%w; scripts/ensure-deps.sh installs it", err)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return database{}, fmt.Errorf("creating state folder: %w", err)
	}
	dir := filepath.Join(stateDir, "pg")
	if os.Geteuid() == 0 {
		if d := unreachableAncestor(stateDir); d != "" {
			return database{}, fmt.Errorf("the cluster runs as the postgres user, which cannot enter %s: "+
				"run `chmod o+x %s` or pass -state with a folder it can reach", d, d)
		}
	}
	pwPath := filepath.Join(stateDir, "passwords.json")
	if _, err := os.Stat(pwPath); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err == nil {
			return database{}, fmt.Errorf("%s holds a cluster but %s is gone, so its passwords are lost: "+
				"remove %s to start over (this deletes the local databases)", dir, pwPath, dir)
		}
	}
	pw, _, err := loadOrCreatePasswords(pwPath, pgcluster.RandomPassword)
	if err != nil {
		return database{}, err
	}
	c, err := pgcluster.Open(ctx, dir, pgcluster.Options{Password: pw.Superuser})
	if err != nil {
		return database{}, err
	}
	db := database{cluster: c}
	if !c.Running(ctx) {
		log.Info("starting PostgreSQL", "dir", dir, "addr", fmt.Sprintf("127.0.0.1:%d", c.Port))
		if err := c.Start(ctx); err != nil {
			return database{}, err
		}
		db.startedCluster = true
	} else {
		log.Info("PostgreSQL already running", "dir", dir, "addr", fmt.Sprintf("127.0.0.1:%d", c.Port))
	}
	res, err := pgcluster.Provision(ctx, c.SuperuserURL("postgres"), pgcluster.Plan{
		MetaPassword: pw.Meta,
		DataPassword: pw.Data,
	})
	if err != nil {
		if db.startedCluster {
			c.Stop(context.WithoutCancel(ctx))
		}
		return database{}, err
	}
	if len(res.Created) > 0 {
		log.Info("provisioned", "created", res.Created)
	}
	db.metaURL, db.dataURL = res.MetaURL, res.DataURL
	return db, nil
}
