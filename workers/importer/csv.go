package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/meridian-gis/meridian/workers/importer/csvsniff"
	"github.com/meridian-gis/meridian/workers/importer/geomenc"
	"github.com/meridian-gis/meridian/workers/importer/internal/textcheck"
)

// CSV loading. The file is read twice at most: a 1 MiB sniff of its start
// (delimiter, header, encoding, geometry columns, and a first guess of the
// column types), then the stream.
//
// The fast path ("direct") applies to the common big case: a lat/lon CSV
// in EPSG:4326 without type hints. Rows are COPYed straight into a table
// of the final shape — cartodb_id identity, geometry(Point,4326), columns
// typed from the sample — so finishing needs no rewrite. Every value is
// still classified; when one does not fit its column:
//   - integer columns widen in place (ALTER … TYPE) to double precision
//     or text, which is exact since only canonical integers were accepted;
//   - any other mismatch (a double column meeting "n/a") restarts the
//     load through the general path.
//
// Columns empty in the sample, or whose sample type could not widen
// exactly (dates, booleans), start as text and are narrowed at finish to
// what the whole file holds. The general path ("staging") loads every
// value as text into an UNLOGGED table and casts once at finish, to the
// type inferred over all rows.

// csvPlan is what the sniff learned.
type csvPlan struct {
	comma    rune
	latin1   bool
	header   []string
	geom     csvsniff.Geometry
	srid     int   // SRID of the coordinates (0: from the values, else 4326)
	fixed    bool  // srid is known before reading (range errors can fail fast)
	attrs    []int // header indexes of attribute columns
	cols     []stagedCol
	sample   []kind // kinds per attribute column over the sample
	directOK bool
}

const csvSniffBytes = 1 << 20

func (j *job) planCSV(in *input) (*csvPlan, error) {
	var read countingReader
	rc, err := j.openStream(in, &read)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw := make([]byte, csvSniffBytes)
	n, err := io.ReadFull(rc, raw)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	raw = raw[:n]
	p := &csvPlan{}
	probe := raw
	if n == csvSniffBytes {
		// Ignore a rune cut by the sample's end.
		for k := 0; k < 3 && len(probe) > 0 && !utf8.Valid(probe); k++ {
			probe = probe[:len(probe)-1]
		}
	}
	var text io.Reader = bytes.NewReader(raw)
	if !utf8.Valid(probe) && textcheck.LooksLatin1(probe) {
		p.latin1 = true
		text = textcheck.NewLatin1Reader(text)
		j.warn("the file is not UTF-8; it was read as Windows-1252 (Latin-1)")
	} else {
		text = textcheck.NewReader(text)
	}
	sample, err := io.ReadAll(text)
	if err != nil && len(sample) == 0 {
		return nil, textErr(err)
	}
	p.comma = j.opts.CSVDelimiter
	if p.comma == 0 {
		p.comma = csvsniff.Sniff(sample)
	}
	cr := csv.NewReader(bytes.NewReader(sample))
	cr.Comma = p.comma
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	p.header, err = cr.Read()
	if err != nil || len(p.header) == 0 {
		return nil, inputErr(ErrMalformed, "the CSV has no header row")
	}
	if len(p.header) > maxColumns {
		return nil, inputErr(ErrMalformed, "the CSV has %d columns; the limit is %d", len(p.header), maxColumns)
	}
	var rows [][]string
	for len(rows) < 20000 {
		rec, err := cr.Read()
		if err != nil {
			break // EOF, or a row cut by the sample's end
		}
		rows = append(rows, rec)
	}
	if len(rows) == 0 && n < csvSniffBytes {
		return nil, inputErr(ErrNoFeatures, "the CSV has a header but no rows")
	}

	if err := p.findGeometry(j.opts.GeometryColumns, rows); err != nil {
		return nil, err
	}
	p.srid, p.fixed = j.opts.SourceSRID, j.opts.SourceSRID != 0
	if p.geom.Kind == csvsniff.LatLon && p.srid == 0 {
		p.srid, p.fixed = 4326, true
	}
	l := newLaunderer("cartodb_id", "geom")
	for i, h := range p.header {
		if p.geom.Kind == csvsniff.Column && i == p.geom.Column {
			continue
		}
		p.attrs = append(p.attrs, i)
		p.cols = append(p.cols, stagedCol{stage: "c" + strconv.Itoa(len(p.cols)+1), name: l.name(h, i), source: h, typ: "text"})
	}
	p.sample = make([]kind, len(p.attrs))
	for _, rec := range rows {
		for a, i := range p.attrs {
			if i < len(rec) && rec[i] != "" {
				p.sample[a] |= classifyText(rec[i])
			}
		}
	}
	p.directOK = p.geom.Kind == csvsniff.LatLon && p.srid == 4326 && len(j.opts.TypeHints) == 0
	return p, nil
}

func (p *csvPlan) findGeometry(g *CSVGeometry, rows [][]string) error {
	find := func(name string) (int, error) {
		for i, h := range p.header {
			if strings.EqualFold(strings.TrimSpace(h), strings.TrimSpace(name)) {
				return i, nil
			}
		}
		return 0, &InputError{Kind: ErrNoGeometry, Column: name, Reason: "no such column; the columns are " + strings.Join(p.header, ", ")}
	}
	if g != nil {
		if g.Column != "" {
			i, err := find(g.Column)
			p.geom = csvsniff.Geometry{Kind: csvsniff.Column, Column: i}
			return err
		}
		la, err := find(g.Latitude)
		if err != nil {
			return err
		}
		lo, err := find(g.Longitude)
		p.geom = csvsniff.Geometry{Kind: csvsniff.LatLon, Lat: la, Lon: lo}
		return err
	}
	p.geom = csvsniff.Detect(p.header, rows)
	if p.geom.Kind == csvsniff.None {
		return inputErr(ErrNoGeometry, "the CSV has no coordinate columns (latitude/longitude, lat/lng, y/x) and no geometry column (WKT, WKB hex or GeoJSON); its columns are %s — name the geometry columns explicitly", strings.Join(p.header, ", "))
	}
	return nil
}

// directType is the type a direct load gives a column from its sample.
func directType(sample kind) string {
	switch t := typeOf(sample); {
	case sample == 0:
		return "text"
	case t == "bigint", t == "double precision":
		return t
	}
	return "text"
}

func (j *job) loadCSV(ctx context.Context, in *input) (*staged, error) {
	p, err := j.planCSV(in)
	if err != nil {
		return nil, err
	}
	if p.directOK {
		st, err := j.loadCSVOnce(ctx, in, p, true)
		if !errors.Is(err, errRestart) {
			return st, err
		}
		j.log.Info("direct CSV load restarts through staging", "reason", err)
		if err := j.dropStaging(ctx); err != nil {
			return nil, err
		}
		for i := range p.cols {
			p.cols[i].kinds = 0
		}
	}
	return j.loadCSVOnce(ctx, in, p, false)
}

func (j *job) loadCSVOnce(ctx context.Context, in *input, p *csvPlan, direct bool) (*staged, error) {
	cols := append([]stagedCol(nil), p.cols...)
	st := &staged{table: j.stage, direct: direct, srid: p.srid, geomStats: map[geomKey]int64{}, hasGeom: true}
	var copyCols []string
	if direct {
		st.table = j.final
		var b strings.Builder
		b.WriteString("CREATE TABLE " + j.final.Sanitized() + " (cartodb_id bigint GENERATED BY DEFAULT AS IDENTITY, geom geometry(Point,4326)")
		copyCols = append(copyCols, "geom")
		for i := range cols {
			cols[i].stage = cols[i].name
			cols[i].typ = directType(p.sample[i])
			b.WriteString(", " + quoteIdent(cols[i].name) + " " + cols[i].typ)
			copyCols = append(copyCols, cols[i].name)
		}
		b.WriteString(")")
		if _, err := j.conn.Exec(ctx, b.String()); err != nil {
			return nil, fmt.Errorf("creating the table: %w", err)
		}
		if err := j.storeGeomUncompressed(ctx, j.final); err != nil {
			return nil, err
		}
		if err := j.markTable(ctx, j.final); err != nil {
			return nil, err
		}
	} else {
		st.orderBy = "_mi_row"
		if err := j.createNativeStaging(ctx, cols); err != nil {
			return nil, err
		}
		copyCols = append(copyCols, "_mi_row", "geom")
		for _, c := range cols {
			copyCols = append(copyCols, c.stage)
		}
	}
	colList := columnList(copyCols...)

	var read countingReader
	produce := func(w *rowWriter) error {
		rc, err := j.openStream(in, &read)
		if err != nil {
			return err
		}
		defer rc.Close()
		var text io.Reader
		if p.latin1 {
			text = textcheck.NewLatin1Reader(rc)
		} else {
			text = textcheck.NewReader(rc)
		}
		guard := &rowGuard{r: bufio.NewReaderSize(text, 256<<10), max: j.opts.MaxFeatureBytes}
		cr := csv.NewReader(guard)
		guard.cr = cr
		cr.Comma = p.comma
		// Strict quoting: encoding/csv's LazyQuotes lets a stray opening
		// quote swallow the rows up to the next quote, silently (seen on
		// the airports fixture: 300 rows gone). A clear error with its
		// line is better than a table missing rows.
		cr.ReuseRecord = true
		cr.FieldsPerRecord = len(p.header)
		if _, err := cr.Read(); err != nil {
			return csvErr(err, cr)
		}
		if err := w.segment(nil, colList, len(copyCols)); err != nil {
			return err
		}
		return j.csvRows(ctx, w, cr, p, st, cols, direct, in, &read)
	}
	done := j.timed("load csv")
	rows, err := streamRows(ctx, j.conn, st.table.Sanitized(), produce)
	done()
	if err != nil {
		return nil, err
	}
	st.rows = rows
	st.cols = cols
	return st, nil
}

// csvRows is the per-row loop of a CSV load.
func (j *job) csvRows(ctx context.Context, w *rowWriter, cr *csv.Reader, p *csvPlan, st *staged, cols []stagedCol, direct bool, in *input, read *countingReader) error {
	var gb geomenc.Builder
	var sridSeen int
	var nullGeoms, closed int64
	var row int64
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return csvErr(err, cr)
		}
		row++
		if err := w.beginRow(); err != nil {
			return err
		}
		if !direct {
			w.int(row)
		}
		// Geometry.
		var (
			geom []byte
			info geomenc.Info
		)
		switch p.geom.Kind {
		case csvsniff.LatLon:
			la, lo := strings.TrimSpace(rec[p.geom.Lat]), strings.TrimSpace(rec[p.geom.Lon])
			if la == "" && lo == "" {
				break
			}
			lat, err1 := strconv.ParseFloat(la, 64)
			lon, err2 := strconv.ParseFloat(lo, 64)
			if err1 != nil || err2 != nil || math.IsNaN(lat+lon) || math.IsInf(lat+lon, 0) {
				line, _ := cr.FieldPos(0)
				col, v := p.header[p.geom.Lat], la
				if err1 == nil {
					col, v = p.header[p.geom.Lon], lo
				}
				return &InputError{Kind: ErrMalformed, Line: int64(line), Column: col, Reason: fmt.Sprintf("coordinate %q is not a number", v)}
			}
			if p.srid == 4326 && !lonLatOK([4]float64{lon, lat, lon, lat}) {
				line, _ := cr.FieldPos(0)
				return &InputError{Kind: ErrOutOfRange, Line: int64(line), Reason: fmt.Sprintf("latitude %v, longitude %v is outside ±90/±180; if the file is projected, set its SRID", lat, lon)}
			}
			gb.PointXY(lon, lat)
			geom, info = gb.Bytes(), gb.Info()
		case csvsniff.Column:
			v := strings.TrimSpace(rec[p.geom.Column])
			if v == "" {
				break
			}
			var err error
			switch csvsniff.Encoding(v) {
			case csvsniff.WKBHex:
				err = gb.WKBHex(v)
			case csvsniff.GeoJSON:
				if !json.Valid([]byte(v)) {
					err = errors.New("GeoJSON geometry is not valid JSON")
				} else {
					_, err = gb.GeoJSON([]byte(v))
				}
			default:
				err = gb.WKT(v)
			}
			if err != nil {
				line, _ := cr.FieldPos(p.geom.Column)
				return &InputError{Kind: ErrMalformed, Line: int64(line), Column: p.header[p.geom.Column], Reason: err.Error(), Err: err}
			}
			geom, info = gb.Bytes(), gb.Info()
			if info.SRID != 0 {
				if sridSeen != 0 && info.SRID != sridSeen {
					line, _ := cr.FieldPos(p.geom.Column)
					return &InputError{Kind: ErrMalformed, Line: int64(line), Column: p.header[p.geom.Column], Reason: fmt.Sprintf("geometries mix SRID %d and %d", sridSeen, info.SRID)}
				}
				sridSeen = info.SRID
			}
			closed += int64(info.ClosedRings)
			if !info.Empty && !lonLatOK(info.BBox) && st.outOfRange == nil {
				line, _ := cr.FieldPos(p.geom.Column)
				st.outOfRange = &InputError{Kind: ErrOutOfRange, Line: int64(line), Column: p.header[p.geom.Column], Reason: fmt.Sprintf("geometry bounds %v are outside longitude ±180 / latitude ±90; if the file is projected, set its SRID", info.BBox)}
				if p.fixed && p.srid == 4326 {
					return st.outOfRange
				}
			}
		}
		if geom == nil {
			w.null()
			nullGeoms++
		} else {
			st.geomStats[geomKey{info.Type, info.HasZ, info.HasM}]++
			if direct {
				w.ewkbSRID(geom, 4326)
			} else {
				w.ewkb(geom)
			}
		}
		// Attributes.
		for a, i := range p.attrs {
			v := rec[i]
			if v == "" {
				w.null()
				continue
			}
			c := &cols[a]
			if c.kinds&kText == 0 {
				k := classifyText(v)
				if direct && !fits(k, c.typ) {
					to := typeOf(c.kinds | k)
					if !losslessWiden(c.typ, to, c.kinds) {
						return fmt.Errorf("%w: column %q (%s) meets %q", errRestart, c.name, c.typ, v)
					}
					// Finish this row in the old shape? No: the row is
					// half written. Widen first, then rewrite the row.
					if err := j.widenDirect(w, c, to); err != nil {
						return err
					}
				}
				c.kinds |= k
			}
			switch c.typ {
			case "bigint":
				n, _ := strconv.ParseInt(v, 10, 64) // classified kInt/kInt64
				w.int(n)
			case "double precision":
				f, _ := strconv.ParseFloat(v, 64) // classified kInt/kFloat
				w.float(f)
			default:
				w.text(v)
			}
		}
		if err := w.endRow(); err != nil {
			return err
		}
		if row&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			j.progress(Progress{Phase: "reading", BytesRead: read.N(), BytesTotal: in.size, Rows: w.rows}, false)
		}
	}
	if sridSeen != 0 && !p.fixed {
		st.srid = sridSeen
	}
	if st.srid == 0 {
		st.srid = 4326
	}
	if nullGeoms > 0 {
		j.warn("%d rows have no geometry", nullGeoms)
	}
	if closed > 0 {
		j.warn("%d polygon rings were not closed; they were closed", closed)
	}
	if w.nulBytes > 0 {
		j.warn("%d NUL characters were removed from values", w.nulBytes)
	}
	return nil
}

// widenDirect changes a direct load's column type mid-stream. The row
// being written is already partly in the current batch: it moves to a new
// batch that starts a segment whose DDL widens the column.
func (j *job) widenDirect(w *rowWriter, c *stagedCol, to string) error {
	partial := append([]byte(nil), w.cur.buf[w.rowStart:]...)
	w.cur.buf = w.cur.buf[:w.rowStart]
	ddl := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s", j.final.Sanitized(), quoteIdent(c.name), to, quoteIdent(c.name), to)
	j.log.Info("widening a column during a direct load", "column", c.name, "from", c.typ, "to", to)
	if err := w.segment([]string{ddl}, w.curCols, w.ncols); err != nil {
		return err
	}
	w.rowStart = len(w.cur.buf)
	w.cur.buf = append(w.cur.buf, partial...)
	c.typ = to
	return nil
}

// csvErr turns csv and text-layer errors into InputErrors with the line.
func csvErr(err error, cr *csv.Reader) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		switch {
		case errors.Is(pe.Err, csv.ErrFieldCount):
			return &InputError{Kind: ErrMalformed, Line: int64(pe.StartLine), Reason: "the row does not have as many fields as the header", Err: err}
		case errors.Is(pe.Err, csv.ErrBareQuote):
			return &InputError{Kind: ErrMalformed, Line: int64(pe.Line), Reason: `a " inside an unquoted field: quote the field and double the quote ("")`, Err: err}
		case errors.Is(pe.Err, csv.ErrQuote):
			return &InputError{Kind: ErrMalformed, Line: int64(pe.StartLine), Reason: fmt.Sprintf(`a quoted field of the row starting here is not closed properly, as seen on line %d (a " inside a field must be doubled: "")`, pe.Line), Err: err}
		}
		if e := textErr(pe.Err); e != pe.Err {
			return e
		}
		return &InputError{Kind: ErrMalformed, Line: int64(pe.StartLine), Reason: pe.Err.Error(), Err: err}
	}
	return textErr(err)
}

// rowGuard refuses rows larger than max bytes (an unclosed quote would
// otherwise make encoding/csv swallow the rest of the file into memory).
type rowGuard struct {
	r   io.Reader
	cr  *csv.Reader
	n   int64
	max int64
}

func (g *rowGuard) Read(p []byte) (int, error) {
	if g.n-g.cr.InputOffset() > g.max {
		return 0, inputErr(ErrTooLarge, "a CSV row is larger than %d bytes (an unclosed quote?)", g.max)
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}
