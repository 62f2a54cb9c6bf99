package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/workers/importer"
)

// ImportOptions is the JSON kept in imports.options (internal/jobspec,
// shared with the control plane).
type ImportOptions = jobspec.ImportOptions

// GeometryColumns says where a CSV keeps its geometry.
type GeometryColumns = jobspec.GeometryColumns

// ImportResult is what a successful import stores in imports.result.
type ImportResult struct {
	Table        string           `json:"table"`
	Rows         int64            `json:"rows"`
	Columns      []importedColumn `json:"columns,omitempty"`
	GeometryType string           `json:"geometryType,omitempty"`
	SRID         int              `json:"srid,omitempty"`
	SourceSRID   int              `json:"sourceSrid,omitempty"`
	BBox         []float64        `json:"bbox,omitempty"`
	Format       string           `json:"format,omitempty"`
	Layer        string           `json:"layer,omitempty"`
	InvalidFixed int64            `json:"invalidFixed,omitempty"`
	Warnings     []string         `json:"warnings,omitempty"`
}

type importedColumn struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Source string `json:"source,omitempty"`
}

// ImportHandler handles TopicImports messages ({"id": imports.id}): it
// loads the row, runs the import with progress saved in the row, and
// announces the change. It is idempotent: a finished import is acked
// without work, and a re-run after a crash relies on the importer's
// staging tables and ledger (keyed by the import ID) to leave exactly
// one complete table.
type ImportHandler struct {
	j     *Jobs
	log   *slog.Logger
	fetch *Fetcher
}

type importRow struct {
	id, conn, destination, status string
	url, filePath, filename       *string
	opts                          ImportOptions
	attempts                      int
	result                        []byte
	lastErr                       *string
}

// Handle is the broker.Handler.
func (h *ImportHandler) Handle(ctx context.Context, m *broker.Message) error {
	id, err := parseJobMessage(m)
	if err != nil {
		h.log.Warn("dropping message", "err", err)
		return nil
	}
	log := h.log.With("import_id", id, "delivery", m.Attempt)
	row, err := h.load(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		log.Info("import no longer exists")
		return nil
	}
	if err != nil {
		return err
	}
	if jobspec.Terminal(row.status) {
		h.removeUpload(row)
		return nil
	}
	maxAttempts := h.j.cfg.MaxAttempts
	if row.attempts >= maxAttempts {
		h.finish(ctx, row, jobspec.StatusFailure, fmt.Sprintf("gave up after %d attempts: %s", row.attempts, deref(row.lastErr)), log)
		return nil
	}
	attempt, ok, err := jobspec.Imports.Start(ctx, h.j.d.Meta, id)
	if err != nil {
		return err
	}
	if !ok {
		return nil // finished or cancelled meanwhile
	}
	log = log.With("attempt", attempt)
	log.Info("import started", "conn", row.conn, "destination", row.destination)
	start := time.Now()
	out := h.run(ctx, row, log)

	switch {
	case out.err == nil:
		if err := h.succeed(ctx, row, out.res, log); err != nil {
			return err
		}
		log.Info("import done", "table", out.res.Table, "rows", out.res.Rows, "elapsed", time.Since(start).Round(time.Millisecond).String(),
			"already_applied", out.res.AlreadyApplied)
		return nil
	case out.cancelled:
		log.Info("import cancelled")
		h.removeUpload(row)
		return nil
	case ctx.Err() != nil:
		// The worker is stopping: someone else runs it later.
		h.requeue(ctx, row, "interrupted: the worker stopped")
		return fmt.Errorf("import %s interrupted: %w", id, ctx.Err())
	case errors.Is(out.err, importer.ErrImportRunning):
		return out.err // a duplicate delivery: leave the row to the running one
	case out.timedOut:
		h.finish(ctx, row, jobspec.StatusFailure, fmt.Sprintf("import timed out after %v", h.j.cfg.ImportTimeout.D()), log)
		return nil
	case permanent(out.err):
		log.Info("import failed", "err", out.err)
		h.finish(ctx, row, jobspec.StatusFailure, userMessage(out.err), log)
		return nil
	}
	msg := userMessage(out.err)
	if m.Attempt >= maxAttempts || attempt >= maxAttempts {
		log.Error("import failed, no attempts left", "err", out.err)
		h.finish(ctx, row, jobspec.StatusFailure, fmt.Sprintf("failed after %d attempts: %s", attempt, msg), log)
		return nil
	}
	log.Warn("import failed, will retry", "err", out.err)
	h.requeue(ctx, row, msg)
	return fmt.Errorf("import %s: %w", id, out.err)
}

type importOutcome struct {
	res       importer.Result
	err       error
	cancelled bool // by the user (status cancelled, or the row deleted)
	timedOut  bool // ImportTimeout
}

// run fetches (URL imports) and imports, with a watcher saving progress
// and cancelling when the user cancels.
func (h *ImportHandler) run(parent context.Context, row *importRow, log *slog.Logger) (out importOutcome) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var p progress
	w := startWatcher(ctx, h.j.cfg.PollInterval.D(), cancel, log, func(ctx context.Context) (string, error) {
		return h.saveProgress(ctx, row.id, &p)
	})
	defer func() {
		w.Stop()
		out.cancelled = out.err != nil && errors.Is(context.Cause(ctx), errCancelled)
	}()

	var src importer.Source
	switch {
	case row.url != nil:
		p.set("fetching", 0, -1, 0)
		if err := os.MkdirAll(h.j.cfg.ImportDir, 0o700); err != nil {
			return importOutcome{err: fmt.Errorf("creating import folder: %w", err)}
		}
		dst := filepath.Join(h.j.cfg.ImportDir, row.id+".download")
		defer os.Remove(dst)
		name, err := h.fetch.Fetch(ctx, *row.url, dst, func(done, total int64) { p.set("fetching", done, total, 0) })
		if err != nil {
			return importOutcome{err: err}
		}
		src = importer.Source{Path: dst, Name: name}
	case row.filePath != nil:
		src = importer.Source{Path: *row.filePath, Name: deref(row.filename)}
	default:
		return importOutcome{err: &jobError{msg: "the import has neither a file nor a URL"}}
	}
	pool, err := h.j.d.Conns.Pool(ctx, row.conn)
	if err != nil {
		return importOutcome{err: err}
	}
	opts := importer.Options{
		Table:      row.destination,
		IfExists:   row.opts.IfExists,
		Format:     row.opts.Format,
		Layer:      row.opts.Layer,
		SourceSRID: row.opts.SourceSRID,
		TypeHints:  row.opts.TypeHints,
		MaxBytes:   h.j.cfg.MaxImportBytes,
		ImportID:   row.id,
		Logger:     log,
		Progress: func(pr importer.Progress) {
			p.set(pr.Phase, pr.BytesRead, pr.BytesTotal, pr.Rows)
		},
	}
	if g := row.opts.GeometryColumns; g != nil {
		opts.GeometryColumns = &importer.CSVGeometry{Latitude: g.Latitude, Longitude: g.Longitude, Column: g.Column}
	}
	if d := []rune(row.opts.CSVDelimiter); len(d) == 1 {
		opts.CSVDelimiter = d[0]
	}
	ictx, icancel := context.WithTimeout(ctx, h.j.cfg.ImportTimeout.D())
	defer icancel()
	res, err := importer.Import(ictx, pool, src, opts)
	if err == nil {
		// The last progress (done: every byte read) is saved, not left to
		// the watcher's next tick, so the finished import shows its bytes.
		if _, serr := h.saveProgress(ctx, row.id, &p); serr != nil {
			log.Warn("saving the final import progress", "err", serr)
		}
	}
	return importOutcome{res: res, err: err, timedOut: err != nil && ctx.Err() == nil && errors.Is(ictx.Err(), context.DeadlineExceeded)}
}

// saveProgress writes the latest progress and the heartbeat and returns
// the row's status ("" when the row is gone).
func (h *ImportHandler) saveProgress(ctx context.Context, id string, p *progress) (string, error) {
	phase, done, total, rows := p.get()
	return jobspec.Imports.Heartbeat(ctx, h.j.d.Meta, id, &jobspec.Progress{Phase: phase, BytesDone: done, Total: total, Rows: rows})
}

// succeed records the result, announces the change (invalidation, then a
// workspace event) and only then marks the import successful: a crash or
// a failed publish in between leads to a re-run, which finds the import
// applied (importer ledger) and announces it again.
func (h *ImportHandler) succeed(ctx context.Context, row *importRow, res importer.Result, log *slog.Logger) error {
	if !res.AlreadyApplied || row.result == nil {
		ir := ImportResult{Table: res.Table, Rows: res.Rows, GeometryType: res.GeometryType, SRID: res.SRID,
			SourceSRID: res.SourceSRID, Format: res.Format, Layer: res.Layer, InvalidFixed: res.InvalidFixed, Warnings: res.Warnings}
		if !res.AlreadyApplied {
			ir.BBox = res.BBox[:]
		}
		for _, c := range res.Columns {
			ir.Columns = append(ir.Columns, importedColumn{Name: c.Name, Type: c.Type, Source: c.Source})
		}
		js, _ := json.Marshal(ir)
		if _, err := h.j.d.Meta.Exec(ctx, `UPDATE imports SET result = $2, rows_done = $3, phase = 'done', updated_at = now()
			WHERE id = $1`, row.id, js, res.Rows); err != nil {
			return fmt.Errorf("saving the result of import %s: %w", row.id, err)
		}
	}
	if err := h.j.notify.Tables(ctx, row.conn, "import "+row.id, res.Table); err != nil {
		return err
	}
	if err := publishEvent(ctx, h.j.d.Broker, WorkspaceEvent{Connection: row.conn, Table: res.Table, ImportID: row.id}); err != nil {
		return err
	}
	// A cancel that came after the swap committed lost the race: the data
	// is in, so the import succeeded.
	if err := jobspec.Imports.Succeed(ctx, h.j.d.Meta, row.id, nil); err != nil {
		return err
	}
	h.removeUpload(row)
	return nil
}

// finish sets a final status (failure or cancelled) unless the row is
// already final, and removes the upload. It runs even when ctx is
// cancelled (shutdown).
func (h *ImportHandler) finish(ctx context.Context, row *importRow, status, msg string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := jobspec.Imports.Finish(ctx, h.j.d.Meta, row.id, status, msg); err != nil {
		log.Error("recording the import's final status", "status", status, "err", err)
		return
	}
	h.removeUpload(row)
}

// requeue puts a running import back to pending, to be retried.
func (h *ImportHandler) requeue(ctx context.Context, row *importRow, msg string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := jobspec.Imports.Requeue(ctx, h.j.d.Meta, row.id, msg); err != nil {
		h.log.Warn("requeueing import", "import_id", row.id, "err", err)
	}
}

func (h *ImportHandler) load(ctx context.Context, id string) (*importRow, error) {
	r := &importRow{}
	var opts []byte
	err := h.j.d.Meta.QueryRow(ctx, `SELECT i.id, c.name, i.destination, i.status, i.source_url, i.file_path,
			i.filename, i.options, i.attempts, i.result, i.error
		FROM imports i JOIN connections c ON c.id = i.connection_id WHERE i.id = $1`, id).Scan(
		&r.id, &r.conn, &r.destination, &r.status, &r.url, &r.filePath, &r.filename, &opts, &r.attempts, &r.result, &r.lastErr)
	if err != nil {
		return nil, fmt.Errorf("loading import %s: %w", id, err)
	}
	if len(opts) > 0 {
		if err := json.Unmarshal(opts, &r.opts); err != nil {
			return nil, fmt.Errorf("loading import %s: options: %w", id, err)
		}
	}
	return r, nil
}

// removeUpload deletes the import's uploaded file, if it lies in
// ImportDir (never anything else, whatever the row says).
func (h *ImportHandler) removeUpload(row *importRow) {
	if row.filePath == nil {
		return
	}
	dir, err1 := filepath.Abs(h.j.cfg.ImportDir)
	p, err2 := filepath.Abs(*row.filePath)
	if err1 != nil || err2 != nil {
		return
	}
	if rel, err := filepath.Rel(dir, p); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		h.log.Warn("removing uploaded file", "path", p, "err", err)
	}
}

// permanent reports whether err is about the job's input or options, so
// that retrying cannot help.
func permanent(err error) bool {
	var fe *FetchError
	var pe *pgconn.PgError
	var je *jobError
	switch {
	case errors.As(err, &je):
		return true
	case importer.IsInputError(err), errors.Is(err, importer.ErrInvalidOptions), errors.Is(err, importer.ErrTableExists),
		errors.Is(err, dataconn.ErrNotFound), errors.Is(err, dataconn.ErrInvalid):
		return true
	case errors.As(err, &fe):
		return fe.Permanent
	case errors.As(err, &pe):
		return permanentSQLState(pe.Code)
	}
	return false
}

// permanentSQLState: data exceptions, integrity and access rule
// violations, syntax errors, unsupported features fail the same way again;
// connection trouble, resource shortage, cancellation and serialization
// failures may not.
func permanentSQLState(code string) bool {
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "0A", "22", "23", "2B", "42", "44":
		return true
	}
	return false
}

// userMessage is the error text stored for the user: the input error as
// the engine words it, or a short description without internal details
// (those are in the worker's logs).
func userMessage(err error) string {
	var ie *importer.InputError
	var fe *FetchError
	var pe *pgconn.PgError
	var je *jobError
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &je):
		return je.msg
	case errors.As(err, &ie):
		return ie.Error()
	case errors.As(err, &fe):
		return fe.Error()
	case errors.Is(err, importer.ErrTableExists):
		return strings.TrimPrefix(innermost(err, importer.ErrTableExists), "importer: ") + " (set if_exists to replace or append)"
	case errors.Is(err, importer.ErrInvalidOptions):
		return strings.TrimPrefix(innermost(err, importer.ErrInvalidOptions), "importer: ")
	case errors.Is(err, dataconn.ErrNotFound):
		return "data connection not found"
	case errors.As(err, &pe):
		return fmt.Sprintf("database error: %s (SQLSTATE %s)", pe.Message, pe.Code)
	case errors.As(err, &ce):
		return "cannot connect to the data connection's database"
	}
	return "internal error (details are in the worker's logs)"
}

// innermost returns the message of the outermost error in err's chain
// whose text starts with the sentinel's text (the sentinel plus its
// detail, without the wrapping context).
func innermost(err, sentinel error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.HasPrefix(e.Error(), sentinel.Error()) {
			return e.Error()
		}
	}
	return err.Error()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
