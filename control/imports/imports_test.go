package imports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/control/imports"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokertest"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/jobspec"
)

var (
	importsAll   = []grant.API{grant.APIImports}
	placesGrant  = grant.Grant{Connection: "local", Source: "public.places"}
	schemaGrant  = grant.Grant{Connection: "local", Source: "public.*"}
	otherGrant   = grant.Grant{Connection: "local", Source: "public.other"}
	urlImportReq = map[string]any{"connection": "local", "destination": "places", "url": "https://example.com/places.geojson"}
)

// The imports API answers 401 without a valid token and 403 without the
// imports API or a grant on the destination, in JSON, and stores nothing
// when it refuses an upload.
func TestImportsAuth(t *testing.T) {
	e := controltest.Start(t, nil)
	good := e.Token(t, importsAll, placesGrant)
	noAPI := e.Token(t, []grant.API{grant.APIMaps, grant.APISQL}, placesGrant)
	noGrant := e.Token(t, importsAll, otherGrant)
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"garbage token", "abc.def.ghi", http.StatusUnauthorized},
		{"tampered token", good + "x", http.StatusUnauthorized},
		{"without the imports API", noAPI, http.StatusForbidden},
		{"without a grant on the destination", noGrant, http.StatusForbidden},
		{"granted", good, http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.PostJSON(t, "/api/v3/imports", tt.token, urlImportReq, nil)
			if code != tt.want {
				t.Errorf("JSON create = %d %v, want %d", code, body, tt.want)
			}
			if code >= 400 && (body["error"] == nil || body["status"] != float64(code)) {
				t.Errorf("error body = %v, want {error, status: %d}", body, code)
			}
			ct, mp := controltest.Multipart(t, [][2]string{{"connection", "local"}, {"destination", "public.places"}}, "p.geojson", []byte(`{"type":"FeatureCollection","features":[]}`))
			code, body = e.Call(t, "POST", "/api/v3/imports", tt.token, ct, mp, nil)
			if code != tt.want {
				t.Errorf("upload = %d %v, want %d", code, body, tt.want)
			}
			if tt.want == http.StatusUnauthorized || tt.name == "without the imports API" {
				for _, p := range []string{"/api/v3/imports", "/api/v3/imports/00000000-0000-0000-0000-000000000000"} {
					if code, _ := e.Call(t, "GET", p, tt.token, "", nil, nil); code != tt.want {
						t.Errorf("GET %s = %d, want %d", p, code, tt.want)
					}
				}
			}
		})
	}
	// Refused uploads left no file.
	files := controltest.Files(t, e.ImportDir)
	if len(files) != 1 {
		t.Errorf("import folder holds %v, want only the granted upload", files)
	}
	// A schema grant covers any table of it.
	if code, body := e.PostJSON(t, "/api/v3/imports", e.Token(t, importsAll, schemaGrant), urlImportReq, nil); code != http.StatusCreated {
		t.Errorf("create with a public.* grant = %d %v, want 201", code, body)
	}
}

// A JSON create records a pending import with its options and publishes
// {"id"} on the imports topic; GET shows it.
func TestCreateURLImport(t *testing.T) {
	e := controltest.Start(t, nil)
	msgs := brokertest.Subscribe(t, e.Broker, broker.TopicImports)
	tok := e.Token(t, importsAll, placesGrant)
	req := map[string]any{"connection": "local", "destination": "Places", "url": "https://example.com/data/places.csv",
		"if_exists": "replace", "format": "CSV", "source_srid": 3857, "csv_delimiter": ";",
		"geometry_columns": map[string]string{"latitude": "y", "longitude": "x"}, "type_hints": map[string]string{"zip": "text"}}
	var got imports.Import
	code, body := e.PostJSON(t, "/api/v3/imports", tok, req, &got)
	if code != http.StatusCreated {
		t.Fatalf("create = %d %v, want 201", code, body)
	}
	if got.Status != "pending" || got.Destination != "public.places" || got.Connection != "local" || got.URL != req["url"] {
		t.Errorf("created = %+v, want pending public.places on local with the URL", got)
	}
	var opts jobspec.ImportOptions
	json.Unmarshal(got.Options, &opts)
	want := jobspec.ImportOptions{IfExists: "replace", Format: "csv", SourceSRID: 3857, CSVDelimiter: ";",
		GeometryColumns: &jobspec.GeometryColumns{Latitude: "y", Longitude: "x"}, TypeHints: map[string]string{"zip": "text"}}
	if g, w := mustJSON(opts), mustJSON(want); g != w {
		t.Errorf("options = %s, want %s", g, w)
	}
	m := brokertest.Receive(t, msgs, 10*time.Second)
	if string(m.Data) != `{"id":"`+got.ID+`"}` {
		t.Errorf("message = %s, want {\"id\":%q}", m.Data, got.ID)
	}
	var again imports.Import
	if code, body := e.Call(t, "GET", "/api/v3/imports/"+got.ID, tok, "", nil, &again); code != 200 || again.ID != got.ID || again.Status != "pending" {
		t.Errorf("GET = %d %v, want the pending import", code, body)
	}
	var enq bool
	e.DB.Pool.QueryRow(context.Background(), "SELECT enqueued_at IS NOT NULL FROM imports WHERE id = $1", got.ID).Scan(&enq)
	if !enq {
		t.Error("enqueued_at is NULL after a successful publish")
	}
	// CARTO's overwrite flag means replace.
	var ow imports.Import
	e.PostJSON(t, "/api/v3/imports", tok, map[string]any{"connection": "local", "destination": "places", "url": "https://example.com/x.csv", "overwrite": true}, &ow)
	if !strings.Contains(string(ow.Options), `"if_exists":"replace"`) {
		t.Errorf("overwrite:true options = %s, want if_exists replace", ow.Options)
	}
}

// Bad requests are 400 with a message naming the field.
func TestCreateImportValidation(t *testing.T) {
	e := controltest.Start(t, nil)
	tok := e.Token(t, importsAll, grant.Grant{Connection: "local", Source: "*"})
	tests := []struct {
		name string
		req  map[string]any
		code int
		want string
	}{
		{"no url", map[string]any{"connection": "local", "destination": "t"}, 400, "url is required"},
		{"ftp url", map[string]any{"connection": "local", "destination": "t", "url": "ftp://example.com/x"}, 400, "http or https"},
		{"bad table", map[string]any{"connection": "local", "destination": "a b", "url": "https://example.com/x"}, 400, "destination"},
		{"reserved table", map[string]any{"connection": "local", "destination": "_mi_x", "url": "https://example.com/x"}, 400, "reserved"},
		{"bad if_exists", map[string]any{"connection": "local", "destination": "t", "url": "https://example.com/x", "if_exists": "merge"}, 400, "if_exists"},
		{"bad format", map[string]any{"connection": "local", "destination": "t", "url": "https://example.com/x", "format": "xls"}, 400, "format"},
		{"half geometry columns", map[string]any{"connection": "local", "destination": "t", "url": "https://example.com/x", "geometry_columns": map[string]string{"latitude": "y"}}, 400, "geometry_columns"},
		{"unknown connection", map[string]any{"connection": "nope", "destination": "t", "url": "https://example.com/x"}, 403, "no grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.PostJSON(t, "/api/v3/imports", tok, tt.req, nil)
			if msg, _ := body["error"].(string); code != tt.code || !strings.Contains(msg, tt.want) {
				t.Errorf("create = %d %v, want %d with %q", code, body, tt.code, tt.want)
			}
		})
	}
	// A "*" grant on a connection that does not exist: 404.
	tok2 := e.Token(t, importsAll, grant.Grant{Connection: "ghost", Source: "*"})
	if code, body := e.PostJSON(t, "/api/v3/imports", tok2, map[string]any{"connection": "ghost", "destination": "t", "url": "https://example.com/x"}, nil); code != 404 {
		t.Errorf("unknown connection = %d %v, want 404", code, body)
	}
}

// URLs naming loopback, private and link-local addresses are refused
// unless AllowPrivate.
func TestImportURLPrivateAddresses(t *testing.T) {
	urls := []string{
		"http://127.0.0.1:8080/x.csv",
		"http://127.1.2.3/x.csv",
		"http://localhost/x.csv",
		"http://LOCALHOST./x.csv",
		"http://[::1]/x.csv",
		"http://[::ffff:127.0.0.1]/x.csv",
		"http://10.1.2.3/x.csv",
		"http://192.168.1.1/x.csv",
		"http://169.254.169.254/latest/meta-data",
		"http://0.0.0.0/x.csv",
		"http://100.64.0.1/x.csv",
		// the prefixes only the workers' copy knew before internal/netguard
		"http://[64:ff9b::7f00:1]/x.csv", // NAT64 of 127.0.0.1
		"http://[2002:a00:1::]/x.csv",    // 6to4 of 10.0.0.1
		"http://192.0.2.1/x.csv",         // documentation
		"http://[2001:db8::1]/x.csv",     // documentation
	}
	for _, allow := range []bool{false, true} {
		e := controltest.Start(t, func(c *control.Config, _ *control.Deps) { c.Jobs.AllowPrivate = allow })
		tok := e.Token(t, importsAll, placesGrant)
		for _, u := range urls {
			code, body := e.PostJSON(t, "/api/v3/imports", tok, map[string]any{"connection": "local", "destination": "places", "url": u}, nil)
			want := http.StatusBadRequest
			if allow {
				want = http.StatusCreated
			}
			if code != want {
				t.Errorf("allow_private=%v: %s = %d %v, want %d", allow, u, code, body, want)
			}
			if msg, _ := body["error"].(string); !allow && !strings.Contains(msg, "not") {
				t.Errorf("refusal of %s says %q, want a clear reason", u, msg)
			}
		}
	}
}

// A multipart upload is streamed to the import folder as sent, with its
// options from the form; the worker gets its path.
func TestUpload(t *testing.T) {
	e := controltest.Start(t, nil)
	msgs := brokertest.Subscribe(t, e.Broker, broker.TopicImports)
	tok := e.Token(t, importsAll, placesGrant)
	content, err := os.ReadFile(controltest.Testdata(t, "fixtures/csv/ne_110m_populated_places.csv"))
	if err != nil {
		t.Fatal(err)
	}
	ct, body := controltest.Multipart(t, [][2]string{{"connection", "local"}, {"destination", "places"}, {"if_exists", "append"},
		{"geometry_columns", `{"latitude":"latitude","longitude":"longitude"}`}}, `C:\data\ne_110m_populated_places.csv`, content)
	var got imports.Import
	code, raw := e.Call(t, "POST", "/api/v3/imports", tok, ct, body, &got)
	if code != http.StatusCreated {
		t.Fatalf("upload = %d %v, want 201", code, raw)
	}
	if got.Filename != "ne_110m_populated_places.csv" || got.Progress.BytesTotal == nil || *got.Progress.BytesTotal != int64(len(content)) {
		t.Errorf("upload = filename %q, bytesTotal %v, want ne_110m_populated_places.csv, %d", got.Filename, got.Progress.BytesTotal, len(content))
	}
	var path string
	e.DB.Pool.QueryRow(context.Background(), "SELECT file_path FROM imports WHERE id = $1", got.ID).Scan(&path)
	stored, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(stored, content) {
		t.Errorf("stored file %s: %v, %d bytes, want the %d bytes sent", path, err, len(stored), len(content))
	}
	if !strings.Contains(string(got.Options), `"latitude":"latitude"`) || !strings.Contains(string(got.Options), `"if_exists":"append"`) {
		t.Errorf("options = %s, want the form's", got.Options)
	}
	brokertest.Receive(t, msgs, 10*time.Second)

	// Fields may also come after the file, or as query parameters.
	ct, body = controltest.Multipart(t, nil, "p.csv", content)
	if code, raw := e.Call(t, "POST", "/api/v3/imports?connection=local&destination=places", tok, ct, body, nil); code != http.StatusCreated {
		t.Errorf("upload with query parameters = %d %v, want 201", code, raw)
	}
	// No file: 400.
	ct, body = controltest.Multipart(t, [][2]string{{"connection", "local"}, {"destination", "places"}}, "", nil)
	if code, raw := e.Call(t, "POST", "/api/v3/imports", tok, ct, body, nil); code != http.StatusBadRequest {
		t.Errorf("upload without a file = %d %v, want 400", code, raw)
	}
}

// Uploads beyond MaxImportBytes get 413 (by Content-Length, or while
// streaming a chunked body) and leave nothing behind.
func TestUploadTooLarge(t *testing.T) {
	e := controltest.Start(t, func(c *control.Config, _ *control.Deps) { c.Jobs.MaxImportBytes = 10000 })
	tok := e.Token(t, importsAll, placesGrant)
	fields := [][2]string{{"connection", "local"}, {"destination", "places"}}
	tests := []struct {
		name    string
		size    int
		chunked bool
		want    int
	}{
		{"at the limit", 10000, false, http.StatusCreated},
		{"over, by Content-Length", 2 << 20, false, http.StatusRequestEntityTooLarge},
		{"over, chunked", 20000, true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body := controltest.Multipart(t, fields, "big.csv", bytes.Repeat([]byte("x"), tt.size))
			var r io.Reader = body
			if tt.chunked {
				r = io.MultiReader(body) // hides the length: sent chunked
			}
			code, raw := e.Call(t, "POST", "/api/v3/imports", tok, ct, r, nil)
			if code != tt.want {
				t.Errorf("upload of %d bytes = %d %v, want %d", tt.size, code, raw, tt.want)
			}
			if msg, _ := raw["error"].(string); code == 413 && !strings.Contains(msg, "10000") {
				t.Errorf("413 message %q does not name the limit", msg)
			}
		})
	}
	var n int
	e.DB.Pool.QueryRow(context.Background(), "SELECT count(*) FROM imports").Scan(&n)
	if files := controltest.Files(t, e.ImportDir); n != 1 || len(files) != 1 {
		t.Errorf("%d imports and files %v, want only the one at the limit", n, files)
	}
}

// List shows the token's imports newest first; cancel makes a pending
// import cancelled (and drops its upload), and a second cancel is 409.
func TestListAndCancel(t *testing.T) {
	e := controltest.Start(t, nil)
	tok := e.Token(t, importsAll, placesGrant)
	other := e.Token(t, importsAll, otherGrant)
	var a, b imports.Import
	e.PostJSON(t, "/api/v3/imports", tok, urlImportReq, &a)
	ct, body := controltest.Multipart(t, [][2]string{{"connection", "local"}, {"destination", "places"}}, "p.geojson", []byte("{}"))
	e.Call(t, "POST", "/api/v3/imports", tok, ct, body, &b)
	e.PostJSON(t, "/api/v3/imports", other, map[string]any{"connection": "local", "destination": "other", "url": "https://example.com/o.csv"}, nil)

	var list struct{ Imports []imports.Import }
	if code, raw := e.Call(t, "GET", "/api/v3/imports", tok, "", nil, &list); code != 200 || len(list.Imports) != 2 ||
		list.Imports[0].ID != b.ID || list.Imports[1].ID != a.ID {
		t.Errorf("list = %d %v, want [%s %s] (the other table's import hidden)", code, raw, b.ID, a.ID)
	}
	if code, _ := e.Call(t, "GET", "/api/v3/imports/"+a.ID, other, "", nil, nil); code != http.StatusForbidden {
		t.Errorf("GET another table's import = %d, want 403", code)
	}
	if code, _ := e.Call(t, "POST", "/api/v3/imports/"+a.ID+"/cancel", other, "", nil, nil); code != http.StatusForbidden {
		t.Errorf("cancel another table's import = %d, want 403", code)
	}
	var c imports.Import
	if code, raw := e.Call(t, "POST", "/api/v3/imports/"+b.ID+"/cancel", tok, "", nil, &c); code != 200 || c.Status != "cancelled" || c.FinishedAt == nil {
		t.Errorf("cancel = %d %v, want 200 cancelled", code, raw)
	}
	if files := controltest.Files(t, e.ImportDir); len(files) != 0 {
		t.Errorf("cancelled upload still stored: %v", files)
	}
	if code, raw := e.Call(t, "POST", "/api/v3/imports/"+b.ID+"/cancel", tok, "", nil, nil); code != http.StatusConflict {
		t.Errorf("second cancel = %d %v, want 409", code, raw)
	}
	if code, _ := e.Call(t, "GET", "/api/v3/imports/nope", tok, "", nil, nil); code != http.StatusNotFound {
		t.Errorf("GET unknown import = %d, want 404", code)
	}
	if code, _ := e.Call(t, "GET", "/api/v3/imports?status=cancelled", tok, "", nil, &list); code != 200 || len(list.Imports) != 1 {
		t.Errorf("list status=cancelled = %d, %d imports, want 1", code, len(list.Imports))
	}
}

// When the broker is down, the import is still recorded (201), marked
// for the workers' sweep (enqueued_at NULL) rather than lost.
func TestCreateImportBrokerDown(t *testing.T) {
	e := controltest.Start(t, nil)
	tok := e.Token(t, importsAll, placesGrant)
	e.Broker.Close()
	var got imports.Import
	if code, raw := e.PostJSON(t, "/api/v3/imports", tok, urlImportReq, &got); code != http.StatusCreated {
		t.Fatalf("create with the broker down = %d %v, want 201", code, raw)
	}
	var swept bool
	e.DB.Pool.QueryRow(context.Background(), "SELECT status = 'pending' AND enqueued_at IS NULL FROM imports WHERE id = $1", got.ID).Scan(&swept)
	if !swept {
		t.Error("import not left pending with enqueued_at NULL for the sweep")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
