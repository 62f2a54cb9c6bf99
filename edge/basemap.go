package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/basemap"
	"github.com/meridian-gis/meridian/internal/dataconn"
)

func init() {
	register("basemap", "load|reload [DATA_DIR]",
		"Load the offline basemap (Natural Earth) into a data connection",
		`meridian basemap load [DATA_DIR] loads Natural Earth land, lakes, rivers,
coastline, admin-1 boundaries and populated places into schema
meridian_basemap of the data connection's database (default: the
connection named by MERIDIAN_BASEMAP_CONNECTION, else "local"). The tiles
engine serves them like any table; the control plane serves the MapLibre
styles meridian-light and meridian-dark at /basemap/styles/. DATA_DIR
defaults to $MERIDIAN_TESTDATA, else ../shared/data. A complete basemap is
kept (reload replaces it); a load cut short leaves the previous one in
place.`,
		needs{db: true, secret: true}, runBasemap)
}

func runBasemap(ctx context.Context, cfg *Config, args []string) error {
	if len(args) == 0 || (args[0] != "load" && args[0] != "reload") || len(args) > 2 {
		return errors.New("usage: meridian basemap load|reload [DATA_DIR]")
	}
	force := args[0] == "reload"
	connName := cfg.Control.Basemap.Connection
	if connName == "" {
		connName = "local"
	}
	dir := ""
	if len(args) == 2 {
		dir = args[1]
	}
	if dir == "" {
		dir = os.Getenv("MERIDIAN_TESTDATA")
	}
	if dir == "" {
		dir = filepath.Join("..", "shared", "data")
	}
	nd, err := openNode(ctx, cfg, "basemap", needs{db: true, secret: true}, false)
	if err != nil {
		return err
	}
	defer nd.close()
	c, err := dataconn.New(nd.meta, nd.keyring).Get(ctx, connName)
	if err != nil {
		return fmt.Errorf("data connection %q: %w (add it with meridian connection add)", connName, err)
	}
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return fmt.Errorf("connecting to %q: %w", connName, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if !force {
		if ok, err := basemap.Loaded(ctx, conn); err != nil {
			return err
		} else if ok {
			fmt.Fprintf(os.Stderr, "basemap load: already loaded in %q (meridian basemap reload replaces it)\n", connName)
			return nil
		}
	}
	bar := &stageBar{start: time.Now()}
	err = basemap.Load(ctx, conn, dir, func(layer string, done, total int64) {
		if total == 0 {
			total = done + 1
		}
		bar.update("basemap "+layer, done, total)
	})
	bar.clear()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "basemap load: done in %s (connection %q, schema %s)\n", time.Since(bar.start).Round(time.Second), connName, basemap.Schema)
	return nil
}
