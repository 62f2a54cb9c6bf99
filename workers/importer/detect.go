package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
)

// gdalFormats are the formats read through GDAL.
var gdalFormats = map[string]bool{
	FormatShapefile: true, FormatGPKG: true, FormatKML: true, FormatKMZ: true,
	FormatFGB: true, FormatGPX: true, FormatTopoJSON: true, FormatGML: true,
}

// extFormats maps file extensions to formats.
var extFormats = map[string]string{
	".geojson": FormatGeoJSON, ".json": FormatGeoJSON,
	".geojsonl": FormatGeoJSONSeq, ".geojsons": FormatGeoJSONSeq, ".ndjson": FormatGeoJSONSeq, ".jsonl": FormatGeoJSONSeq, ".geojsonseq": FormatGeoJSONSeq,
	".csv": FormatCSV, ".tsv": FormatCSV, ".txt": FormatCSV,
	".shp": FormatShapefile, ".gpkg": FormatGPKG, ".kml": FormatKML, ".kmz": FormatKMZ,
	".fgb": FormatFGB, ".gpx": FormatGPX, ".topojson": FormatTopoJSON, ".gml": FormatGML,
}

var topoJSONRE = regexp.MustCompile(`"type"\s*:\s*"Topology"`)

// detectFormat tells the format of a file from its name and first bytes
// (already decompressed). Content wins over the name when they disagree.
// inArchive: the file was unpacked from a zip, with its sidecar files.
func detectFormat(name string, head []byte, inArchive bool) (string, error) {
	ext := strings.ToLower(filepath.Ext(name))
	byExt := extFormats[ext]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		if byExt == FormatKMZ {
			return FormatKMZ, nil
		}
		return formatZip, nil
	case bytes.HasPrefix(head, []byte("SQLite format 3\x00")):
		return FormatGPKG, nil
	case bytes.HasPrefix(head, []byte("fgb\x03")):
		return FormatFGB, nil
	case bytes.HasPrefix(head, []byte{0x00, 0x00, 0x27, 0x0a}):
		if inArchive {
			return FormatShapefile, nil
		}
		return "", inputErr(ErrUnsupportedFormat, "a bare .shp cannot be imported: upload a zip holding the .shp, .shx, .dbf and .prj files")
	}
	text := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xEF\xBB\xBF")), " \t\r\n")
	switch {
	case len(text) > 0 && text[0] == 0x1E:
		return FormatGeoJSONSeq, nil
	case len(text) > 0 && text[0] == '{':
		if topoJSONRE.Match(head) || byExt == FormatTopoJSON {
			return FormatTopoJSON, nil
		}
		if byExt == FormatGeoJSONSeq {
			return FormatGeoJSONSeq, nil
		}
		return FormatGeoJSON, nil
	case len(text) > 0 && text[0] == '<':
		switch {
		case bytes.Contains(head, []byte("OGRVRTDataSource")), bytes.Contains(head, []byte("VRTDataset")):
			return "", inputErr(ErrUnsupportedFormat, "GDAL virtual formats (VRT) are not accepted")
		case bytes.Contains(head, []byte("<kml")):
			return FormatKML, nil
		case bytes.Contains(head, []byte("<gpx")):
			return FormatGPX, nil
		case bytes.Contains(head, []byte("gml")):
			return FormatGML, nil
		}
		return "", inputErr(ErrUnsupportedFormat, "XML file is neither KML, GPX nor GML")
	}
	if byExt == FormatCSV || byExt == "" && looksText(head) {
		return FormatCSV, nil
	}
	if byExt != "" && byExt != FormatGeoJSON && byExt != FormatGeoJSONSeq {
		return byExt, nil
	}
	return "", inputErr(ErrUnsupportedFormat, "cannot tell the format of %q; supported: GeoJSON, CSV, zipped Shapefile, GeoPackage, KML/KMZ, FlatGeobuf, GPX, TopoJSON, GML", name)
}

// formatZip is an archive whose content decides the format.
const formatZip = "zip"

func looksText(head []byte) bool {
	if len(head) == 0 {
		return false
	}
	return bytes.IndexByte(head, 0) < 0
}

// input is a resolved source: a plain or gzip file in a known format.
type input struct {
	format string
	path   string
	name   string
	gzip   bool  // path is gzip-compressed (native formats stream it)
	size   int64 // bytes of path on disk
	// layerChosen: Options.Layer already picked this file among several
	// in an archive; the GDAL loader must not apply it again.
	layerChosen bool
}

// resolve finds the format of path, unpacking archives and decompressing
// gzip for GDAL formats, with all the size checks.
func (j *job) resolve(ctx context.Context, path, name string, depth int) (*input, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening the source: %w", err)
	}
	if fi.Size() == 0 {
		return nil, inputErr(ErrEmpty, "%s has no bytes", name)
	}
	if fi.Size() > j.opts.MaxBytes {
		return nil, inputErr(ErrTooLarge, "%s is %d bytes; the limit is %d", name, fi.Size(), j.opts.MaxBytes)
	}
	in := &input{path: path, name: name, size: fi.Size()}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the source: %w", err)
	}
	raw := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, raw)
	raw = raw[:n]
	head := raw
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		in.gzip = true
		in.name = strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".GZ")
		f.Seek(0, io.SeekStart)
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, &InputError{Kind: ErrMalformed, Reason: "bad gzip data: " + err.Error(), Err: err}
		}
		head = make([]byte, 64<<10)
		n, err := io.ReadFull(zr, head)
		head = head[:n]
		if n == 0 {
			f.Close()
			if err != nil && err != io.EOF {
				return nil, &InputError{Kind: ErrMalformed, Reason: "bad gzip data: " + err.Error(), Err: err}
			}
			return nil, inputErr(ErrEmpty, "%s decompresses to nothing", name)
		}
	}
	f.Close()

	format := ""
	if depth == 0 && j.opts.Format != "" && !bytes.HasPrefix(head, []byte("PK\x03\x04")) {
		format = j.opts.Format
	} else if format, err = detectFormat(in.name, head, depth > 0); err != nil {
		return nil, err
	}
	if format == formatZip || format == FormatKMZ {
		if in.gzip {
			return nil, inputErr(ErrUnsupportedFormat, "a gzip-compressed zip archive is not supported")
		}
		if depth > 0 {
			return nil, inputErr(ErrUnsupportedFormat, "archives inside archives are not supported")
		}
		return j.unpack(ctx, in, format)
	}
	in.format = format
	if in.gzip && format != FormatGeoJSON && format != FormatGeoJSONSeq && format != FormatCSV {
		// GDAL would read through /vsigzip/ without our limits: expand
		// it ourselves, checked.
		p, size, err := j.gunzipToTemp(in)
		if err != nil {
			return nil, err
		}
		in.path, in.size, in.gzip = p, size, false
	}
	return in, nil
}

// openStream opens the decompressed content of in, checked against the
// limits, and counts the stored bytes read into *read.
func (j *job) openStream(in *input, read *countingReader) (io.ReadCloser, error) {
	f, err := os.Open(in.path)
	if err != nil {
		return nil, fmt.Errorf("opening the source: %w", err)
	}
	read.r = f
	if !in.gzip {
		return struct {
			io.Reader
			io.Closer
		}{read, f}, nil
	}
	zr, err := gzip.NewReader(read)
	if err != nil {
		f.Close()
		return nil, &InputError{Kind: ErrMalformed, Reason: "bad gzip data: " + err.Error(), Err: err}
	}
	lr := &expandLimit{r: zr, compressed: read, max: j.opts.MaxUncompressedBytes, ratio: j.opts.MaxCompressionRatio, name: in.name}
	return newReadAhead(lr, f), nil
}

// readAhead decompresses in its own goroutine, a few chunks ahead of the
// parser: on two cores, inflating and parsing then overlap.
type readAhead struct {
	full   chan []byte
	free   chan []byte
	stop   chan struct{}
	exited chan struct{}
	buf    []byte // the chunk being consumed, whole
	cur    []byte // its unread part
	err    error  // set by the reader goroutine before it closes full
	closer io.Closer
}

const (
	readAheadChunk = 256 << 10
	readAheadDepth = 4
)

func newReadAhead(r io.Reader, c io.Closer) *readAhead {
	ra := &readAhead{
		full: make(chan []byte, readAheadDepth), free: make(chan []byte, readAheadDepth+1),
		stop: make(chan struct{}), exited: make(chan struct{}), closer: c,
	}
	for i := 0; i < readAheadDepth+1; i++ {
		ra.free <- make([]byte, readAheadChunk)
	}
	go ra.fill(r)
	return ra
}

func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.exited)
	defer close(ra.full)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(r, buf[:cap(buf)])
		if n > 0 {
			select {
			case ra.full <- buf[:n]:
			case <-ra.stop:
				return
			}
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.buf != nil {
			ra.free <- ra.buf
			ra.buf = nil
		}
		buf, ok := <-ra.full
		if !ok {
			return 0, ra.err
		}
		ra.buf, ra.cur = buf, buf
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the reader goroutine and closes the file.
func (ra *readAhead) Close() error {
	close(ra.stop)
	<-ra.exited
	return ra.closer.Close()
}

// countingReader counts bytes read through it; N may be called from
// another goroutine (the read-ahead reads, the parser reports progress).
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// N returns the bytes read so far.
func (c *countingReader) N() int64 { return c.n.Load() }

// ratioFloor is the expanded size below which the ratio is not checked:
// small archives of repetitive text (a padded .dbf) legitimately compress
// very well.
const ratioFloor = 64 << 20

// expandLimit enforces the expanded size and ratio limits on a
// decompressing reader, counting the bytes it really produces.
type expandLimit struct {
	r          io.Reader
	compressed *countingReader
	n          int64
	max, ratio int64
	name       string
}

func (e *expandLimit) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if lerr := checkExpansion(e.n, e.compressed.N(), e.max, e.ratio, e.name); lerr != nil {
		return n, lerr
	}
	if err != nil && err != io.EOF {
		err = &InputError{Kind: ErrMalformed, Reason: "bad compressed data in " + e.name + ": " + err.Error(), Err: err}
	}
	return n, err
}

func checkExpansion(expanded, compressed, max, ratio int64, name string) error {
	if expanded > max {
		return inputErr(ErrTooLarge, "%s expands beyond %d bytes", name, max)
	}
	if expanded > ratioFloor && expanded > ratio*max64(compressed, 1) {
		return inputErr(ErrZipBomb, "%s expanded to %d bytes from %d compressed bytes (more than %d×)", name, expanded, compressed, ratio)
	}
	return nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func (j *job) gunzipToTemp(in *input) (string, int64, error) {
	var read countingReader
	rc, err := j.openStream(in, &read)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	dir, err := os.MkdirTemp(j.opts.TempDir, "meridian-import-")
	if err != nil {
		return "", 0, fmt.Errorf("creating a temp dir: %w", err)
	}
	j.tmp = append(j.tmp, dir)
	p := filepath.Join(dir, "source"+filepath.Ext(in.name))
	out, err := os.Create(p)
	if err != nil {
		return "", 0, fmt.Errorf("creating a temp file: %w", err)
	}
	n, err := io.Copy(out, rc)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return "", 0, err
		}
		return "", 0, fmt.Errorf("decompressing %s: %w", in.name, err)
	}
	return p, n, nil
}
