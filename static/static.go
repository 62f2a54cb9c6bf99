// Package static holds Meridian's web assets, embedded in the binary: the
// source preview page (preview/), which the tiles engine serves at
// {prefix}/v3/maps/{conn}/preview, and the web apps the edge serves: the
// workspace (workspace/) at /, the accounts app (accounts/) at /acc/, the
// admin console (admin/) at /admin/ and the Builder (builder/) at /maps,
// /map/{id} and /data, with what they share in common/ (see WebApps).
// Each app is a page naming its bundle (dist/), which `make static` builds
// from the npm project in web/ (Preact, bundled by esbuild).
//
// The page uses MapLibre GL JS, which is not committed: `make static`
// copies its build (maplibre-gl.mjs, maplibre-gl-worker.mjs,
// maplibre-gl.css, LICENSE.txt) from the npm install in compat/ into
// preview/vendor/ before the Go build embeds it. Without those files the
// package still builds, and the page explains how to add them.
//
// The page is served as one self-contained document: MapLibre, its worker
// and its CSS travel inside it as JSON strings and are loaded from blob:
// URLs. The edge requires a token on every URL under the maps API, and a
// <script src> cannot send one; the page's own URL carries access_token.
package static

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"strings"
	"sync"
)

//go:embed preview workspace accounts admin common builder
var files embed.FS

// Files returns the embedded sources: preview/index.html,
// preview/preview.js and preview/vendor/… when built; workspace/,
// accounts/, admin/, builder/ (with their dist/ when built) and common/
// (served as WebApps).
func Files() fs.FS { return files }

// Page is a prebuilt HTML document.
type Page struct {
	// Body is the document.
	Body []byte
	// Gzip is Body compressed with gzip.
	Gzip []byte
	// ETag is a weak validator of Body (W/"…"), the same for Body and
	// Gzip.
	ETag string
	// MapLibre reports whether MapLibre GL JS is built in; without it the
	// page only explains how to build it.
	MapLibre bool
}

// vendorFiles are the MapLibre GL JS files `make static` copies.
const (
	vendorLib    = "preview/vendor/maplibre-gl.mjs"
	vendorWorker = "preview/vendor/maplibre-gl-worker.mjs"
	vendorCSS    = "preview/vendor/maplibre-gl.css"
)

// Preview returns the preview page, built once from the embedded files.
// The page holds no token and no data: its script reads both from its
// own URL and the maps API. The result is shared: do not modify it.
func Preview() (*Page, error) { return preview() }

// preview builds the page on first use; the embedded files never change,
// so neither does the result.
var preview = sync.OnceValues(func() (*Page, error) { return BuildPreview(files) })

// maplibre is what the page's script loads MapLibre GL JS from.
type maplibre struct {
	Lib    string `json:"lib"`
	Worker string `json:"worker"`
	CSS    string `json:"css"`
}

// BuildPreview builds the preview page from fsys, laid out as this
// package's files (preview/index.html, preview/preview.js and optionally
// the three preview/vendor/ files, all or none).
func BuildPreview(fsys fs.FS) (*Page, error) {
	tmplText, err := fs.ReadFile(fsys, "preview/index.html")
	if err != nil {
		return nil, fmt.Errorf("reading the preview page: %w", err)
	}
	script, err := fs.ReadFile(fsys, "preview/preview.js")
	if err != nil {
		return nil, fmt.Errorf("reading the preview script: %w", err)
	}
	// The script is inlined verbatim: it must not end its element.
	if bytes.Contains(bytes.ToLower(script), []byte("</script")) || bytes.Contains(script, []byte("<!--")) {
		return nil, errors.New("preview/preview.js contains </script or <!--, which cannot be inlined")
	}
	tmpl, err := template.New("preview").Parse(string(tmplText))
	if err != nil {
		return nil, fmt.Errorf("parsing the preview page: %w", err)
	}
	var m maplibre
	var found, missing []string
	for _, f := range []struct {
		name string
		dst  *string
	}{{vendorLib, &m.Lib}, {vendorWorker, &m.Worker}, {vendorCSS, &m.CSS}} {
		b, err := fs.ReadFile(fsys, f.name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, f.name)
			continue
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", f.name, err)
		}
		found = append(found, f.name)
		*f.dst = string(b)
	}
	var ml *maplibre
	switch {
	case len(missing) == 0:
		ml = &m
	case len(found) > 0:
		return nil, fmt.Errorf("incomplete MapLibre build: have %s, missing %s (run make static)",
			strings.Join(found, ", "), strings.Join(missing, ", "))
	}
	// html/template writes MapLibre as a JSON value in a <script>, with
	// "<", ">" and "&" escaped, so no file content can end the element.
	var body bytes.Buffer
	if err := tmpl.Execute(&body, struct {
		MapLibre *maplibre
		Script   template.JS
	}{ml, template.JS(script)}); err != nil {
		return nil, fmt.Errorf("building the preview page: %w", err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(body.Bytes())
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the preview page: %w", err)
	}
	sum := sha256.Sum256(body.Bytes())
	return &Page{
		Body:     body.Bytes(),
		Gzip:     gz.Bytes(),
		ETag:     `W/"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`,
		MapLibre: ml != nil,
	}, nil
}
