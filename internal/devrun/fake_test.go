package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/pgdb"
)

// The test binary doubles as a fake meridian binary: with
// DEVRUN_FAKE_MERIDIAN set it runs fakeMeridian instead of the tests, so
// devrun's probing, subcommand runs and supervision are exercised against
// a real process that really talks to PostgreSQL and serves HTTP, while the
// real binary (edge/) is still being written.
func TestMain(m *testing.M) {
	if mode := os.Getenv("DEVRUN_FAKE_MERIDIAN"); mode != "" {
		os.Exit(fakeMeridian(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// Fake modes.
const (
	fakeFull      = "full"      // every subcommand
	fakeEmpty     = "empty"     // exits 0 and prints nothing, like an empty main
	fakePartial   = "partial"   // only version and migrate; cobra-like "unknown command" otherwise
	fakeUpExits   = "up-exits"  // up exits with status 3 at once
	fakeUnhealthy = "unhealthy" // up serves /healthz with 503
)

func fakeMeridian(mode string, args []string) int {
	known := map[string]bool{"version": true, "migrate": true, "connection": true, "token": true, "user": true, "up": true, "lds": true, "basemap": true}
	switch mode {
	case fakeEmpty:
		return 0
	case fakePartial:
		known = map[string]bool{"version": true, "migrate": true}
	}
	if len(args) == 0 {
		fmt.Println("Usage:\n  meridian [command]")
		return 0
	}
	if !known[args[0]] {
		fmt.Fprintf(os.Stderr, "Error: unknown command %q for \"meridian\"\n", args[0])
		return 1
	}
	if args[len(args)-1] == "--help" {
		fmt.Printf("Usage:\n  meridian %s [flags]\n", strings.Join(args[:len(args)-1], " "))
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "fake meridian:", err)
		return 1
	}
	switch args[0] {
	case "version":
		fmt.Println("v0.0.0-fake")
	case "migrate":
		pool, err := pgdb.NewPool(ctx, os.Getenv("MERIDIAN_DATABASE_URL"), pgdb.PoolConfig{MaxConns: 2}, nil)
		if err != nil {
			return fail(err)
		}
		defer pool.Close()
		if _, err := pgdb.Migrate(ctx, pool); err != nil {
			return fail(err)
		}
	case "connection":
		fs := flag.NewFlagSet("connection add", flag.ContinueOnError)
		u := fs.String("url", "", "")
		if len(args) < 3 || args[1] != "add" || fs.Parse(args[3:]) != nil || *u == "" {
			return fail(errors.New("usage: connection add NAME --url URL"))
		}
		if os.Getenv("MERIDIAN_SECRET_KEY") == "" {
			return fail(errors.New("MERIDIAN_SECRET_KEY unset"))
		}
		// The connection must reach the demo data as a role that cannot
		// reach the metadata database.
		c, err := pgx.Connect(ctx, *u)
		if err != nil {
			return fail(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM public.countries").Scan(&n); err != nil || n == 0 {
			return fail(fmt.Errorf("countries: %d rows, %v", n, err))
		}
	case "token":
		fmt.Println("fake.token." + strings.Join(args[2:], "_"))
	case "user":
		fmt.Println("fake-admin-password")
	case "up":
		return fakeUp(mode)
	}
	return 0
}

// fakeUp serves /healthz on MERIDIAN_EDGE_ADDR until SIGINT or SIGTERM.
// Like Caddy, a second SIGINT soon after the first force-quits with
// status 2, so a test sees a signal delivered twice.
func fakeUp(mode string) int {
	if mode == fakeUpExits {
		fmt.Fprintln(os.Stderr, "fake meridian up: failing at once")
		return 3
	}
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	l, err := net.Listen("tcp", os.Getenv("MERIDIAN_EDGE_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake meridian up:", err)
		return 1
	}
	status := http.StatusOK
	if mode == fakeUnhealthy {
		status = http.StatusServiceUnavailable
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	})}
	go srv.Serve(l)
	fmt.Println("fake meridian up: serving on", l.Addr())
	<-sigc
	srv.Close()
	select {
	case <-sigc:
		fmt.Fprintln(os.Stderr, "fake meridian up: second signal, force quit")
		return 2
	case <-time.After(300 * time.Millisecond):
	}
	fmt.Println("fake meridian up: stopped")
	return 0
}
