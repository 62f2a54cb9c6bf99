package control

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func TestServeHealthAndErrors(t *testing.T) {
	db := pgtest.Meta(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	s, err := New(Config{Addr: addr}, Deps{Log: slog.New(slog.DiscardHandler), Meta: db.Pool, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	base := "http://" + addr
	var res *http.Response
	for i := 0; i < 50; i++ {
		if res, err = http.Get(base + "/readyz"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/readyz = %v %v, want 200", res, err)
	}
	res.Body.Close()

	res, err = http.Get(base + "/api/nope")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != 404 || body["error"] == nil || body["code"] != "NOT_FOUND" {
		t.Errorf("unknown route = %d %v, want 404 JSON error", res.StatusCode, body)
	}

	db.Pool.Close() // a dead metadata database makes the node unready
	res, err = http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with closed DB pool = %d, want 503", res.StatusCode)
	}
}

// The jobs section reads the settings the workers read (jobspec.Config)
// from the same environment variables, and the former max_upload_bytes
// key still sets the upload limit.
func TestJobsConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.json")
	if err := os.WriteFile(path, []byte(`{"jobs": {"max_upload_bytes": 1234, "upload_idle_timeout": "5s"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MERIDIAN_IMPORT_DIR": "/srv/imports", "MERIDIAN_IMPORT_ALLOW_PRIVATE": "true", "MERIDIAN_SQL_JOB_MAX_TIMEOUT": "1m"}
	var c Config
	if err := config.LoadWith(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	j := c.Jobs
	if j.ImportDir != "/srv/imports" || !j.AllowPrivate || j.MaxSQLTimeout.D() != time.Minute || j.MaxImportBytes != 1234 || j.UploadIdleTimeout.D() != 5*time.Second {
		t.Errorf("jobs config = %+v", j)
	}
	env["MERIDIAN_IMPORT_MAX_BYTES"] = "99"
	c = Config{}
	if err := config.LoadWith(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &c); err != nil {
		t.Fatal(err)
	}
	if c.SetDefaults(); c.Jobs.MaxImportBytes != 99 {
		t.Errorf("MERIDIAN_IMPORT_MAX_BYTES: max_import_bytes = %d, want 99", c.Jobs.MaxImportBytes)
	}
	if err := (Config{Jobs: JobsConfig{Config: jobspec.Config{MaxImportBytes: -1}}}).Validate(); err == nil || !strings.Contains(err.Error(), "max_import_bytes") {
		t.Errorf("Validate of a negative max_import_bytes = %v", err)
	}
}
