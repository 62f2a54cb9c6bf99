// Package imports serves the imports API, /api/v3/imports (CARTO_API.md
// §4): a multipart upload or a URL becomes an imports row that a worker
// imports into a table of a connection (internal/jobspec is the contract
// with the workers); preview describes a file without importing it. Callers
// are API access tokens (control/authn) with the imports API and a grant
// on the destination; every lookup is scoped to the token's organization,
// and another organization's import answers 404.
package imports

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/internal/netguard"
)

// Deps are the imports API's collaborators and settings.
type Deps struct {
	Log  *slog.Logger
	Meta *pgxpool.Pool
	// Broker publishes imports to the workers; without it (or when a
	// publish fails) the workers' sweep picks them up.
	Broker broker.Broker
	// Jobs are the settings shared with the workers: ImportDir,
	// MaxImportBytes (the upload limit), AllowPrivate.
	Jobs jobspec.Config
	// UploadIdleTimeout abandons an upload when no byte arrived for this
	// long. Default: 2m.
	UploadIdleTimeout time.Duration
	// RequestTimeout bounds one request's database work. Default: 30s.
	RequestTimeout time.Duration
}

type api struct{ d Deps }

// Routes registers the imports API on mux.
func Routes(mux *http.ServeMux, d Deps) {
	d.Jobs.SetDefaults()
	if d.UploadIdleTimeout <= 0 {
		d.UploadIdleTimeout = 2 * time.Minute
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 30 * time.Second
	}
	a := &api{d}
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return httpapi.Handler(d.Log, fn)
	}
	mux.HandleFunc("POST /api/v3/imports", h(a.create))
	mux.HandleFunc("POST /api/v3/imports/preview", h(a.preview))
	mux.HandleFunc("GET /api/v3/imports", h(a.list))
	mux.HandleFunc("GET /api/v3/imports/{id}", h(a.get))
	mux.HandleFunc("POST /api/v3/imports/{id}/cancel", h(a.cancel))
}

// authenticate answers 401 or 403 unless the request's token allows the
// imports API (control/authn).
func authenticate(r *http.Request) (authn.Token, error) {
	return authn.APIToken(r, grant.APIImports)
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
		return "", httpapi.BadRequest("%s", strings.Join(errs, "; "))
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
		return httpapi.BadRequest("url: want an absolute http or https URL")
	case errors.As(err, &blocked):
		return &httpapi.Error{Status: http.StatusBadRequest, Code: "URL_NOT_ALLOWED",
			Msg: fmt.Sprintf("url: %s is not a public address (%s); imports from loopback, private and link-local addresses are disabled", blocked.Addr, netguard.Kind(blocked.Addr))}
	default:
		return &httpapi.Error{Status: http.StatusBadRequest, Code: "URL_NOT_ALLOWED", Msg: "url: " + err.Error()}
	}
}

// Import is an import as the API shows it.
type Import struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	Connection  string          `json:"connection"`
	Destination string          `json:"destination"`
	URL         string          `json:"url,omitempty"`
	Filename    string          `json:"filename,omitempty"`
	Options     json.RawMessage `json:"options"`
	Progress    Progress        `json:"progress"`
	jobspec.Run
}

// Progress is how far a worker has got with an import.
type Progress struct {
	// Phase is fetching, reading, finishing or done.
	Phase      string `json:"phase,omitempty"`
	BytesDone  int64  `json:"bytesDone"`
	BytesTotal *int64 `json:"bytesTotal,omitempty"`
	Rows       int64  `json:"rows"`
}

const importColumns = `i.id, c.name, i.destination, i.status, coalesce(i.source_url, ''), coalesce(i.filename, ''),
	coalesce(i.file_path, ''), i.options, coalesce(i.phase, ''), i.bytes_done, i.bytes_total, i.rows_done, i.attempts,
	coalesce(i.error, ''), i.result, i.created_at, i.updated_at, i.started_at, i.finished_at`

type importRecord struct {
	Import
	filePath string
}

func scanImport(row pgx.Row) (*importRecord, error) {
	var r importRecord
	var opts, result []byte
	err := row.Scan(&r.ID, &r.Connection, &r.Destination, &r.Status, &r.URL, &r.Filename, &r.filePath, &opts,
		&r.Progress.Phase, &r.Progress.BytesDone, &r.Progress.BytesTotal, &r.Progress.Rows, &r.Attempts, &r.Error,
		&result, &r.CreatedAt, &r.UpdatedAt, &r.StartedAt, &r.FinishedAt)
	if err != nil {
		return nil, err
	}
	r.Options = opts
	r.Settle(r.Status, result)
	return &r, nil
}

// create is POST /api/v3/imports: a multipart upload or a JSON
// request naming a URL.
func (a *api) create(w http.ResponseWriter, r *http.Request) error {
	claims, err := authenticate(r)
	if err != nil {
		return err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		return a.createUpload(w, r, claims)
	}
	var q importRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(&q); err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "body: want a JSON object (or a multipart/form-data upload)", Err: err}
	}
	if q.URL == "" {
		return httpapi.BadRequest("url is required (or upload a file as multipart/form-data)")
	}
	dest, err := q.normalize()
	if err != nil {
		return err
	}
	if err := claims.Allow(grant.APIImports, q.Connection, dest); err != nil {
		return authn.NoGrant(q.Connection, dest)
	}
	if err := checkImportURL(q.URL, a.d.Jobs.AllowPrivate); err != nil {
		return err
	}
	rec, err := a.insertImport(r.Context(), claims, &q, dest, newID(), "", "", nil)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, rec.Import)
	return nil
}

// createUpload streams a multipart upload's file part to ImportDir. The
// other fields (connection, destination, if_exists, format, layer,
// source_srid, csv_delimiter, geometry_columns and type_hints as JSON)
// may come as form fields or query parameters; when they precede the
// file, the grant is checked before anything is stored.
func (a *api) createUpload(w http.ResponseWriter, r *http.Request, claims authn.Token) error {
	limit := a.d.Jobs.MaxImportBytes
	if r.ContentLength > limit+1<<20 {
		return tooLarge(limit)
	}
	rc := http.NewResponseController(w)
	idle := a.d.UploadIdleTimeout
	rc.SetReadDeadline(time.Now().Add(idle)) // uploads outlive the server's ReadTimeout
	mr, err := r.MultipartReader()
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "bad multipart body", Err: err}
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
			return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "bad multipart body", Err: err}
		}
		if part.FileName() == "" && part.FormName() != "file" {
			b, err := io.ReadAll(io.LimitReader(part, 64<<10+1))
			if err != nil {
				return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "reading form field " + part.FormName(), Err: err}
			}
			if len(b) > 64<<10 {
				return httpapi.BadRequest("form field %s is too long", part.FormName())
			}
			fields[part.FormName()] = string(b)
			continue
		}
		if stored != "" {
			return httpapi.BadRequest("one file per import")
		}
		if fields["connection"] != "" && fields["destination"] != "" {
			if _, _, err := a.uploadRequest(fields, claims); err != nil {
				return err // refused before storing anything
			}
		}
		filename = filepath.Base(strings.ReplaceAll(part.FileName(), `\`, "/"))
		if filename == "." || filename == "/" {
			filename = ""
		}
		if err := os.MkdirAll(a.d.Jobs.ImportDir, 0o700); err != nil {
			return fmt.Errorf("creating the import folder: %w", err)
		}
		stored = filepath.Join(a.d.Jobs.ImportDir, id+".upload")
		size, err = storeUpload(stored, &idleReader{r: part, rc: rc, idle: idle}, limit)
		if err != nil {
			return err
		}
	}
	if stored == "" {
		return httpapi.BadRequest("no file in the upload (a multipart part named file)")
	}
	rc.SetWriteDeadline(time.Now().Add(30 * time.Second)) // the upload may have outlasted WriteTimeout
	q, dest, err := a.uploadRequest(fields, claims)
	if err != nil {
		return err
	}
	rec, err := a.insertImport(r.Context(), claims, q, dest, id, stored, filename, &size)
	if err != nil {
		return err
	}
	stored = "" // the worker owns it now
	httpapi.WriteJSON(w, http.StatusCreated, rec.Import)
	return nil
}

// uploadRequest builds and checks the request from form fields.
func (a *api) uploadRequest(f map[string]string, claims authn.Token) (*importRequest, string, error) {
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
		return nil, "", httpapi.BadRequest("%s", strings.Join(errs, "; "))
	}
	dest, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	if err := claims.Allow(grant.APIImports, q.Connection, dest); err != nil {
		return nil, "", authn.NoGrant(q.Connection, dest)
	}
	return q, dest, nil
}

func tooLarge(limit int64) *httpapi.Error {
	return &httpapi.Error{Status: http.StatusRequestEntityTooLarge, Code: "TOO_LARGE", Msg: fmt.Sprintf("file too large: the limit is %d bytes", limit)}
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
			return n, &httpapi.Error{Status: http.StatusRequestTimeout, Code: "TIMEOUT", Msg: "upload stalled", Err: err}
		}
		return n, &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "upload interrupted", Err: err}
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
func (a *api) insertImport(ctx context.Context, claims authn.Token, q *importRequest, dest, id, filePath, filename string, size *int64) (*importRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, a.d.RequestTimeout)
	defer cancel()
	opts, _ := json.Marshal(q.importOptions)
	rec, err := scanImport(a.d.Meta.QueryRow(ctx, `WITH i AS (
			INSERT INTO imports (id, org_id, connection_id, destination, source_url, file_path, filename, options, bytes_total, created_by)
			SELECT $1, $2, c.id, $4, nullif($5, ''), nullif($6, ''), nullif($7, ''), $8::jsonb, $9::bigint, $10
			FROM connections c WHERE c.name = $3 AND c.org_id = $2 RETURNING *)
		SELECT `+importColumns+` FROM i JOIN connections c ON c.id = i.connection_id`,
		id, claims.OrgID, q.Connection, dest, q.URL, filePath, filename, opts, size, claims.Subject))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, httpapi.NotFound("connection " + q.Connection) // none of this organization's
	}
	if err != nil {
		return nil, fmt.Errorf("recording import: %w", err)
	}
	if err := jobspec.Imports.Enqueue(ctx, a.d.Meta, a.d.Broker, id); err != nil {
		a.d.Log.Warn("publishing the import failed; a worker's sweep will pick it up", "id", id, "err", err)
	}
	return rec, nil
}

// load authenticates the request and returns the import of its path
// ({id}): 404 when it does not exist in the token's organization (another
// organization's is a 404 as a missing one is), 403 without a grant on its
// destination.
func (a *api) load(ctx context.Context, r *http.Request) (*importRecord, error) {
	claims, err := authenticate(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	rec, err := scanImport(a.d.Meta.QueryRow(ctx, `SELECT `+importColumns+`
		FROM imports i JOIN connections c ON c.id = i.connection_id WHERE i.id = $1 AND i.org_id = $2`, id, claims.OrgID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, httpapi.NotFound("import " + id)
	}
	if err != nil {
		return nil, fmt.Errorf("loading import %s: %w", id, err)
	}
	if err := claims.Allow(grant.APIImports, rec.Connection, rec.Destination); err != nil {
		return nil, authn.NoGrant(rec.Connection, rec.Destination)
	}
	return rec, nil
}

// get is GET /api/v3/imports/{id}.
func (a *api) get(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.d.RequestTimeout)
	defer cancel()
	rec, err := a.load(ctx, r)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, rec.Import)
	return nil
}

// list is GET /api/v3/imports: the organization's imports the
// token has grants for, newest first. Query: limit (default 50, at most
// 500), status, connection.
func (a *api) list(w http.ResponseWriter, r *http.Request) error {
	claims, err := authenticate(r)
	if err != nil {
		return err
	}
	limit, err := httpapi.Limit(r, 50, 500)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.RequestTimeout)
	defer cancel()
	q := r.URL.Query()
	rows, err := a.d.Meta.Query(ctx, `SELECT `+importColumns+`
		FROM imports i JOIN connections c ON c.id = i.connection_id
		WHERE i.org_id = $1 AND ($2 = '' OR i.status = $2) AND ($3 = '' OR c.name = $3)
		ORDER BY i.created_at DESC LIMIT $4`, claims.OrgID, q.Get("status"), q.Get("connection"), limit*4)
	if err != nil {
		return fmt.Errorf("listing imports: %w", err)
	}
	defer rows.Close()
	out := []Import{}
	for rows.Next() {
		rec, err := scanImport(rows)
		if err != nil {
			return fmt.Errorf("listing imports: %w", err)
		}
		if claims.Allow(grant.APIImports, rec.Connection, rec.Destination) == nil && len(out) < limit {
			out = append(out, rec.Import)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing imports: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"imports": out})
	return nil
}

// cancel is POST /api/v3/imports/{id}/cancel: a pending or running
// import becomes cancelled (a running worker notices within its poll
// interval and stops; a swap that already committed stays, and the import
// then ends as success). 409 for a finished import.
func (a *api) cancel(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.d.RequestTimeout)
	defer cancel()
	rec, err := a.load(ctx, r)
	if err != nil {
		return err
	}
	ok, err := jobspec.Imports.Cancel(ctx, a.d.Meta, rec.ID)
	if err != nil {
		return err
	}
	if !ok {
		return httpapi.Conflict("import already finished with status " + rec.Status)
	}
	if rec.Status == jobspec.StatusPending && rec.filePath != "" {
		os.Remove(rec.filePath) // no worker has it; the worker would remove it too
	}
	if rec, err = a.load(ctx, r); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, rec.Import)
	return nil
}

// newID returns a random UUID (version 4).
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
