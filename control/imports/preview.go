package imports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/importpreview"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/internal/netguard"
)

// previewRequest is the JSON body of POST /api/v3/imports/preview for a
// URL (an upload sends the same fields as form fields).
type previewRequest struct {
	URL    string `json:"url"`
	Format string `json:"format,omitempty"`
	Layer  string `json:"layer,omitempty"`
	Rows   int    `json:"rows,omitempty"`
}

// Limits of a preview: what it reads and how long it may take.
const (
	previewTimeout  = 60 * time.Second
	previewMaxBytes = 1 << 30
)

// preview answers POST /api/v3/imports/preview: the file of an
// upload (multipart, part "file") or a URL (JSON {"url"}) described
// without importing (internal/importpreview). Needs the imports grant.
func (a *api) preview(w http.ResponseWriter, r *http.Request) error {
	if _, err := authenticate(r); err != nil {
		return err
	}
	limit := min(a.d.Jobs.MaxImportBytes, previewMaxBytes)
	if err := os.MkdirAll(a.d.Jobs.ImportDir, 0o700); err != nil {
		return fmt.Errorf("creating the import folder: %w", err)
	}
	stored := filepath.Join(a.d.Jobs.ImportDir, newID()+".preview")
	defer os.Remove(stored)
	ctx, cancel := context.WithTimeout(r.Context(), previewTimeout)
	defer cancel()

	var q previewRequest
	var name string
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		if r.ContentLength > limit+1<<20 {
			return tooLarge(limit)
		}
		mr, err := r.MultipartReader()
		if err != nil {
			return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "bad multipart body", Err: err}
		}
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "bad multipart body", Err: err}
			}
			if part.FileName() == "" && part.FormName() != "file" {
				b, _ := io.ReadAll(io.LimitReader(part, 4<<10))
				switch part.FormName() {
				case "format":
					q.Format = string(b)
				case "layer":
					q.Layer = string(b)
				case "rows":
					q.Rows, _ = strconv.Atoi(string(b))
				}
				continue
			}
			if name != "" {
				return httpapi.BadRequest("one file per preview")
			}
			name = filepath.Base(strings.ReplaceAll(part.FileName(), `\`, "/"))
			if name == "." || name == "/" || name == "" {
				name = "upload"
			}
			if _, err := storeUpload(stored, part, limit); err != nil {
				return err
			}
		}
		if name == "" {
			return httpapi.BadRequest("no file in the upload (a multipart part named file)")
		}
	} else {
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "body: want a JSON object {\"url\": ...} (or a multipart/form-data upload)", Err: err}
		}
		if q.URL == "" {
			return httpapi.BadRequest("url is required (or upload a file as multipart/form-data)")
		}
		if err := checkImportURL(q.URL, a.d.Jobs.AllowPrivate); err != nil {
			return err
		}
		var err error
		if name, err = a.fetchPreview(ctx, q.URL, stored, limit); err != nil {
			return err
		}
	}
	if q.Format = strings.ToLower(q.Format); q.Format != "" && !jobspec.Formats[q.Format] {
		return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: fmt.Sprintf("format %q: unknown", q.Format)}
	}
	p, err := importpreview.Describe(ctx, stored, importpreview.Options{Name: name, Format: q.Format, Layer: q.Layer, Rows: q.Rows})
	switch {
	case errors.Is(err, importpreview.ErrUnknownFormat):
		return &httpapi.Error{Status: http.StatusBadRequest, Code: "UNKNOWN_FORMAT", Msg: err.Error()}
	case errors.Is(err, importpreview.ErrUnreadable), errors.Is(err, importpreview.ErrNoLayer):
		return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_INPUT", Msg: name + ": " + err.Error()}
	case err != nil:
		return fmt.Errorf("previewing %s: %w", name, err)
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
	return nil
}

// fetchPreview downloads rawURL into dst (at most limit bytes), every
// connection checked by the one SSRF guard unless AllowPrivate; it
// returns the file's name for format detection.
func (a *api) fetchPreview(ctx context.Context, rawURL, dst string, limit int64) (string, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !a.d.Jobs.AllowPrivate {
		d.Control = netguard.DialControl
	}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil, ResponseHeaderTimeout: 30 * time.Second}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "url: " + err.Error()}
	}
	req.Header.Set("User-Agent", "meridian-import-preview/1")
	res, err := client.Do(req)
	if err != nil {
		var blocked *netguard.BlockedAddrError
		if errors.As(err, &blocked) {
			return "", &httpapi.Error{Status: http.StatusBadRequest, Code: "URL_NOT_ALLOWED", Msg: "url: " + blocked.Error()}
		}
		return "", &httpapi.Error{Status: http.StatusBadRequest, Code: "FETCH_FAILED", Msg: "url: fetching failed", Err: err}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", &httpapi.Error{Status: http.StatusBadRequest, Code: "FETCH_FAILED", Msg: fmt.Sprintf("url: the server answered %s", res.Status)}
	}
	if _, err := storeUpload(dst, res.Body, limit); err != nil {
		return "", err
	}
	if _, params, err := mime.ParseMediaType(res.Header.Get("Content-Disposition")); err == nil {
		if fn := path.Base(strings.ReplaceAll(params["filename"], `\`, "/")); fn != "" && fn != "." && fn != "/" {
			return fn, nil
		}
	}
	if b := path.Base(res.Request.URL.Path); b != "" && b != "." && b != "/" {
		return b, nil
	}
	return "download", nil
}
