// Package importpreview describes a file before it is imported: its
// format, its layers with feature counts, the columns GDAL infers with
// their types, a guess of the geometry column and the first rows. It
// reads the file with GDAL's ogrinfo and ogr2ogr (no database), so the
// control plane can answer POST /api/v3/imports/preview without a worker.
package importpreview

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ErrUnknownFormat: the file's format could not be recognised.
var ErrUnknownFormat = errors.New("unknown format")

// ErrUnreadable: GDAL could not read the file (corrupt or not what its
// name says).
var ErrUnreadable = errors.New("the file cannot be read")

// ErrNoLayer: Options.Layer names no layer of the file.
var ErrNoLayer = errors.New("no such layer")

// Options tunes a preview.
type Options struct {
	// Name is the file's original name (its extension picks the format);
	// default: the path's base name.
	Name string
	// Format forces a format (internal/jobspec.Formats); default: detected.
	Format string
	// Layer picks the layer whose columns and rows are shown; default:
	// the first.
	Layer string
	// Rows is how many first rows to show. Default: 10, at most 100.
	Rows int
	// OGRInfo and OGR2OGR are the GDAL programs. Default: from PATH.
	OGRInfo, OGR2OGR string
}

// Preview is the answer of POST /api/v3/imports/preview.
type Preview struct {
	// Format is the detected (or forced) format name.
	Format string `json:"format"`
	// Layers are every layer of the file; an import of a file with
	// several needs an explicit layer.
	Layers []Layer `json:"layers"`
	// Layer is the layer Columns and Rows describe.
	Layer string `json:"layer"`
	// LayerRequired: the file has several layers, an import must name one.
	LayerRequired bool `json:"layerRequired"`
	// Columns are the layer's attribute columns with inferred types.
	Columns []Column `json:"columns"`
	// Geometry is the guess of where the geometry is.
	Geometry GeometryGuess `json:"geometry"`
	// Rows are the first rows: attributes, and "geometry" as GeoJSON.
	Rows []map[string]any `json:"rows"`
}

// Layer is one layer of a file.
type Layer struct {
	Name         string `json:"name"`
	GeometryType string `json:"geometryType"`
	// Features is the feature count (-1: unknown without a full read).
	Features int64 `json:"features"`
}

// Column is one inferred attribute column.
type Column struct {
	Name string `json:"name"`
	// Type is GDAL's type: String, Integer, Integer64, Real, Date,
	// DateTime, Time, Integer(Boolean), StringList...
	Type string `json:"type"`
}

// GeometryGuess says where the geometry is: Kind "native" (the format's
// own geometry), "latlon" (Latitude and Longitude columns of a CSV),
// "wkt" (a CSV column holding WKT/WKB), or "none".
type GeometryGuess struct {
	Kind      string `json:"kind"`
	Type      string `json:"type,omitempty"`
	Latitude  string `json:"latitude,omitempty"`
	Longitude string `json:"longitude,omitempty"`
	Column    string `json:"column,omitempty"`
}

var extFormats = map[string]string{
	".geojson": "geojson", ".json": "geojson", ".geojsonl": "geojsonseq", ".geojsons": "geojsonseq", ".ndjson": "geojsonseq",
	".jsonl": "geojsonseq", ".csv": "csv", ".tsv": "csv", ".shp": "shapefile", ".zip": "zip", ".gpkg": "gpkg", ".kml": "kml",
	".kmz": "kmz", ".fgb": "fgb", ".gpx": "gpx", ".topojson": "topojson", ".gml": "gml",
}

// Describe previews the file at path.
func Describe(ctx context.Context, path string, opts Options) (*Preview, error) {
	if opts.Name == "" {
		opts.Name = filepath.Base(path)
	}
	if opts.Rows <= 0 {
		opts.Rows = 10
	}
	opts.Rows = min(opts.Rows, 100)
	if opts.OGRInfo == "" {
		opts.OGRInfo = "ogrinfo"
	}
	if opts.OGR2OGR == "" {
		opts.OGR2OGR = "ogr2ogr"
	}
	format, dsn, err := resolve(path, opts.Name, strings.ToLower(opts.Format))
	if err != nil {
		return nil, err
	}
	var oo []string
	if format == "csv" {
		oo = []string{"-oo", "AUTODETECT_TYPE=YES", "-oo", "KEEP_GEOM_COLUMNS=YES"}
	}
	info, err := run(ctx, opts.OGRInfo, append(append([]string{"-ro", "-so", "-al"}, oo...), dsn)...)
	if err != nil {
		return nil, fmt.Errorf("%w as %s: %v", ErrUnreadable, format, err)
	}
	layers, cols := parseInfo(info)
	if len(layers) == 0 {
		return nil, fmt.Errorf("%w as %s: no layers", ErrUnreadable, format)
	}
	p := &Preview{Format: format, Layers: layers, LayerRequired: len(layers) > 1, Layer: layers[0].Name}
	if opts.Layer != "" {
		if _, ok := cols[opts.Layer]; !ok {
			return nil, fmt.Errorf("%w %q (the file has %s)", ErrNoLayer, opts.Layer, layerNames(layers))
		}
		p.Layer = opts.Layer
	}
	p.Columns = cols[p.Layer]
	if p.Columns == nil {
		p.Columns = []Column{}
	}
	for _, l := range layers {
		if l.Name == p.Layer {
			p.Geometry = guessGeometry(format, l.GeometryType, p.Columns)
		}
	}
	args := append([]string{"-f", "GeoJSONSeq", "/vsistdout/"}, oo...)
	args = append(args, "-limit", strconv.Itoa(opts.Rows), dsn, p.Layer)
	out, err := run(ctx, opts.OGR2OGR, args...)
	if err != nil {
		return nil, fmt.Errorf("%w as %s: reading rows: %v", ErrUnreadable, format, err)
	}
	p.Rows = []map[string]any{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := bytes.TrimLeft(sc.Bytes(), "\x1e")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var f struct {
			Properties map[string]any  `json:"properties"`
			Geometry   json.RawMessage `json:"geometry"`
		}
		if err := json.Unmarshal(line, &f); err != nil {
			return nil, fmt.Errorf("%w as %s: a row: %v", ErrUnreadable, format, err)
		}
		row := f.Properties
		if row == nil {
			row = map[string]any{}
		}
		if len(f.Geometry) > 0 && string(f.Geometry) != "null" {
			row["geometry"] = f.Geometry
		} else {
			row["geometry"] = nil
		}
		p.Rows = append(p.Rows, row)
	}
	return p, nil
}

// resolve picks the format and the GDAL data source name of path.
func resolve(path, name, forced string) (format, dsn string, err error) {
	ext := strings.ToLower(filepath.Ext(name))
	vsi := ""
	if ext == ".gz" {
		vsi = "/vsigzip/"
		ext = strings.ToLower(filepath.Ext(strings.TrimSuffix(name, filepath.Ext(name))))
	}
	format = forced
	if format == "" {
		format = extFormats[ext]
	}
	if format == "" {
		format = sniff(path)
	}
	switch format {
	case "":
		return "", "", fmt.Errorf("%w: %s (want GeoJSON, CSV, Shapefile (zip), GeoPackage, KML/KMZ, FlatGeobuf, GPX, TopoJSON or GML)", ErrUnknownFormat, name)
	case "zip", "kmz":
		vsi = "/vsizip/"
		if format == "zip" {
			format = "shapefile"
		}
	case "geojson":
		if vsi == "" && sniff(path) == "topojson" {
			format = "topojson"
		}
	}
	if format == "csv" && vsi == "" {
		return format, "CSV:" + path, nil // GDAL's CSV driver wants a .csv name otherwise
	}
	if vsi == "/vsizip/" {
		return format, vsi + "{" + path + "}", nil // the stored file need not end in .zip
	}
	return format, vsi + path, nil
}

// sniff guesses a format from the first bytes.
func sniff(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, _ := f.Read(head)
	head = bytes.TrimSpace(head[:n])
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "zip"
	case bytes.HasPrefix(head, []byte("SQLite format 3")):
		return "gpkg"
	case bytes.HasPrefix(head, []byte("fgb\x03")):
		return "fgb"
	case bytes.HasPrefix(head, []byte("{")) && bytes.Contains(head, []byte(`"Topology"`)):
		return "topojson"
	case bytes.HasPrefix(head, []byte("{")):
		return "geojson"
	case bytes.HasPrefix(head, []byte("<")) && bytes.Contains(head, []byte("<kml")):
		return "kml"
	case bytes.HasPrefix(head, []byte("<")) && bytes.Contains(head, []byte("<gpx")):
		return "gpx"
	}
	return ""
}

var (
	fieldRE = regexp.MustCompile(`^(.+): (\w+(?:\(\w+\))?) \(\d+\.\d+\)$`)
)

// parseInfo reads `ogrinfo -so -al`.
func parseInfo(out []byte) ([]Layer, map[string][]Column) {
	var layers []Layer
	cols := map[string][]Column{}
	var cur *Layer
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "Layer name: "):
			layers = append(layers, Layer{Name: strings.TrimPrefix(line, "Layer name: "), Features: -1})
			cur = &layers[len(layers)-1]
			cols[cur.Name] = []Column{}
		case cur == nil:
		case strings.HasPrefix(line, "Geometry: "):
			cur.GeometryType = strings.TrimPrefix(line, "Geometry: ")
		case strings.HasPrefix(line, "Feature Count: "):
			if n, err := strconv.ParseInt(strings.TrimPrefix(line, "Feature Count: "), 10, 64); err == nil {
				cur.Features = n
			}
		default:
			if m := fieldRE.FindStringSubmatch(line); m != nil && !strings.HasPrefix(line, " ") {
				cols[cur.Name] = append(cols[cur.Name], Column{Name: m[1], Type: m[2]})
			}
		}
	}
	return layers, cols
}

var (
	latNames = map[string]bool{"lat": true, "latitude": true, "y": true, "lat_y": true, "latitude_deg": true}
	lonNames = map[string]bool{"lon": true, "lng": true, "long": true, "longitude": true, "x": true, "lon_x": true, "longitude_deg": true}
	geoNames = map[string]bool{"wkt": true, "geom": true, "geometry": true, "the_geom": true, "wkb_geometry": true, "shape": true}
)

// guessGeometry: the format's own geometry, or for CSV the columns the
// importer would use.
func guessGeometry(format, geomType string, cols []Column) GeometryGuess {
	if format != "csv" {
		if geomType == "" || geomType == "None" {
			return GeometryGuess{Kind: "none"}
		}
		return GeometryGuess{Kind: "native", Type: geomType}
	}
	var g GeometryGuess
	for _, c := range cols {
		n := strings.ToLower(c.Name)
		switch {
		case latNames[n] && g.Latitude == "":
			g.Latitude = c.Name
		case lonNames[n] && g.Longitude == "":
			g.Longitude = c.Name
		case geoNames[n] && g.Column == "":
			g.Column = c.Name
		}
	}
	switch {
	case g.Latitude != "" && g.Longitude != "":
		return GeometryGuess{Kind: "latlon", Type: "Point", Latitude: g.Latitude, Longitude: g.Longitude}
	case g.Column != "":
		return GeometryGuess{Kind: "wkt", Column: g.Column}
	}
	return GeometryGuess{Kind: "none"}
}

func layerNames(ls []Layer) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = strconv.Quote(l.Name)
	}
	return strings.Join(names, ", ")
}

// run runs a GDAL program, its error carrying GDAL's message.
func run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String() + "\n" + string(out))
		if len(msg) > 300 {
			msg = msg[:300]
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, errors.New(msg)
	}
	return out, nil
}
