package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/workers/importer"
)

// `meridian import FILE --table T` loads the file through the engine,
// reports progress on stderr, announces the change, and fails with the
// engine's message (exit 1) on bad input.
func TestImportCommand(t *testing.T) {
	meta, data := pgtest.Meta(t), pgtest.Data(t)
	ctx := context.Background()
	key := secret.GenerateKey()
	kr, _ := secret.ParseKeyring(key)
	if _, err := dataconn.New(meta.Pool, kr).Create(ctx, dataconn.Connection{Name: "local", Kind: "postgres", URL: data.URL}); err != nil {
		t.Fatal(err)
	}
	b := pgbroker.New(meta.Pool, pgbroker.Config{}, nil)
	defer b.Close()
	sub := broker.Subscription{Topic: broker.TopicInvalidations, Name: "test-invalidations"}
	if err := b.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (stdout, stderr string, err error) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "MERIDIAN_DATABASE_URL="+meta.URL, "MERIDIAN_SECRET_KEY="+key, "HOME="+t.TempDir(),
			envRunAsMeridian+"=1", envMeridianArgs+"="+strings.Join(append([]string{"import"}, args...), "\x1f"))
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}

	roads := importTestData(t, "fixtures/geojson/tiger_roads_manhattan.geojson")
	out, errOut, err := run(roads, "--table", "public.roads")
	if err != nil {
		t.Fatalf("meridian import = %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if !strings.Contains(out, "imported 8333 rows into public.roads on local") {
		t.Errorf("stdout = %q, want the summary", out)
	}
	if !strings.Contains(errOut, "rows") {
		t.Errorf("stderr = %q, want progress lines", errOut)
	}
	// The progress and the summary show bytes, the finished import all of them.
	if fi, err := os.Stat(roads); err != nil {
		t.Error(err)
	} else if size := byteSize(fi.Size()); !strings.Contains(out, size+" read") ||
		!strings.Contains(errOut, "done") || !strings.Contains(errOut, "/ "+size+"  100%") {
		t.Errorf("stdout = %q, stderr = %q, want %s read and the done line at 100%%", out, errOut, size)
	}
	var n int
	data.Pool.QueryRow(ctx, "SELECT count(*) FROM public.roads").Scan(&n)
	if n != 8333 {
		t.Errorf("public.roads has %d rows, want 8333", n)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var inv cachetag.Invalidation
	b.Receive(rctx, sub, func(_ context.Context, m *broker.Message) error {
		json.Unmarshal(m.Data, &inv)
		cancel()
		return nil
	})
	cancel()
	if len(inv.Tags) != 1 || inv.Tags[0] != "src:local/public.roads" {
		t.Errorf("invalidation = %+v, want src:local/public.roads", inv)
	}

	// The table exists: the default --if-exists fail refuses, with a hint.
	_, errOut, err = run(roads, "--table", "roads")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut, "--if-exists") {
		t.Errorf("second import = %v, stderr %q, want exit 1 with the --if-exists hint", err, errOut)
	}
	// Bad input: exit 1 with the engine's message.
	bad := filepath.Join(t.TempDir(), "bad.geojson")
	os.WriteFile(bad, []byte(`{"type":"FeatureCollection","features":[{"type":"Feature",]}`), 0o600)
	_, errOut, err = run(bad, "--table", "bad")
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut, "meridian import: malformed file") || !strings.Contains(errOut, "byte") {
		t.Errorf("bad file = %v, stderr %q, want exit 1 with the engine's message", err, errOut)
	}
	if _, errOut, err = run(roads); err == nil || !strings.Contains(errOut, "--table is required") {
		t.Errorf("without --table = %v, stderr %q, want an error naming --table", err, errOut)
	}
}

// The progress bar redraws one line on a terminal (at most five times a
// second, the previous line overwritten) and prints lines elsewhere.
func TestProgressBar(t *testing.T) {
	var tty bytes.Buffer
	bar := newProgressBar(&tty, true)
	bar.update(importer.Progress{Phase: "reading", BytesRead: 10 << 20, BytesTotal: 40 << 20, Rows: 120000})
	bar.update(importer.Progress{Phase: "reading", BytesRead: 11 << 20, BytesTotal: 40 << 20, Rows: 130000}) // too soon: skipped
	bar.update(importer.Progress{Phase: "finishing", BytesRead: 40 << 20, BytesTotal: 40 << 20, Rows: 400000})
	bar.finish()
	got := tty.String()
	if strings.Count(got, "\r") != 2 || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
		t.Errorf("terminal output %q, want two \\r redraws and one final newline", got)
	}
	if !strings.Contains(got, "10.0 MiB / 40.0 MiB   25%  120000 rows") || !strings.Contains(got, "finishing") {
		t.Errorf("terminal output %q, want bytes, total, percent and rows", got)
	}
	var log bytes.Buffer
	bar = newProgressBar(&log, false)
	bar.update(importer.Progress{Phase: "reading", BytesRead: 1 << 10, Rows: 5})
	bar.update(importer.Progress{Phase: "reading", BytesRead: 2 << 10, Rows: 10}) // within 3s: skipped
	bar.finish()
	if got := log.String(); strings.Contains(got, "\r") || strings.Count(got, "\n") != 1 || !strings.Contains(got, "1.0 KiB  5 rows") {
		t.Errorf("non-terminal output %q, want one plain line", got)
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}
