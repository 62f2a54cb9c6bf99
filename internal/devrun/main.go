// Command devrun is what `make run` does once bin/meridian is built: it
// gives a fresh machine a working Meridian with demo data, and a second run
// reuses everything the first one made.
//
// Steps, each skipped when already done:
//
//  1. Check that bin/meridian has the subcommands used below.
//  2. Unless MERIDIAN_DATABASE_URL is set: open (initdb) and start a private
//     PostgreSQL cluster under .meridian/pg (same port and passwords on every
//     run; passwords in .meridian/passwords.json), then provision the
//     metadata database and the PostGIS data database with their roles
//     (pgcluster.Provision).
//  3. Keep MERIDIAN_SECRET_KEY in .meridian/secret.key (0600), unless set.
//  4. Load the demo tables (countries, populated places) into the data
//     database with ogr2ogr, as the data role.
//  5. meridian migrate; meridian connection add local; meridian token create.
//  6. Start `meridian up` (output to the terminal and .meridian/meridian.log),
//     wait for /healthz through the edge, print the URL, the demo token and
//     an example tile URL, and forward SIGINT/SIGTERM to it.
//
// When devrun started the cluster, it stops it on exit (-keep-db keeps it
// running). With -prepare-only it stops after step 4 and never runs the
// binary: use it to get a database alone, then `. .meridian/env`.
//
// With MERIDIAN_DATABASE_URL set, no cluster is made; demo data is loaded
// only when MERIDIAN_DEMO_DATABASE_URL names a PostGIS database for it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are devrun's flags, resolved to absolute paths.
type options struct {
	// StateDir keeps the cluster, passwords, secret key and log. Default: .meridian.
	StateDir string
	// Bin is the meridian binary. Default: bin/meridian.
	Bin string
	// DataDir holds the demo geodata (polygons/, points/). Default:
	// $MERIDIAN_TESTDATA, else ../shared/data.
	DataDir string
	// PrepareOnly stops after the database and demo data, without running Bin.
	PrepareOnly bool
	// KeepDB leaves a cluster devrun started running when it exits.
	KeepDB bool
	// HealthTimeout bounds the wait for /healthz after starting `meridian up`. Default: 2m.
	HealthTimeout time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.StateDir, "state", ".meridian", "folder for the cluster, passwords, secret key and log")
	flag.StringVar(&o.Bin, "bin", "bin/meridian", "the meridian binary")
	flag.StringVar(&o.DataDir, "data", "", "demo geodata folder (default $MERIDIAN_TESTDATA, else ../shared/data)")
	flag.BoolVar(&o.PrepareOnly, "prepare-only", false, "set up the database and demo data, then exit without running meridian")
	flag.BoolVar(&o.KeepDB, "keep-db", false, "leave the cluster running on exit")
	flag.DurationVar(&o.HealthTimeout, "health-timeout", 2*time.Minute, "how long to wait for /healthz")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).With("svc", "devrun")

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	if err := run(context.Background(), o, sigc, os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "devrun:", err)
		var ee exitStatus
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		os.Exit(1)
	}
}

// exitStatus is the status of a `meridian up` that exited on its own.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("meridian up exited with status %d", int(e)) }

// run does every step; out receives the summary for the user. Signals on
// sigc cancel the preparation, or once `meridian up` runs, go to it.
func run(parent context.Context, o options, sigc <-chan os.Signal, out io.Writer, log *slog.Logger) (err error) {
	if o.DataDir == "" {
		o.DataDir = os.Getenv("MERIDIAN_TESTDATA")
	}
	if o.DataDir == "" {
		o.DataDir = filepath.Join("..", "shared", "data")
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = 2 * time.Minute
	}
	for _, p := range []*string{&o.StateDir, &o.Bin, &o.DataDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	rl := &relay{cancel: cancel, log: log}
	stopRelay := make(chan struct{})
	defer close(stopRelay)
	go rl.loop(sigc, stopRelay)

	var bin *meridianBin
	if !o.PrepareOnly {
		bin = &meridianBin{path: o.Bin, log: log}
		if err := bin.probe(ctx); err != nil {
			return err
		}
		if err := checkPortsFree(componentAddrs()); err != nil {
			return err
		}
	}

	db, err := prepareDatabase(ctx, o.StateDir, log)
	if err != nil {
		return err
	}
	if db.cluster != nil && db.startedCluster && !o.KeepDB {
		defer func() {
			sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
			defer scancel()
			log.Info("stopping the PostgreSQL cluster", "dir", db.cluster.Dir)
			if serr := db.cluster.Stop(sctx); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
	}

	key, err := secretKey(o.StateDir)
	if err != nil {
		return err
	}
	if err := writeEnvFile(o.StateDir, db, key); err != nil {
		return err
	}

	if db.dataURL != "" {
		if err := loadDemoData(ctx, db.dataURL, o.DataDir, log); err != nil {
			return err
		}
	} else {
		log.Warn("no data database: MERIDIAN_DATABASE_URL is set but MERIDIAN_DEMO_DATABASE_URL is not; skipping demo data")
	}

	if o.PrepareOnly {
		printPrepared(out, o.StateDir, db)
		if db.startedCluster && !o.KeepDB {
			fmt.Fprintln(out, "(the cluster stops now; pass -keep-db to leave it running)")
		}
		return nil
	}

	public, publicSet := publicURL()
	bin.env = []string{"MERIDIAN_DATABASE_URL=" + db.metaURL, "MERIDIAN_SECRET_KEY=" + key}
	if !publicSet {
		bin.env = append(bin.env, "MERIDIAN_PUBLIC_URL="+public)
	}
	if out, err := bin.run(ctx, "migrate", "migrate"); err != nil {
		return err
	} else if out = strings.TrimSpace(out); out != "" {
		log.Info("meridian migrate: " + out)
	}
	adminPassword, err := bin.ensureAdmin(ctx, o.StateDir)
	if err != nil {
		return err
	}
	var token string
	if db.dataURL != "" {
		if _, err := bin.run(ctx, "connection add", "connection", "add", demoConnection, "--url", db.dataURL); err != nil {
			return err
		}
		if token, err = bin.createDemoToken(ctx, o.StateDir); err != nil {
			return err
		}
		// Location Data Services: the gazetteer and road graph in the
		// data database, built once (meridian lds load; a minute or two).
		bin.env = append(bin.env, "MERIDIAN_LDS_DATABASE_URL="+db.dataURL)
		if loaded, err := ldsLoaded(ctx, db.dataURL); err != nil {
			return err
		} else if !loaded {
			if _, err := bin.run(ctx, "lds load", "lds", "load", o.DataDir); err != nil {
				return err
			}
		}
		// The offline basemap (Natural Earth, and the OSM roads of the
		// road graph just loaded) in the same database; a no-op when
		// loaded (meridian basemap load; under a minute).
		if _, err := bin.run(ctx, "basemap load", "basemap", "load", o.DataDir); err != nil {
			return err
		}
	}
	return superviseUp(ctx, upRun{
		bin:     bin,
		logPath: filepath.Join(o.StateDir, "meridian.log"),
		health:  healthURL(),
		public:  public,
		token:   token,
		admin:   adminPassword,
		wait:    o.HealthTimeout,
		relay:   rl,
		out:     out,
		log:     log,
	})
}
