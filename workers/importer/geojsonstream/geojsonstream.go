// Package geojsonstream reads GeoJSON features one at a time, whatever the
// file size: a FeatureCollection is walked as a token stream
// (encoding/json Decoder.Token) and each element of its "features" array
// is decoded on its own, so memory holds one feature, never the file. The
// same Reader accepts a bare Feature, a bare geometry, newline-delimited
// GeoJSON and RFC 8142 GeoJSON text sequences (record separators), and any
// concatenation of those.
//
// Errors say where: a *SyntaxError carries the byte offset in the stream
// and the 1-based index of the feature being read.
package geojsonstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"github.com/meridian-gis/meridian/workers/importer/internal/jsonscan"
)

// Options tune a Reader.
type Options struct {
	// MaxFeatureBytes refuses a single feature (or top-level value other
	// than a FeatureCollection) larger than this, bounding memory.
	// Default: 256 MiB.
	MaxFeatureBytes int64
}

// ErrTopoJSON is returned when the stream turns out to be TopoJSON.
var ErrTopoJSON = errors.New("geojsonstream: input is TopoJSON")

// ErrFeatureTooLarge is wrapped by the SyntaxError of an oversized feature.
var ErrFeatureTooLarge = errors.New("feature too large")

// SyntaxError reports input that is not GeoJSON, with its position.
type SyntaxError struct {
	// Offset is the byte offset in the stream where the problem was seen.
	Offset int64
	// Feature is the 1-based index of the feature being read; 0 when the
	// problem is outside any feature.
	Feature int64
	// Msg describes the problem.
	Msg string
	// Err is the underlying error, if any (a *json.SyntaxError, a read
	// error, ErrFeatureTooLarge).
	Err error
}

func (e *SyntaxError) Error() string {
	where := fmt.Sprintf("at byte %d", e.Offset)
	if e.Feature > 0 {
		where += fmt.Sprintf(" (feature %d)", e.Feature)
	}
	return e.Msg + " " + where
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// Feature is one decoded feature. Its byte slices alias the Reader's
// buffers and stay valid until the next call to Next.
type Feature struct {
	// Index is the 1-based position of the feature in the stream.
	Index int64
	// Offset is the byte offset of the feature in the stream.
	Offset int64
	// ID is the raw JSON of the feature's "id", nil when absent.
	ID []byte
	// Geometry is the raw JSON geometry object; nil when absent or null.
	Geometry []byte
	// Props is the raw JSON "properties" object; nil when absent or null.
	Props []byte
}

// Properties calls fn for each member of the feature's properties with
// the raw key (escaped tells whether it holds JSON escapes) and the raw
// JSON value.
func (f *Feature) Properties(fn func(key []byte, escaped bool, value []byte) error) error {
	if f.Props == nil {
		return nil
	}
	_, err := jsonscan.Object(f.Props, 0, func(key []byte, esc bool, vs, ve int) error {
		return fn(key, esc, f.Props[vs:ve])
	})
	return err
}

type state int

const (
	stateTop      state = iota // between top-level values
	stateMembers               // inside a top-level object, between members
	stateFeatures              // inside a "features" array
)

// Reader streams features.
type Reader struct {
	src   *countReader
	dec   *json.Decoder
	state state
	index int64
	srid  int
	feat  Feature
	raw   json.RawMessage

	// the current top-level object
	topType                    string
	topGeom, topProps, topID   json.RawMessage
	topCoords, topGeometries   json.RawMessage
	topOffset                  int64
	topHasFeatures, topHasGeom bool
}

// NewReader returns a Reader over r. r should deliver valid UTF-8 (see
// internal/textcheck); record separators (0x1E) are treated as spaces.
func NewReader(r io.Reader, opts Options) *Reader {
	if opts.MaxFeatureBytes <= 0 {
		opts.MaxFeatureBytes = 256 << 20
	}
	src := &countReader{r: r, max: opts.MaxFeatureBytes}
	dec := json.NewDecoder(src)
	return &Reader{src: src, dec: dec}
}

// SRID returns the EPSG code named by a legacy (GeoJSON 2008) "crs" member
// met so far, 0 when none. RFC 7946 GeoJSON is always EPSG:4326.
func (r *Reader) SRID() int { return r.srid }

// Next returns the next feature, or io.EOF after the last one.
func (r *Reader) Next() (*Feature, error) {
	for {
		switch r.state {
		case stateFeatures:
			if r.dec.More() {
				return r.nextInArray()
			}
			if _, err := r.dec.Token(); err != nil { // ']'
				return nil, r.wrap(err, "reading the end of \"features\"")
			}
			r.state = stateMembers
		case stateMembers:
			f, _, err := r.member()
			if err != nil || f != nil {
				return f, err
			}
		case stateTop:
			r.src.mark = r.dec.InputOffset()
			tok, err := r.dec.Token()
			if err == io.EOF {
				return nil, io.EOF
			}
			if err != nil {
				return nil, r.wrap(err, "reading a GeoJSON value")
			}
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return nil, &SyntaxError{Offset: r.dec.InputOffset(), Msg: fmt.Sprintf("expected a GeoJSON object, found %v", tok)}
			}
			r.topType, r.topGeom, r.topProps, r.topID, r.topCoords, r.topGeometries = "", nil, nil, nil, nil, nil
			r.topHasFeatures, r.topHasGeom = false, false
			r.topOffset = r.dec.InputOffset() - 1
			r.state = stateMembers
		}
	}
}

// member reads one member of a top-level object. At the closing brace it
// returns the object as a feature when it is one (done=true).
func (r *Reader) member() (f *Feature, done bool, err error) {
	tok, err := r.dec.Token()
	if err != nil {
		return nil, false, r.wrap(err, "reading a GeoJSON object")
	}
	if d, ok := tok.(json.Delim); ok && d == '}' {
		r.state = stateTop
		f, err := r.endTop()
		return f, true, err
	}
	key, _ := tok.(string)
	switch key {
	case "type":
		var s string
		if err := r.dec.Decode(&s); err != nil {
			return nil, false, r.wrap(err, `reading "type"`)
		}
		r.topType = s
		if s == "Topology" {
			return nil, false, ErrTopoJSON
		}
		return nil, false, nil
	case "features":
		tok, err := r.dec.Token()
		if err != nil {
			return nil, false, r.wrap(err, `reading "features"`)
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, false, &SyntaxError{Offset: r.dec.InputOffset(), Msg: `"features" is not an array`}
		}
		r.topHasFeatures = true
		r.state = stateFeatures
		return nil, false, nil
	case "crs":
		var raw json.RawMessage
		if err := r.dec.Decode(&raw); err != nil {
			return nil, false, r.wrap(err, `reading "crs"`)
		}
		r.srid = parseCRS(raw)
		return nil, false, nil
	}
	// Any other member: keep what a Feature or geometry needs.
	r.src.mark = r.dec.InputOffset()
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return nil, false, r.wrap(err, fmt.Sprintf("reading %q", key))
	}
	switch key {
	case "geometry":
		r.topGeom, r.topHasGeom = raw, true
	case "properties":
		r.topProps = raw
	case "id":
		r.topID = raw
	case "coordinates":
		r.topCoords = raw
	case "geometries":
		r.topGeometries = raw
	}
	return nil, false, nil
}

func (r *Reader) endTop() (*Feature, error) {
	switch r.topType {
	case "FeatureCollection":
		return nil, nil
	case "Feature":
		r.index++
		r.feat = Feature{Index: r.index, Offset: r.topOffset, ID: r.topID, Geometry: nonNull(r.topGeom), Props: nonNull(r.topProps)}
		if err := checkProps(r.feat.Props); err != nil {
			return nil, &SyntaxError{Offset: r.topOffset, Feature: r.index, Msg: err.Error()}
		}
		return &r.feat, nil
	case "Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection":
		// A bare geometry: one feature without properties.
		g := []byte(`{"type":` + strconv.Quote(r.topType))
		if r.topCoords != nil {
			g = append(append(g, `,"coordinates":`...), r.topCoords...)
		}
		if r.topGeometries != nil {
			g = append(append(g, `,"geometries":`...), r.topGeometries...)
		}
		g = append(g, '}')
		r.index++
		r.feat = Feature{Index: r.index, Offset: r.topOffset, Geometry: g}
		return &r.feat, nil
	case "":
		if r.topHasFeatures {
			return nil, nil // a FeatureCollection without "type"
		}
		return nil, &SyntaxError{Offset: r.topOffset, Msg: `object has no "type": not GeoJSON`}
	default:
		return nil, &SyntaxError{Offset: r.topOffset, Msg: fmt.Sprintf("top-level type %q is not GeoJSON", r.topType)}
	}
}

func (r *Reader) nextInArray() (*Feature, error) {
	r.index++
	off := r.dec.InputOffset()
	r.src.mark = off
	r.raw = r.raw[:0]
	if err := r.dec.Decode(&r.raw); err != nil {
		return nil, r.wrap(err, "reading a feature")
	}
	f := Feature{Index: r.index, Offset: off}
	raw := r.raw
	var typ []byte
	_, err := jsonscan.Object(raw, 0, func(key []byte, esc bool, vs, ve int) error {
		switch string(key) {
		case "type":
			s, _, _, err := jsonscan.String(raw, vs)
			if err != nil {
				return errors.New(`feature "type" is not a string`)
			}
			typ = s
		case "geometry":
			f.Geometry = nonNull(raw[vs:ve])
		case "properties":
			f.Props = nonNull(raw[vs:ve])
		case "id":
			f.ID = raw[vs:ve]
		}
		return nil
	})
	if err == jsonscan.ErrSyntax {
		return nil, &SyntaxError{Offset: off, Feature: r.index, Msg: "feature is not a JSON object"}
	}
	if err == nil && typ != nil && string(typ) != "Feature" {
		err = fmt.Errorf("element of \"features\" has type %q, want \"Feature\"", typ)
	}
	if err == nil {
		err = checkProps(f.Props)
	}
	if err != nil {
		return nil, &SyntaxError{Offset: off, Feature: r.index, Msg: err.Error()}
	}
	r.feat = f
	return &r.feat, nil
}

func checkProps(p []byte) error {
	if p != nil && p[jsonscan.Space(p, 0)] != '{' {
		return errors.New(`"properties" is not an object`)
	}
	return nil
}

func nonNull(v []byte) []byte {
	if v == nil || jsonscan.IsNull(v, 0) {
		return nil
	}
	return v
}

// wrap turns a decoder error into a SyntaxError with the best offset known.
func (r *Reader) wrap(err error, doing string) error {
	var se *json.SyntaxError
	feature := int64(0)
	if r.state == stateFeatures {
		feature = r.index
	}
	switch {
	case errors.As(err, &se):
		// se.Offset counts only the bytes the decoder scanned as values,
		// not delimiters consumed by Token: rescan the failing value from
		// its start (the decoder keeps it buffered) for an exact offset.
		off := r.dec.InputOffset()
		var raw json.RawMessage
		rescan := json.NewDecoder(r.dec.Buffered())
		if err2 := rescan.Decode(&raw); errors.As(err2, &se) {
			off += se.Offset - 1
		}
		return &SyntaxError{Offset: off, Feature: feature, Msg: "malformed JSON (" + se.Error() + ") while " + doing, Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &SyntaxError{Offset: r.src.n, Feature: feature, Msg: "file ends in the middle of a JSON value while " + doing, Err: io.ErrUnexpectedEOF}
	case errors.Is(err, ErrFeatureTooLarge):
		return &SyntaxError{Offset: r.src.mark, Feature: feature, Msg: fmt.Sprintf("a single value is larger than %d bytes while %s", r.src.max, doing), Err: err}
	default:
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return &SyntaxError{Offset: ute.Offset, Feature: feature, Msg: fmt.Sprintf("unexpected JSON %s while %s", ute.Value, doing), Err: err}
		}
		return err // a read error (encoding, limits): the caller knows it
	}
}

var crsName = regexp.MustCompile(`(?i)(?:EPSG::?|EPSG/0/|EPSG:)(\d+)|CRS84`)

// parseCRS reads {"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::3857"}}.
func parseCRS(raw []byte) int {
	var c struct {
		Properties struct {
			Name string `json:"name"`
		} `json:"properties"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return 0
	}
	m := crsName.FindStringSubmatch(c.Properties.Name)
	if m == nil {
		return 0
	}
	if m[1] == "" {
		return 4326 // OGC CRS84: lon/lat WGS 84
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// countReader counts bytes, maps record separators to spaces, and refuses
// to read more than max bytes past mark (the start of the current value).
type countReader struct {
	r    io.Reader
	n    int64
	mark int64
	max  int64
}

func (c *countReader) Read(p []byte) (int, error) {
	if c.n-c.mark > c.max {
		return 0, ErrFeatureTooLarge
	}
	n, err := c.r.Read(p)
	for b := p[:n]; ; {
		i := bytes.IndexByte(b, 0x1E)
		if i < 0 {
			break
		}
		b[i] = ' '
		b = b[i+1:]
	}
	c.n += int64(n)
	return n, err
}
