package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/meridian-gis/meridian/internal/config"
)

// Config is what the control plane and the workers both read about
// imports and batch SQL jobs: one field per environment variable, embedded
// in both sides' configuration (control's "jobs" and the worker's "jobs"
// sections), so that the two cannot drift apart.
type Config struct {
	// ImportDir is where the control plane stores uploaded files and
	// where workers download URL imports; a worker deletes an upload once
	// its import is over. With several nodes it must be shared storage
	// (NFS, a shared volume) mounted at the same path on every control
	// and worker node. Default: <OS temp dir>/meridian-imports.
	ImportDir string `json:"import_dir,omitempty" env:"MERIDIAN_IMPORT_DIR"`
	// MaxImportBytes caps an import's file: control refuses larger
	// uploads with 413, workers stop larger downloads (it is also the
	// importer's MaxBytes). Default: 10 GiB.
	MaxImportBytes int64 `json:"max_import_bytes,omitempty" env:"MERIDIAN_IMPORT_MAX_BYTES"`
	// AllowPrivate accepts import URLs naming loopback, private or
	// link-local addresses: control checks the URL, the worker every
	// address it connects to. Default: false (refused: a user must not
	// make the worker read internal services).
	AllowPrivate bool `json:"allow_private,omitempty" env:"MERIDIAN_IMPORT_ALLOW_PRIVATE"`
	// MaxSQLTimeout caps a batch SQL job's timeout_ms (control refuses
	// more, workers never wait longer). Default: 24h.
	MaxSQLTimeout config.Duration `json:"max_sql_timeout,omitempty" env:"MERIDIAN_SQL_JOB_MAX_TIMEOUT"`
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.ImportDir == "" {
		c.ImportDir = filepath.Join(os.TempDir(), "meridian-imports")
	}
	if c.MaxImportBytes == 0 {
		c.MaxImportBytes = 10 << 30
	}
	if c.MaxSQLTimeout == 0 {
		c.MaxSQLTimeout = config.Duration(24 * time.Hour)
	}
}

// Validate reports every problem in c; who ("control", "worker") starts
// each message.
func (c Config) Validate(who string) error {
	var errs []error
	if c.MaxImportBytes < 0 {
		errs = append(errs, errors.New(who+" max_import_bytes: must be positive (MERIDIAN_IMPORT_MAX_BYTES)"))
	}
	if c.MaxSQLTimeout < 0 {
		errs = append(errs, errors.New(who+" max_sql_timeout: must not be negative (MERIDIAN_SQL_JOB_MAX_TIMEOUT)"))
	}
	return errors.Join(errs...)
}
