// Package csvsniff guesses how to read a delimited text file from its
// first bytes: which delimiter it uses, and which columns hold its
// geometry — a latitude/longitude pair, or one column of WKT, WKB hex or
// GeoJSON — judged by column names (latitude, lng, the_geom, wkt…) and by
// the shape of the values.
package csvsniff

import (
	"bytes"
	"encoding/csv"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Candidates are the delimiters Sniff tries, in order of preference.
var Candidates = []rune{',', ';', '\t', '|'}

// Sniff returns the delimiter that splits the sample (the start of the
// file) into the most rows with the same number (> 1) of fields as the
// header; ',' when none does (a one-column file). A last line cut by the
// sample's end is ignored.
func Sniff(sample []byte) rune {
	if i := bytes.LastIndexByte(sample, '\n'); i > 0 && i < len(sample)-1 {
		sample = sample[:i+1]
	}
	best, bestScore := rune(0), 0
	for _, c := range Candidates {
		r := csv.NewReader(bytes.NewReader(sample))
		r.Comma = c
		r.FieldsPerRecord = -1
		r.LazyQuotes = true
		header, err := r.Read()
		if err != nil || len(header) < 2 {
			continue
		}
		score := 1
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil || len(rec) != len(header) {
				score = -1
				break
			}
			score++
		}
		if score > bestScore {
			best, bestScore = c, score
		}
	}
	if best == 0 {
		return ','
	}
	return best
}

// Kind says how a file's geometry is stored.
type Kind int

// The geometry layouts.
const (
	// None: no geometry found.
	None Kind = iota
	// LatLon: two numeric columns.
	LatLon
	// Column: one column of WKT/EWKT, WKB/EWKB hex or GeoJSON.
	Column
)

// Geometry locates the geometry in a CSV's columns.
type Geometry struct {
	Kind Kind
	// Lat and Lon are column indexes (Kind LatLon).
	Lat, Lon int
	// Column is the column index (Kind Column).
	Column int
}

var (
	latNames = []string{"latitude", "lat", "latitude_dd", "lat_dd", "decimallatitude", "lat_wgs84", "latitud", "y", "ycoord", "y_coord", "point_y"}
	lonNames = []string{"longitude", "lon", "lng", "long", "longitude_dd", "lon_dd", "long_dd", "decimallongitude", "lon_wgs84", "longitud", "x", "xcoord", "x_coord", "point_x"}
	geoNames = []string{"wkt", "the_geom", "geom", "geometry", "wkb_geometry", "shape", "geojson", "wkb", "geom_wkt", "wkt_geom"}
)

// Detect finds the geometry from the header and sample rows.
func Detect(header []string, rows [][]string) Geometry {
	names := make([]string, len(header))
	for i, h := range header {
		names[i] = strings.ToLower(strings.TrimSpace(h))
	}
	index := func(candidates []string) []int {
		var out []int
		for _, c := range candidates {
			for i, n := range names {
				if n == c {
					out = append(out, i)
				}
			}
		}
		return out
	}
	for _, i := range index(geoNames) {
		if share(rows, i, LooksLikeGeometry) >= 0.9 {
			return Geometry{Kind: Column, Column: i}
		}
	}
	lats, lons := index(latNames), index(lonNames)
	for _, la := range lats {
		for _, lo := range lons {
			if la != lo && share(rows, la, isNumber) >= 0.9 && share(rows, lo, isNumber) >= 0.9 {
				return Geometry{Kind: LatLon, Lat: la, Lon: lo}
			}
		}
	}
	for i := range header {
		if share(rows, i, LooksLikeGeometry) >= 0.9 {
			return Geometry{Kind: Column, Column: i}
		}
	}
	return Geometry{}
}

// share returns the fraction of non-empty values of column i that pass
// ok; 0 when the column is empty in every row.
func share(rows [][]string, i int, ok func(string) bool) float64 {
	n, good := 0, 0
	for _, r := range rows {
		if i >= len(r) || strings.TrimSpace(r[i]) == "" {
			continue
		}
		n++
		if ok(strings.TrimSpace(r[i])) {
			good++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(good) / float64(n)
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

var wktPrefix = regexp.MustCompile(`(?i)^\s*(SRID=\d+;\s*)?(POINT|LINESTRING|POLYGON|MULTIPOINT|MULTILINESTRING|MULTIPOLYGON|GEOMETRYCOLLECTION)\s*(Z|M|ZM)?\s*(\(|EMPTY)`)

// LooksLikeGeometry reports whether a value reads as WKT/EWKT, WKB/EWKB
// hex or a GeoJSON geometry object.
func LooksLikeGeometry(s string) bool {
	switch Encoding(s) {
	case WKT, WKBHex, GeoJSON:
		return true
	}
	return false
}

// Enc is the encoding of one geometry value.
type Enc int

// Geometry value encodings.
const (
	Unknown Enc = iota
	WKT
	WKBHex
	GeoJSON
)

// Encoding tells how the geometry value s is written, by its first bytes.
func Encoding(s string) Enc {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Unknown
	case s[0] == '{':
		if strings.Contains(s, `"coordinates"`) || strings.Contains(s, `"geometries"`) {
			return GeoJSON
		}
	case len(s) >= 18 && len(s)%2 == 0 && (strings.HasPrefix(s, "00") || strings.HasPrefix(s, "01")) && isHex(s):
		return WKBHex
	case wktPrefix.MatchString(s):
		return WKT
	}
	return Unknown
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
