package control

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/internal/netguard"
)

// JobsConfig configures the imports and batch SQL APIs.
type JobsConfig struct {
	// ImportDir is where uploaded files are stored until a worker imports
	// them (the worker deletes them). Control and worker nodes must see
	// the same folder at the same path: with several nodes, shared
	// storage (NFS, a shared volume). Default: <OS temp dir>/meridian-imports.
	ImportDir string `json:"import_dir,omitempty" env:"MERIDIAN_IMPORT_DIR"`
	// MaxUploadBytes refuses larger uploads with 413. Default: 10 GiB.
	MaxUploadBytes int64 `json:"max_upload_bytes,omitempty" env:"MERIDIAN_IMPORT_MAX_BYTES"`
	// AllowPrivate accepts import URLs naming loopback, private or
	// link-local addresses (the worker checks every address it connects
	// to with the same setting). Default: false.
	AllowPrivate bool `json:"allow_private,omitempty" env:"MERIDIAN_IMPORT_ALLOW_PRIVATE"`
	// UploadIdleTimeout abandons an upload when no byte arrived for this
	// long (the server's ReadTimeout does not apply to uploads). Default: 2m.
	UploadIdleTimeout config.Duration `json:"upload_idle_timeout,omitempty" env:"MERIDIAN_IMPORT_UPLOAD_IDLE_TIMEOUT"`
	// MaxSQLTimeout caps a batch SQL job's timeout_ms. Default: 24h.
	MaxSQLTimeout config.Duration `json:"max_sql_timeout,omitempty" env:"MERIDIAN_SQL_JOB_MAX_TIMEOUT"`
}

// SetDefaults fills zero fields.
func (c *JobsConfig) SetDefaults() {
	if c.ImportDir == "" {
		c.ImportDir = filepath.Join(os.TempDir(), "meridian-imports")
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = 10 << 30
	}
	if c.UploadIdleTimeout == 0 {
		c.UploadIdleTimeout = config.Duration(2 * time.Minute)
	}
	if c.MaxSQLTimeout == 0 {
		c.MaxSQLTimeout = config.Duration(24 * time.Hour)
	}
}

// Validate reports every problem in c.
func (c JobsConfig) Validate() error {
	var errs []error
	if c.MaxUploadBytes < 0 {
		errs = append(errs, errors.New("control max_upload_bytes: must be positive (MERIDIAN_IMPORT_MAX_BYTES)"))
	}
	if c.UploadIdleTimeout < 0 || c.MaxSQLTimeout < 0 {
		errs = append(errs, errors.New("control upload_idle_timeout, max_sql_timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// importOptions is the JSON kept in imports.options, the contract with
// the worker (internal/jobspec).
type importOptions = jobspec.ImportOptions

// importRequest is the body of POST /api/v3/imports (JSON), and the
// form fields of a multipart upload (geometry_columns and type_hints as
// JSON text there).
type importRequest struct {
	Connection  string `json:"connection"`
	URL         string `json:"url,omitempty"`
	Destination string `json:"destination"`
	// Overwrite is CARTO's flag: true means if_exists replace.
	Overwrite *bool `json:"overwrite,omitempty"`
	importOptions
}

var tableNameRE = regexp.MustCompile(`^(?:([A-Za-z_][A-Za-z0-9_]{0,62})\.)?([A-Za-z_][A-Za-z0-9_]{0,62})$`)

// normalize validates the request and returns the destination as
// "schema.table" in lower case, as the importer creates it.
func (q *importRequest) normalize() (string, error) {
	var errs []string
	if !grant.ValidConnectionName(q.Connection) {
		errs = append(errs, "connection: a connection name is required")
	}
	m := tableNameRE.FindStringSubmatch(q.Destination)
	dest := ""
	switch {
	case m == nil:
		errs = append(errs, "destination: want table or schema.table (letters, digits and _)")
	default:
		schema := strings.ToLower(m[1])
		if schema == "" {
			schema = "public"
		}
		name := strings.ToLower(m[2])
		if strings.HasPrefix(name, "_mi_") || strings.HasPrefix(name, "pg_") || strings.HasPrefix(schema, "pg_") || schema == "information_schema" {
			errs = append(errs, "destination: reserved name")
		}
		dest = schema + "." + name
	}
	if q.Overwrite != nil && *q.Overwrite && q.IfExists == "" {
		q.IfExists = "replace"
	}
	switch q.IfExists {
	case "", "fail", "replace", "append":
	default:
		errs = append(errs, "if_exists: want fail, replace or append")
	}
	if q.Format = strings.ToLower(q.Format); q.Format != "" && !jobspec.Formats[q.Format] {
		errs = append(errs, "format: want one of geojson, geojsonseq, csv, shapefile, gpkg, kml, kmz, fgb, gpx, topojson, gml")
	}
	if q.SourceSRID < 0 || q.SourceSRID > 999999 {
		errs = append(errs, "source_srid: want an EPSG code")
	}
	if g := q.GeometryColumns; g != nil {
		if (g.Latitude == "") != (g.Longitude == "") || (g.Latitude == "") == (g.Column == "") {
			errs = append(errs, "geometry_columns: set latitude and longitude, or column")
		}
	}
	if q.CSVDelimiter != "" && len([]rune(q.CSVDelimiter)) != 1 {
		errs = append(errs, "csv_delimiter: want one character")
	}
	if len(errs) > 0 {
		return "", apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: strings.Join(errs, "; ")}
	}
	return dest, nil
}

// checkImportURL refuses URLs the worker must not fetch: not http(s),
// and (unless allowPrivate) literal non-public addresses and localhost
// (internal/netguard). The worker checks every address it connects to
// as well (DNS names, redirects).
func checkImportURL(raw string, allowPrivate bool) error {
	err := netguard.CheckURL(raw, allowPrivate)
	var blocked *netguard.BlockedAddrError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, netguard.ErrBadURL):
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "url: want an absolute http or https URL"}
	case errors.As(err, &blocked):
		return apiError{Status: http.StatusBadRequest, Code: "URL_NOT_ALLOWED",
			Msg: fmt.Sprintf("url: %s is not a public address (%s); imports from loopback, private and link-local addresses are disabled", blocked.Addr, netguard.Kind(blocked.Addr))}
	default:
		return apiError{Status: http.StatusBadRequest, Code: "URL_NOT_ALLOWED", Msg: "url: " + err.Error()}
	}
}

// importJSON is an import as the API shows it.
type importJSON struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	Connection  string          `json:"connection"`
	Destination string          `json:"destination"`
	URL         string          `json:"url,omitempty"`
	Filename    string          `json:"filename,omitempty"`
	Options     json.RawMessage `json:"options"`
	Progress    importProgress  `json:"progress"`
	runState
}

type importProgress struct {
	// Phase is fetching, reading, finishing or done.
	Phase      string `json:"phase,omitempty"`
	BytesDone  int64  `json:"bytesDone"`
	BytesTotal *int64 `json:"bytesTotal,omitempty"`
	Rows       int64  `json:"rows"`
}

const importColumns = `i.id, i.org_id, c.name, i.destination, i.status, coalesce(i.source_url, ''), coalesce(i.filename, ''),
	coalesce(i.file_path, ''), i.options, coalesce(i.phase, ''), i.bytes_done, i.bytes_total, i.rows_done, i.attempts,
	coalesce(i.error, ''), i.result, i.created_at, i.updated_at, i.started_at, i.finished_at`

type importRecord struct {
	importJSON
	org, filePath string
}

func scanImport(row pgx.Row) (*importRecord, error) {
	var r importRecord
	var opts, result []byte
	err := row.Scan(&r.ID, &r.org, &r.Connection, &r.Destination, &r.Status, &r.URL, &r.Filename, &r.filePath, &opts,
		&r.Progress.Phase, &r.Progress.BytesDone, &r.Progress.BytesTotal, &r.Progress.Rows, &r.Attempts, &r.Error,
		&result, &r.CreatedAt, &r.UpdatedAt, &r.StartedAt, &r.FinishedAt)
	if err != nil {
		return nil, err
	}
	r.Options = opts
	r.settle(r.Status, result)
	return &r, nil
}

// createImport is POST /api/v3/imports: a multipart upload or a JSON
// request naming a URL.
func (s *Server) createImport(w http.ResponseWriter, r *http.Request) error {
	claims, err := s.authenticate(r, grant.APIImports)
	if err != nil {
		return err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		return s.createUpload(w, r, claims)
	}
	var q importRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(&q); err != nil {
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "body: want a JSON object (or a multipart/form-data upload)", Err: err}
	}
	if q.URL == "" {
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "url is required (or upload a file as multipart/form-data)"}
	}
	dest, err := q.normalize()
	if err != nil {
		return err
	}
	if err := claims.Allow(grant.APIImports, q.Connection, dest); err != nil {
		return noGrant(q.Connection, dest)
	}
	if err := checkImportURL(q.URL, s.cfg.Jobs.AllowPrivate); err != nil {
		return err
	}
	rec, err := s.insertImport(r.Context(), claims, &q, dest, newID(), "", "", nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, rec.importJSON)
	return nil
}

// createUpload streams a multipart upload's file part to ImportDir. The
// other fields (connection, destination, if_exists, format, layer,
// source_srid, csv_delimiter, geometry_columns and type_hints as JSON)
// may come as form fields or query parameters; when they precede the
// file, the grant is checked before anything is stored.
func (s *Server) createUpload(w http.ResponseWriter, r *http.Request, claims *grant.Claims) error {
	limit := s.cfg.Jobs.MaxUploadBytes
	if r.ContentLength > limit+1<<20 {
		return tooLarge(limit)
	}
	rc := http.NewResponseController(w)
	idle := s.cfg.Jobs.UploadIdleTimeout.D()
	rc.SetReadDeadline(time.Now().Add(idle)) // uploads outlive the server's ReadTimeout
	mr, err := r.MultipartReader()
	if err != nil {
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "bad multipart body", Err: err}
	}
	fields := map[string]string{}
	for k, v := range r.URL.Query() {
		if k != "access_token" && len(v) > 0 {
			fields[k] = v[0]
		}
	}
	id := newID()
	var (
		stored   string // path of the stored file
		filename string
		size     int64
	)
	defer func() {
		if stored != "" { // not handed to a worker
			os.Remove(stored)
		}
	}()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "bad multipart body", Err: err}
		}
		if part.FileName() == "" && part.FormName() != "file" {
			b, err := io.ReadAll(io.LimitReader(part, 64<<10+1))
			if err != nil {
				return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "reading form field " + part.FormName(), Err: err}
			}
			if len(b) > 64<<10 {
				return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "form field " + part.FormName() + " is too long"}
			}
			fields[part.FormName()] = string(b)
			continue
		}
		if stored != "" {
			return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "one file per import"}
		}
		if fields["connection"] != "" && fields["destination"] != "" {
			if _, _, err := s.uploadRequest(fields, claims); err != nil {
				return err // refused before storing anything
			}
		}
		filename = filepath.Base(strings.ReplaceAll(part.FileName(), `\`, "/"))
		if filename == "." || filename == "/" {
			filename = ""
		}
		if err := os.MkdirAll(s.cfg.Jobs.ImportDir, 0o700); err != nil {
			return fmt.Errorf("creating the import folder: %w", err)
		}
		stored = filepath.Join(s.cfg.Jobs.ImportDir, id+".upload")
		size, err = storeUpload(stored, &idleReader{r: part, rc: rc, idle: idle}, limit)
		if err != nil {
			return err
		}
	}
	if stored == "" {
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "no file in the upload (a multipart part named file)"}
	}
	rc.SetWriteDeadline(time.Now().Add(30 * time.Second)) // the upload may have outlasted WriteTimeout
	q, dest, err := s.uploadRequest(fields, claims)
	if err != nil {
		return err
	}
	rec, err := s.insertImport(r.Context(), claims, q, dest, id, stored, filename, &size)
	if err != nil {
		return err
	}
	stored = "" // the worker owns it now
	writeJSON(w, http.StatusCreated, rec.importJSON)
	return nil
}

// uploadRequest builds and checks the request from form fields.
func (s *Server) uploadRequest(f map[string]string, claims *grant.Claims) (*importRequest, string, error) {
	q := &importRequest{Connection: f["connection"], Destination: f["destination"]}
	q.IfExists, q.Format, q.Layer, q.CSVDelimiter = f["if_exists"], f["format"], f["layer"], f["csv_delimiter"]
	var errs []string
	if v := f["overwrite"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, "overwrite: want true or false")
		}
		q.Overwrite = &b
	}
	if v := f["source_srid"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, "source_srid: want an EPSG code")
		}
		q.SourceSRID = n
	}
	if v := f["geometry_columns"]; v != "" {
		if err := json.Unmarshal([]byte(v), &q.GeometryColumns); err != nil {
			errs = append(errs, `geometry_columns: want JSON such as {"latitude":"lat","longitude":"lon"} or {"column":"wkt"}`)
		}
	}
	if v := f["type_hints"]; v != "" {
		if err := json.Unmarshal([]byte(v), &q.TypeHints); err != nil {
			errs = append(errs, `type_hints: want JSON such as {"zip":"text"}`)
		}
	}
	if len(errs) > 0 {
		return nil, "", apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: strings.Join(errs, "; ")}
	}
	dest, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	if err := claims.Allow(grant.APIImports, q.Connection, dest); err != nil {
		return nil, "", noGrant(q.Connection, dest)
	}
	return q, dest, nil
}

func tooLarge(limit int64) apiError {
	return apiError{Status: http.StatusRequestEntityTooLarge, Code: "TOO_LARGE", Msg: fmt.Sprintf("file too large: the limit is %d bytes", limit)}
}

// storeUpload copies at most limit bytes of r to path.
func storeUpload(path string, r io.Reader, limit int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("storing the upload: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, limit+1))
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return n, apiError{Status: http.StatusRequestTimeout, Code: "TIMEOUT", Msg: "upload stalled", Err: err}
		}
		return n, apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "upload interrupted", Err: err}
	}
	if n > limit {
		return n, tooLarge(limit)
	}
	return n, nil
}

// idleReader pushes the connection's read deadline forward as data
// arrives, so that an upload may take as long as it needs while a stalled
// one is dropped after idle.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	last time.Time
}

func (ir *idleReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(ir.last) > time.Second {
		ir.last = now
		ir.rc.SetReadDeadline(now.Add(ir.idle))
	}
	return ir.r.Read(p)
}

// insertImport writes the imports row and publishes its job. A failed
// publish leaves the row pending with enqueued_at NULL: a worker's sweep
// publishes it again, so the import is not lost (and the client, which
// already sent its file, gets its 201).
func (s *Server) insertImport(ctx context.Context, claims *grant.Claims, q *importRequest, dest, id, filePath, filename string, size *int64) (*importRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout.D())
	defer cancel()
	connID, err := s.connectionID(ctx, claims, q.Connection)
	if err != nil {
		return nil, err
	}
	opts, _ := json.Marshal(q.importOptions)
	rec, err := scanImport(s.d.Meta.QueryRow(ctx, `WITH i AS (
			INSERT INTO imports (id, org_id, connection_id, destination, source_url, file_path, filename, options, bytes_total, created_by)
			VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), nullif($7, ''), $8, $9, $10) RETURNING *)
		SELECT `+importColumns+` FROM i JOIN connections c ON c.id = i.connection_id`,
		id, orgOf(claims), connID, dest, q.URL, filePath, filename, opts, size, claims.Subject))
	if err != nil {
		return nil, fmt.Errorf("recording import: %w", err)
	}
	s.enqueue(ctx, "imports", broker.TopicImports, id)
	return rec, nil
}

// enqueue publishes a job message; on failure it marks the row for the
// workers' sweep and logs.
func (s *Server) enqueue(ctx context.Context, table, topic, id string) {
	data, _ := json.Marshal(map[string]string{"id": id})
	var err error
	if s.d.Broker == nil {
		err = errors.New("no broker")
	} else {
		_, err = s.d.Broker.Publish(ctx, topic, data, nil)
	}
	if err != nil {
		s.d.Log.Warn("publishing job failed; a worker's sweep will pick it up", "topic", topic, "id", id, "err", err)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := s.d.Meta.Exec(ctx, `UPDATE `+table+` SET enqueued_at = NULL WHERE id = $1`, id); err != nil {
			s.d.Log.Error("marking job for the sweep", "id", id, "err", err)
		}
	}
}

// connectionID looks up a connection of the token's organization.
func (s *Server) connectionID(ctx context.Context, claims *grant.Claims, name string) (string, error) {
	var id string
	err := s.d.Meta.QueryRow(ctx, "SELECT id FROM connections WHERE name = $1 AND org_id = $2", name, orgOf(claims)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Msg: "connection " + name + " not found"}
	}
	if err != nil {
		return "", fmt.Errorf("looking up connection %s: %w", name, err)
	}
	return id, nil
}

// loadImport returns an import the token may see: 404 when it does not
// exist in the token's organization, 403 without a grant on its
// destination.
func (s *Server) loadImport(ctx context.Context, claims *grant.Claims, id string) (*importRecord, error) {
	rec, err := scanImport(s.d.Meta.QueryRow(ctx, `SELECT `+importColumns+`
		FROM imports i JOIN connections c ON c.id = i.connection_id WHERE i.id::text = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) || err == nil && rec.org != orgOf(claims) {
		return nil, apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Msg: "import " + id + " not found"}
	}
	if err != nil {
		return nil, fmt.Errorf("loading import %s: %w", id, err)
	}
	if err := claims.Allow(grant.APIImports, rec.Connection, rec.Destination); err != nil {
		return nil, noGrant(rec.Connection, rec.Destination)
	}
	return rec, nil
}

// getImport is GET /api/v3/imports/{id}.
func (s *Server) getImport(w http.ResponseWriter, r *http.Request) error {
	claims, err := s.authenticate(r, grant.APIImports)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout.D())
	defer cancel()
	rec, err := s.loadImport(ctx, claims, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec.importJSON)
	return nil
}

// listImports is GET /api/v3/imports: the organization's imports the
// token has grants for, newest first. Query: limit (default 50, at most
// 500), status, connection.
func (s *Server) listImports(w http.ResponseWriter, r *http.Request) error {
	claims, err := s.authenticate(r, grant.APIImports)
	if err != nil {
		return err
	}
	limit, err := listLimit(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout.D())
	defer cancel()
	q := r.URL.Query()
	rows, err := s.d.Meta.Query(ctx, `SELECT `+importColumns+`
		FROM imports i JOIN connections c ON c.id = i.connection_id
		WHERE i.org_id = $1 AND ($2 = '' OR i.status = $2) AND ($3 = '' OR c.name = $3)
		ORDER BY i.created_at DESC LIMIT $4`, orgOf(claims), q.Get("status"), q.Get("connection"), limit*4)
	if err != nil {
		return fmt.Errorf("listing imports: %w", err)
	}
	defer rows.Close()
	out := []importJSON{}
	for rows.Next() {
		rec, err := scanImport(rows)
		if err != nil {
			return fmt.Errorf("listing imports: %w", err)
		}
		if claims.Allow(grant.APIImports, rec.Connection, rec.Destination) == nil && len(out) < limit {
			out = append(out, rec.importJSON)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing imports: %w", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"imports": out})
	return nil
}

// cancelImport is POST /api/v3/imports/{id}/cancel: a pending or running
// import becomes cancelled (a running worker notices within its poll
// interval and stops; a swap that already committed stays, and the import
// then ends as success). 409 for a finished import.
func (s *Server) cancelImport(w http.ResponseWriter, r *http.Request) error {
	claims, err := s.authenticate(r, grant.APIImports)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout.D())
	defer cancel()
	rec, err := s.loadImport(ctx, claims, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.cancelRun(ctx, "imports", "import", rec.ID, rec.Status); err != nil {
		return err
	}
	if rec.Status == jobspec.StatusPending && rec.filePath != "" {
		os.Remove(rec.filePath) // no worker has it; the worker would remove it too
	}
	if rec, err = s.loadImport(ctx, claims, rec.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec.importJSON)
	return nil
}

func listLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 0, apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "limit: want 1 to 500"}
	}
	return n, nil
}

// newID returns a random UUID (version 4).
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
