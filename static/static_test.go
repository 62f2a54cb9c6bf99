package static

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// pageFS returns the real page and script plus the given vendor files.
func pageFS(t *testing.T, vendor map[string]string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	for _, name := range []string{"preview/index.html", "preview/preview.js"} {
		b, err := fs.ReadFile(files, name)
		if err != nil {
			t.Fatal(err)
		}
		m[name] = &fstest.MapFile{Data: b}
	}
	for name, data := range vendor {
		m["preview/vendor/"+name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

const marker = "window.MERIDIAN_MAPLIBRE = "

// inlined returns the MapLibre files as the page's script will see them.
func inlined(t *testing.T, body []byte) map[string]string {
	t.Helper()
	_, rest, ok := bytes.Cut(body, []byte(marker))
	if !ok {
		return nil
	}
	js, _, ok := bytes.Cut(rest, []byte(";</script>"))
	if !ok {
		t.Fatalf("the MapLibre value does not end with ;</script>")
	}
	var got map[string]string
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("the inlined MapLibre value is not JSON: %v", err)
	}
	return got
}

func TestBuildPreview(t *testing.T) {
	// Vendor files that would break out of a <script> if copied verbatim.
	hostile := map[string]string{
		"maplibre-gl.mjs":        "export const a = '</script><script>alert(1)</script>';",
		"maplibre-gl-worker.mjs": "/* <!-- */ self.onmessage = () => {}; // </SCRIPT>",
		"maplibre-gl.css":        ".x { content: '</style>' } </script>",
	}
	tests := []struct {
		name         string
		vendor       map[string]string
		wantMapLibre bool
		wantErr      string
	}{
		{name: "without MapLibre", vendor: nil},
		{name: "with MapLibre", vendor: hostile, wantMapLibre: true},
		{name: "incomplete MapLibre", vendor: map[string]string{"maplibre-gl.mjs": "x"}, wantErr: "incomplete MapLibre build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := BuildPreview(pageFS(t, tt.vendor))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("BuildPreview error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("BuildPreview: %v", err)
			}
			if p.MapLibre != tt.wantMapLibre {
				t.Errorf("MapLibre = %v, want %v", p.MapLibre, tt.wantMapLibre)
			}
			body := string(p.Body)
			if !strings.HasPrefix(body, "<!doctype html>") || !strings.Contains(body, `<script type="module">`) {
				t.Errorf("body is not the page:\n%.300s", body)
			}
			if !strings.Contains(body, "window.__mapIdle") {
				t.Errorf("body lacks the inlined preview.js")
			}
			// Only the page's own two scripts end: nothing inlined closes one.
			if got := strings.Count(strings.ToLower(body), "</script"); got != 1+boolInt(tt.wantMapLibre) {
				t.Errorf("</script appears %d times, want %d", got, 1+boolInt(tt.wantMapLibre))
			}
			got := inlined(t, p.Body)
			if tt.wantMapLibre {
				want := map[string]string{"lib": hostile["maplibre-gl.mjs"], "worker": hostile["maplibre-gl-worker.mjs"], "css": hostile["maplibre-gl.css"]}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("inlined %s = %q, want %q", k, got[k], v)
					}
				}
			} else if got != nil {
				t.Errorf("MapLibre inlined without vendor files: %v", got)
			}
			zr, err := gzip.NewReader(bytes.NewReader(p.Gzip))
			if err != nil {
				t.Fatal(err)
			}
			unz, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(unz, p.Body) {
				t.Errorf("Gzip does not decompress to Body (err %v)", err)
			}
			if !strings.HasPrefix(p.ETag, `W/"`) || !strings.HasSuffix(p.ETag, `"`) {
				t.Errorf("ETag = %s, want a weak validator", p.ETag)
			}
			again, _ := BuildPreview(pageFS(t, tt.vendor))
			if again.ETag != p.ETag {
				t.Errorf("ETag changed between builds of the same files: %s, %s", p.ETag, again.ETag)
			}
		})
	}
}

func TestBuildPreviewRejectsUninlinableScript(t *testing.T) {
	m := pageFS(t, nil)
	m["preview/preview.js"] = &fstest.MapFile{Data: []byte("const s = '</script>';")}
	if _, err := BuildPreview(m); err == nil {
		t.Fatal("BuildPreview inlined a script holding </script>, want an error")
	}
}

// The embedded files build, with or without `make static`.
func TestPreviewEmbedded(t *testing.T) {
	p, err := Preview()
	if err != nil {
		t.Fatalf("Preview: %v", err)
	}
	_, statErr := fs.Stat(Files(), vendorLib)
	if p.MapLibre != (statErr == nil) {
		t.Errorf("MapLibre = %v, but stat %s: %v", p.MapLibre, vendorLib, statErr)
	}
	if !p.MapLibre {
		t.Logf("MapLibre GL JS is not built in (make static)")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
