package main

// The offline basemap through `meridian up`: loaded into the data
// connection, its styles and glyphs served by the control plane through
// the edge, its tiles by the tiles engine with the basemap's own token,
// drawn by MapLibre in Chromium (TestPreviewInBrowser's basemap pages).

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/basemap"
)

// loadBasemap loads the basemap into u's data database and checks its
// styles, glyphs and tiles through the edge.
func loadBasemap(t *testing.T, u *upServer) {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u.data.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := basemap.Load(ctx, conn, dir, nil); err != nil {
		skipOrFail(t, "loading the basemap: %v", err)
	}
	get := func(path string) (int, http.Header, []byte) {
		t.Helper()
		res, err := http.Get(u.base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, b
	}
	for _, name := range basemap.Styles {
		code, h, body := get("/basemap/styles/" + name + ".json")
		if code != 200 || !strings.Contains(h.Get("Cache-Control"), "public") {
			t.Fatalf("style %s: %d %s %s", name, code, h.Get("Cache-Control"), body)
		}
		var st struct {
			Glyphs  string `json:"glyphs"`
			Sources map[string]struct {
				Tiles []string `json:"tiles"`
			} `json:"sources"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(st.Glyphs, u.base+"/basemap/fonts/") {
			t.Errorf("glyphs %s", st.Glyphs)
		}
		if name != basemap.Styles[0] {
			continue
		}
		for src, s := range st.Sources {
			tile := strings.NewReplacer("{z}", "0", "{x}", "0", "{y}", "0").Replace(s.Tiles[0])
			res, err := http.Get(tile)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if src == "roads" {
				// OSM roads come from the LDS road graph, which this
				// database lacks: an empty layer, answered 204.
				if res.StatusCode != 200 && res.StatusCode != 204 {
					t.Errorf("basemap roads tile 0/0/0: %d %.200s", res.StatusCode, b)
				}
				continue
			}
			if res.StatusCode != 200 || len(b) < 100 {
				t.Errorf("basemap %s tile 0/0/0: %d, %d bytes: %.200s", src, res.StatusCode, len(b), b)
			}
		}
		// The basemap token reaches the basemap only.
		tok := regexp.MustCompile(`access_token=([^&]+)`).FindStringSubmatch(st.Sources["land"].Tiles[0])[1]
		req, _ := http.NewRequest("GET", u.base+"/api/v3/maps/local/table/0/0/0?name=public.countries", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 403 {
			t.Errorf("the basemap token read public.countries: %d", res.StatusCode)
		}
	}
	code, h, body := get("/basemap/fonts/Go%20Regular/0-255.pbf")
	if code != 200 || h.Get("Content-Type") != "application/x-protobuf" || len(body) < 10000 {
		t.Errorf("glyphs: %d %s, %d bytes", code, h.Get("Content-Type"), len(body))
	}
	if code, _, _ := get("/basemap/fonts/Comic%20Sans/0-255.pbf"); code != 404 {
		t.Errorf("unknown font: %d", code)
	}
	if code, _, _ := get("/basemap/styles/positron.json"); code != 404 {
		t.Errorf("unknown style: %d", code)
	}
}

// checkBasemapPages checks the preview pages drawn over the basemap:
// idle without errors, glyphs and basemap tiles fetched, many colours.
func checkBasemapPages(t *testing.T, rep browserReport) {
	t.Helper()
	basemapTile := regexp.MustCompile(`^/api/v3/maps/local/table/\d+/\d+/\d+$`)
	for _, name := range []string{"basemap-light", "basemap-dark"} {
		i := slices.IndexFunc(rep.Pages, func(p pageReport) bool { return p.Name == name })
		if i < 0 {
			t.Errorf("no report for page %s", name)
			continue
		}
		p := rep.Pages[i]
		if p.State != "idle" || len(p.MapErrors) > 0 || len(p.PageErrors) > 0 {
			t.Errorf("%s: state %q, map errors %q, page errors %q", name, p.State, p.MapErrors, p.PageErrors)
		}
		var glyphs, tilesWithToken int
		for _, r := range p.Responses {
			if strings.HasPrefix(r.Path, "/basemap/fonts/") && r.Status == 200 {
				glyphs++
			}
			if basemapTile.MatchString(r.Path) && r.TokenInURL && !r.Bearer && (r.Status == 200 || r.Status == 204) {
				tilesWithToken++
			}
			if r.Status >= 400 {
				t.Errorf("%s: %s %s = %d", name, r.Method, r.Path, r.Status)
			}
		}
		if glyphs == 0 || tilesWithToken < 6 {
			t.Errorf("%s: %d glyph ranges and %d basemap tiles fetched", name, glyphs, tilesWithToken)
		}
		if p.Pixels == nil || p.Pixels.DistinctColors < 50 {
			t.Errorf("%s: pixels %+v", name, p.Pixels)
		}
	}
}
