package importer_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"

	"github.com/meridian-gis/meridian/workers/importer"
)

// nthIndex returns the index of the n-th (1-based) occurrence of sub.
func nthIndex(t testing.TB, s []byte, sub string, n int) int {
	t.Helper()
	off := 0
	for k := 0; k < n; k++ {
		i := bytes.Index(s[off:], []byte(sub))
		if i < 0 {
			t.Fatalf("%q occurs fewer than %d times", sub, n)
		}
		off += i
		if k < n-1 {
			off += len(sub)
		}
	}
	return off
}

func lineOf(b []byte, off int) int64 { return int64(bytes.Count(b[:off], []byte{'\n'})) + 1 }

type zipEntry struct {
	name string
	data []byte
	mode fs.FileMode
}

func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zipFixture returns the entries of a zip from the library.
func zipFixture(t testing.TB, rel string) []zipEntry {
	t.Helper()
	zr, err := zip.OpenReader(data(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out []zipEntry
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		out = append(out, zipEntry{name: f.Name, data: b})
	}
	return out
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// zerosDeflated returns n zero bytes, deflated.
func zerosDeflated(n int) []byte {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	chunk := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, len(chunk))
		fw.Write(chunk[:k])
		n -= k
	}
	fw.Close()
	return buf.Bytes()
}

// TestBadInput feeds broken files, built from real data, and checks each
// error's kind and location, and that nothing is left in the database.
func TestBadInput(t *testing.T) {
	pool := testDB(t)
	roads := readMaybeGzip(t, data(t, "fixtures/geojson/tiger_roads_manhattan.geojson"))
	airports := readMaybeGzip(t, data(t, "fixtures/csv/us_airports_datagov.csv"))
	places := readMaybeGzip(t, data(t, "fixtures/csv/ne_110m_populated_places.csv"))
	wktCSV := readMaybeGzip(t, data(t, "fixtures/csv/spdata_world_wkt.csv"))

	type check func(t *testing.T, ie *importer.InputError)
	at := func(offset, line, feature int64) check {
		return func(t *testing.T, ie *importer.InputError) {
			if offset >= 0 && (!ie.HasOffset || ie.Offset != offset) {
				t.Errorf("Offset = %d (has %v), want %d", ie.Offset, ie.HasOffset, offset)
			}
			if line >= 0 && ie.Line != line {
				t.Errorf("Line = %d, want %d", ie.Line, line)
			}
			if feature >= 0 && ie.Feature != feature {
				t.Errorf("Feature = %d, want %d", ie.Feature, feature)
			}
		}
	}
	any := func(t *testing.T, ie *importer.InputError) {}

	// Truncated in the middle of feature 4000.
	cut := nthIndex(t, roads, `"geometry"`, 4000) + 30
	truncated := roads[:cut]
	// A bad character after the properties of feature 100.
	corrupt := bytes.Clone(roads)
	bad := nthIndex(t, corrupt, `"properties"`, 100) + len(`"properties"`)
	corrupt[bad] = ';'
	// (a "crs" member before "features" has "properties" too)
	badFeature := int64(100 - bytes.Count(corrupt[:bytes.Index(corrupt, []byte(`"features"`))], []byte(`"properties"`)))
	// An invalid UTF-8 byte inside a string of feature 7.
	badUTF8 := bytes.Clone(roads)
	badByte := nthIndex(t, badUTF8, `"NAME"`, 7) + len(`"NAME": "`)
	if badUTF8[badByte-1] != '"' {
		badByte = nthIndex(t, badUTF8, `"NAME"`, 7) + len(`"NAME":"`)
	}
	badUTF8[badByte] = 0xFF
	// CSV lines (1-based) 10, 100.
	csvLines := bytes.SplitAfter(airports, []byte("\n"))
	withLine := func(lines [][]byte, n int, replace string) []byte {
		out := bytes.Clone(bytes.Join(lines[:n-1], nil))
		out = append(out, replace...)
		return append(out, bytes.Join(lines[n:], nil)...)
	}
	placesLines := bytes.SplitAfter(places, []byte("\n"))
	placesBad := withLine(placesLines, 10, "Bad\xffName,X,XX,1,10,10\n")
	placesBadOffset := bytes.IndexByte(placesBad, 0xFF)
	wktLines := bytes.SplitAfter(wktCSV, []byte("\n"))
	var noPrj []zipEntry
	for _, e := range zipFixture(t, "fixtures/shapefile/qgis_alaska_airports.zip") {
		if !strings.HasSuffix(e.name, ".prj") {
			noPrj = append(noPrj, e)
		}
	}
	var noCoords bytes.Buffer
	for _, l := range bytes.Split(bytes.TrimSpace(airports), []byte("\n")) {
		f := bytes.Split(l, []byte(","))
		noCoords.Write(bytes.Join(f[:5], []byte(",")))
		noCoords.WriteByte('\n')
	}
	// Real road geometries scaled as if projected, with no "crs".
	fc, err := geojson.UnmarshalFeatureCollection(roads)
	if err != nil {
		t.Fatal(err)
	}
	fc.Features = fc.Features[:50]
	for _, f := range fc.Features {
		ls := f.Geometry.(orb.LineString)
		for k := range ls {
			ls[k] = orb.Point{ls[k][0] * 111000, ls[k][1] * 111000}
		}
	}
	projected, _ := fc.MarshalJSON()
	utf16 := []byte{0xFF, 0xFE}
	for _, r := range "name,lat,lon\nA,1,2\n" {
		utf16 = append(utf16, byte(r), 0)
	}
	onePointLine := bytes.Replace(roads, []byte(`"coordinates": [ [`), []byte(`"coordinates": [ [ 0, 0 ] ], "x": [ [`), 1)
	if bytes.Equal(onePointLine, roads) {
		onePointLine = bytes.Replace(roads, []byte(`"coordinates":[[`), []byte(`"coordinates":[[0,0]],"x":[[`), 1)
	}

	tests := []struct {
		name  string
		file  string
		body  []byte
		opts  importer.Options
		want  error
		where check
	}{
		{"geojson truncated mid-feature", "roads.geojson", truncated, importer.Options{}, importer.ErrMalformed, at(int64(cut), lineOf(roads, cut), 4000)},
		{"geojson malformed JSON", "roads.geojson", corrupt, importer.Options{}, importer.ErrMalformed, at(int64(bad), lineOf(corrupt, bad), badFeature)},
		{"geojson invalid UTF-8", "roads.geojson", badUTF8, importer.Options{}, importer.ErrEncoding, at(int64(badByte), lineOf(badUTF8, badByte), -1)},
		{"geojson one-position line", "roads.geojson", onePointLine, importer.Options{}, importer.ErrMalformed, at(-1, -1, 1)},
		{"geojson projected without crs", "projected.geojson", projected, importer.Options{}, importer.ErrOutOfRange, at(-1, -1, 1)},
		{"geojson empty collection", "empty.geojson", []byte(`{"type":"FeatureCollection","features":[]}`), importer.Options{}, importer.ErrNoFeatures, any},
		{"csv invalid UTF-8", "places.csv", placesBad, importer.Options{}, importer.ErrEncoding, at(int64(placesBadOffset), 10, -1)},
		{"csv UTF-16", "utf16.csv", utf16, importer.Options{}, importer.ErrEncoding, any},
		{"csv without coordinates", "nocoords.csv", noCoords.Bytes(), importer.Options{}, importer.ErrNoGeometry, any},
		{"csv named geometry column missing", "airports.csv", airports, importer.Options{GeometryColumns: &importer.CSVGeometry{Column: "wkt"}}, importer.ErrNoGeometry, any},
		{"csv latitude out of range", "airports.csv", withLine(csvLines, 100, "XXX,Nowhere,Nowhere,XX,USA,95.5,-100\n"), importer.Options{}, importer.ErrOutOfRange, at(-1, 100, -1)},
		{"csv coordinate not a number", "airports.csv", withLine(csvLines, 50, "XXX,Nowhere,Nowhere,XX,USA,north,-100\n"), importer.Options{}, importer.ErrMalformed, at(-1, 50, -1)},
		{"csv ragged row", "airports.csv", withLine(csvLines, 5, "XXX,Nowhere\n"), importer.Options{}, importer.ErrMalformed, at(-1, 5, -1)},
		{"csv bad WKT", "world.csv", withLine(wktLines, 10, "\"MULTIPOLYGON (((1 2, 3\",XX,X,X,X,X,X,1,1,1,1\n"), importer.Options{}, importer.ErrMalformed, at(-1, 10, -1)},
		{"csv header only", "airports.csv", csvLines[0], importer.Options{}, importer.ErrNoFeatures, any},
		{"csv unclosed quote", "airports.csv", withLine(csvLines, 3, "XXX,\"Nowhere,Nowhere,XX,USA,30,-100\n"), importer.Options{}, importer.ErrMalformed, at(-1, 3, -1)},
		{"csv bare quote", "airports.csv", withLine(csvLines, 7, "XXX,Nowhere 12\" field,Nowhere,XX,USA,30,-100\n"), importer.Options{}, importer.ErrMalformed, at(-1, 7, -1)},
		{"csv row too large", "airports.csv", withLine(csvLines, 4, "XXX,\""+strings.Repeat("x", 100<<10)+"\",Nowhere,XX,USA,30,-100\n"), importer.Options{MaxFeatureBytes: 64 << 10}, importer.ErrTooLarge, any},
		{"empty file", "empty.csv", nil, importer.Options{}, importer.ErrEmpty, any},
		{"empty gzip", "empty.geojson.gz", gzipBytes(nil), importer.Options{}, importer.ErrEmpty, any},
		{"too large", "airports.csv", airports, importer.Options{MaxBytes: 1000}, importer.ErrTooLarge, any},
		{"gzip expands too much", "airports.csv.gz", gzipBytes(airports), importer.Options{MaxUncompressedBytes: 10000}, importer.ErrTooLarge, any},
		{"zip bomb of zeros", "bomb.zip", makeZip(t, zipEntry{name: "bomb.csv", data: make([]byte, 80<<20)}), importer.Options{}, importer.ErrZipBomb, any},
		{"zip entry climbing out", "evil.zip", makeZip(t, zipEntry{name: "../evil.csv", data: airports}), importer.Options{}, importer.ErrUnsafePath, any},
		{"zip entry absolute", "evil.zip", makeZip(t, zipEntry{name: "/tmp/evil.csv", data: airports}), importer.Options{}, importer.ErrUnsafePath, any},
		{"zip entry backslashes", "evil.zip", makeZip(t, zipEntry{name: `..\..\evil.csv`, data: airports}), importer.Options{}, importer.ErrUnsafePath, any},
		{"zip symlink", "evil.zip", makeZip(t, zipEntry{name: "link.csv", data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}), importer.Options{}, importer.ErrUnsafePath, any},
		{"zip of nothing importable", "junk.zip", makeZip(t, zipEntry{name: "readme.md", data: []byte("hi")}), importer.Options{}, importer.ErrUnsupportedFormat, any},
		{"shapefile without .prj, projected", "airports.zip", makeZip(t, noPrj...), importer.Options{}, importer.ErrOutOfRange, at(-1, -1, 1)},
		{"bare .shp", "airports.shp", noPrj[len(noPrj)-1].data, importer.Options{}, importer.ErrUnsupportedFormat, any},
		{"binary junk", "data.bin", []byte("\x00\x01\x02\x03garbage"), importer.Options{}, importer.ErrUnsupportedFormat, any},
		{"several layers", "puerto_montt.gpkg", readMaybeGzip(t, data(t, "fixtures/gpkg/puerto_montt_osm_20170922.gpkg")), importer.Options{}, importer.ErrLayerRequired, any},
		{"unknown layer", "puerto_montt.gpkg", readMaybeGzip(t, data(t, "fixtures/gpkg/puerto_montt_osm_20170922.gpkg")), importer.Options{Layer: "nope"}, importer.ErrLayerRequired, any},
		{"empty layer", "puerto_montt.gpkg", readMaybeGzip(t, data(t, "fixtures/gpkg/puerto_montt_osm_20170922.gpkg")), importer.Options{Layer: "harbours_points"}, importer.ErrNoFeatures, any},
	}
	// The shapefile member is found by name, not position.
	for _, e := range noPrj {
		if strings.HasSuffix(e.name, ".shp") {
			tests[len(tests)-5].body = e.data
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "shapefile") || strings.Contains(tt.name, "layer") {
				needGDAL(t)
			}
			path := writeFile(t, tt.file, tt.body)
			opts := tt.opts
			opts.Table = fmt.Sprintf("bad_%d", i)
			opts.TempDir = t.TempDir()
			_, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			var ie *importer.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *InputError", err)
			}
			if !importer.IsInputError(err) || !utf8.ValidString(err.Error()) || err.Error() == "" {
				t.Errorf("error %q is not a usable input error", err)
			}
			tt.where(t, ie)
			t.Logf("%v", err)
			if tableExists(t, pool, opts.Table) {
				t.Errorf("table %s exists after a failed import", opts.Table)
			}
			if n := stagingLeft(t, pool); n != 0 {
				t.Errorf("%d staging tables left", n)
			}
			if entries, _ := os.ReadDir(opts.TempDir); len(entries) != 0 {
				t.Errorf("temp files left: %v", entries)
			}
		})
	}
}

// TestZipBombLyingHeader: an entry whose header claims 1 KB but inflates
// to 80 MB is refused without writing it out.
func TestZipBombLyingHeader(t *testing.T) {
	pool := testDB(t)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "bomb.csv", Method: zip.Deflate, CompressedSize64: 0, UncompressedSize64: 1024})
	if err != nil {
		t.Fatal(err)
	}
	raw := zerosDeflated(80 << 20)
	w.Write(raw)
	zw.Close()
	b := buf.Bytes()
	path := writeFile(t, "bomb.zip", b)
	_, err = importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: "bomb", TempDir: t.TempDir()})
	if !errors.Is(err, importer.ErrMalformed) && !errors.Is(err, importer.ErrZipBomb) {
		t.Fatalf("error = %v, want ErrMalformed or ErrZipBomb", err)
	}
	t.Logf("%v", err)
}

// TestLatin1CSV: a Windows-1252 file is transcoded, with a warning.
func TestLatin1CSV(t *testing.T) {
	pool := testDB(t)
	src := readMaybeGzip(t, data(t, "fixtures/csv/ne_110m_populated_places.csv"))
	var latin1 []byte
	for _, r := range string(src) {
		if r > 0xFF {
			r = '?'
		}
		latin1 = append(latin1, byte(r))
	}
	path := writeFile(t, "places_latin1.csv", latin1)
	res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: "latin1"})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, pool, "latin1", res)
	if got := count(t, pool, "SELECT count(*) FROM latin1 WHERE name IN ('Lomé', 'Reykjavík', 'Asunción')"); got != 3 {
		t.Errorf("found %d of the accented names, want 3", got)
	}
	if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, " "), "Windows-1252") {
		t.Errorf("Warnings = %q, want the transcoding noted", res.Warnings)
	}
}
