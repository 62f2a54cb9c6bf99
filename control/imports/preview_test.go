package imports_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/internal/importpreview"
)

// POST /api/v3/imports/preview describes an upload or a URL without
// importing it; bad input gets a clear 400.
func TestImportPreview(t *testing.T) {
	shp, err := os.ReadFile(controltest.Testdata(t, "fixtures/shapefile/ne_110m_admin_0_countries.zip"))
	if err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile(controltest.Testdata(t, "fixtures/csv/us_airports_datagov.csv"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(csv)
	}))
	defer srv.Close()

	e := controltest.Start(t, func(c *control.Config, _ *control.Deps) { c.Jobs.AllowPrivate = false })
	tok := e.Token(t, importsAll, placesGrant)

	// An upload: a zipped shapefile.
	ct, body := controltest.Multipart(t, [][2]string{{"rows", "2"}}, "countries.zip", shp)
	var p importpreview.Preview
	if code, raw := e.Call(t, "POST", "/api/v3/imports/preview", tok, ct, body, &p); code != http.StatusOK {
		t.Fatalf("preview of an upload = %d %v", code, raw)
	}
	if p.Format != "shapefile" || len(p.Layers) != 1 || p.Layers[0].Features != 177 || p.Geometry.Kind != "native" ||
		len(p.Rows) != 2 || len(p.Columns) < 10 || p.Rows[0]["geometry"] == nil {
		t.Errorf("preview = %+v", p)
	}
	var n int
	e.DB.Pool.QueryRow(t.Context(), "SELECT count(*) FROM imports").Scan(&n)
	if n != 0 {
		t.Errorf("%d imports rows after a preview, want none", n)
	}

	// Bad input.
	for _, tt := range []struct {
		name, file string
		content    []byte
		code       string
	}{
		{"corrupt", "broken.fgb", []byte("fgb\x03garbage, not a FlatGeobuf"), "BAD_INPUT"},
		{"unknown format", "notes.xyz", []byte("hello"), "UNKNOWN_FORMAT"},
	} {
		ct, body := controltest.Multipart(t, nil, tt.file, tt.content)
		code, raw := e.Call(t, "POST", "/api/v3/imports/preview", tok, ct, body, nil)
		if msg, _ := raw["error"].(string); code != http.StatusBadRequest || raw["code"] != tt.code || msg == "" {
			t.Errorf("%s: %d %v, want 400 %s with a message", tt.name, code, raw, tt.code)
		}
	}

	// A URL on a private address is refused, by literal address and by name.
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	for _, u := range []string{srv.URL + "/a.csv", "http://localhost:" + port + "/a.csv"} {
		code, raw := e.PostJSON(t, "/api/v3/imports/preview", tok, map[string]any{"url": u}, nil)
		if code != http.StatusBadRequest || raw["code"] != "URL_NOT_ALLOWED" {
			t.Errorf("preview of %s = %d %v, want 400 URL_NOT_ALLOWED", u, code, raw)
		}
	}
	// Without a token: 401.
	if code, _ := e.PostJSON(t, "/api/v3/imports/preview", "", map[string]any{"url": srv.URL}, nil); code != http.StatusUnauthorized {
		t.Errorf("preview without a token = %d, want 401", code)
	}

	// With AllowPrivate, the URL (a CSV with latitude/longitude) is read.
	e2 := controltest.Start(t, func(c *control.Config, _ *control.Deps) { c.Jobs.AllowPrivate = true })
	tok2 := e2.Token(t, importsAll, placesGrant)
	var q importpreview.Preview
	if code, raw := e2.PostJSON(t, "/api/v3/imports/preview", tok2, map[string]any{"url": srv.URL + "/airports.csv"}, &q); code != http.StatusOK {
		t.Fatalf("preview of a URL = %d %v", code, raw)
	}
	if q.Format != "csv" || q.Layers[0].Features != 3376 || q.Geometry.Kind != "latlon" || q.Geometry.Latitude != "latitude" || len(q.Rows) != 10 {
		t.Errorf("URL preview = %+v", q)
	}
}
