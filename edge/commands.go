package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/meridian-gis/meridian/internal/pgdb"
)

func init() {
	register("up", "[--config meridian.json]",
		"Run every component (edge, tiles, control, workers) in one process",
		`Runs the whole platform in one process against one PostgreSQL: migrates
the metadata database, then starts the tiles engine, the control plane, the
workers and the edge (Caddy, configured by the embedded Caddyfile or
MERIDIAN_CADDYFILE). SIGINT or SIGTERM shuts everything down gracefully.`,
		needs{db: true, secret: true}, runUp)
	register("tiles", "[--config meridian.json]", "Run the tiles engine (maps and SQL API) alone",
		"Runs one tiles node: the maps and SQL API behind the edge.", needs{db: true, secret: true}, runTiles)
	register("control", "[--config meridian.json]", "Run the control plane alone",
		"Runs one control-plane node: the management REST API.", needs{db: true, secret: true}, runControl)
	register("worker", "[--config meridian.json]", "Run a worker alone",
		"Runs one worker: consumes imports, batch SQL and workspace events.", needs{db: true, secret: true}, runWorker)
	register("migrate", "[--config meridian.json]", "Apply metadata database migrations",
		"Applies the embedded schema migrations to MERIDIAN_DATABASE_URL. Safe to run twice and concurrently.",
		needs{db: true}, runMigrate)
}

// commandFunc runs a command with its loaded config; ctx ends on SIGINT or
// SIGTERM.
type commandFunc func(ctx context.Context, cfg *Config, args []string) error

// register adds a subcommand whose config is loaded and validated before fn
// runs, and whose failure is one clear line on stderr.
func register(name, usage, short, long string, n needs, fn commandFunc) {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  name,
		Usage: usage,
		Short: short,
		Long:  long,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("config", "", "JSON configuration file (MERIDIAN_* environment variables override it)")
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				path, _ := cmd.Flags().GetString("config")
				return runCommand(name, path, n, fn, args)
			}
		},
	})
}

func runCommand(name, path string, n needs, fn commandFunc, args []string) error {
	cfg, err := loadConfig(path, n)
	if err != nil {
		return fail(name, fmt.Errorf("configuration: %w", err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := fn(ctx, cfg, args); err != nil {
		return fail(name, err)
	}
	return nil
}

// fail prints err as one line and exits non-zero; cobra's own error
// printing (with usage) would bury the line that names the problem.
func fail(name string, err error) error {
	fmt.Fprintf(os.Stderr, "meridian %s: %s\n", name, oneLine(err))
	os.Exit(1)
	return err
}

func runMigrate(ctx context.Context, cfg *Config, _ []string) error {
	nd, err := openNode(ctx, cfg, "migrate", needs{db: true}, false)
	if err != nil {
		return err
	}
	defer nd.close()
	applied, err := pgdb.Migrate(ctx, nd.meta)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Println("metadata database is up to date")
		return nil
	}
	fmt.Printf("applied migrations %v\n", applied)
	return nil
}
