package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/meridian-gis/meridian/workers/importer/geojsonstream"
	"github.com/meridian-gis/meridian/workers/importer/geomenc"
	"github.com/meridian-gis/meridian/workers/importer/internal/jsonscan"
	"github.com/meridian-gis/meridian/workers/importer/internal/textcheck"
)

// maxColumns leaves room under PostgreSQL's 1600-column limit.
const maxColumns = 1500

// loadGeoJSON streams features into a text staging table. Properties
// become columns as they are first met (the COPY pauses for an ALTER TABLE
// ADD COLUMN, which rewrites nothing); a feature's "id" becomes column
// "id" unless a property has that name.
func (j *job) loadGeoJSON(ctx context.Context, in *input) (*staged, error) {
	st := &staged{table: j.stage, orderBy: "_mi_row", geomStats: map[geomKey]int64{}, hasGeom: true}
	if err := j.createNativeStaging(ctx, nil); err != nil {
		return nil, err
	}
	var (
		read   countingReader
		cols   []stagedCol
		reader *geojsonstream.Reader
	)
	produce := func(w *rowWriter) error {
		rc, err := j.openStream(in, &read)
		if err != nil {
			return err
		}
		defer rc.Close()
		reader = geojsonstream.NewReader(textcheck.NewReader(rc), geojsonstream.Options{MaxFeatureBytes: j.opts.MaxFeatureBytes})
		copyCols := []string{"_mi_row", "geom"}
		if err := w.segment(nil, columnList(copyCols...), len(copyCols)); err != nil {
			return err
		}
		index := map[string]int{}
		var (
			vals      [][]byte
			set       []int
			gb        geomenc.Builder
			nullGeoms int64
			closed    int64
			newCols   []string
		)
		for {
			f, err := reader.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			// Properties → column values.
			for _, i := range set {
				vals[i] = nil
			}
			set = set[:0]
			hasID := false
			newCols = newCols[:0]
			add := func(key string, v []byte) error {
				i, ok := index[key]
				if !ok {
					if len(cols) >= maxColumns {
						return &InputError{Kind: ErrMalformed, Feature: f.Index, Offset: f.Offset, HasOffset: true, Reason: fmt.Sprintf("more than %d distinct properties", maxColumns)}
					}
					i = len(cols)
					index[key] = i
					stage := "c" + strconv.Itoa(i+1)
					cols = append(cols, stagedCol{stage: stage, source: key, typ: "text"})
					vals = append(vals, nil)
					newCols = append(newCols, stage)
				}
				if vals[i] == nil {
					set = append(set, i)
				}
				vals[i] = v
				return nil
			}
			err = f.Properties(func(key []byte, esc bool, v []byte) error {
				if esc {
					k, err := jsonscan.Unquote(key)
					if err != nil {
						return err
					}
					hasID = hasID || k == "id"
					return add(k, v)
				}
				hasID = hasID || string(key) == "id"
				if i, ok := index[string(key)]; ok {
					if vals[i] == nil {
						set = append(set, i)
					}
					vals[i] = v
					return nil
				}
				return add(string(key), v)
			})
			if err == nil && f.ID != nil && !hasID {
				err = add("id", f.ID)
			}
			if err != nil {
				var ie *InputError
				if errors.As(err, &ie) {
					return ie
				}
				return &InputError{Kind: ErrMalformed, Feature: f.Index, Offset: f.Offset, HasOffset: true, Reason: "bad properties", Err: err}
			}
			if len(newCols) > 0 {
				ddl := make([]string, len(newCols))
				for k, c := range newCols {
					ddl[k] = "ALTER TABLE " + j.stage.Sanitized() + " ADD COLUMN " + quoteIdent(c) + " text"
				}
				copyCols = append(copyCols, newCols...)
				if err := w.segment(ddl, columnList(copyCols...), len(copyCols)); err != nil {
					return err
				}
			}

			if err := w.beginRow(); err != nil {
				return err
			}
			w.int(f.Index)
			// Geometry.
			ok, gerr := false, error(nil)
			if f.Geometry != nil {
				ok, gerr = gb.GeoJSON(f.Geometry)
			}
			if gerr != nil {
				return &InputError{Kind: ErrMalformed, Feature: f.Index, Offset: f.Offset, HasOffset: true, Reason: "geometry: " + gerr.Error(), Err: gerr}
			}
			if !ok {
				w.null()
				nullGeoms++
			} else {
				info := gb.Info()
				st.geomStats[geomKey{info.Type, info.HasZ, info.HasM}]++
				closed += int64(info.ClosedRings)
				if !info.Empty && !lonLatOK(info.BBox) && st.outOfRange == nil {
					st.outOfRange = &InputError{Kind: ErrOutOfRange, Feature: f.Index, Offset: f.Offset, HasOffset: true, Reason: fmt.Sprintf("geometry bounds %v are outside longitude ±180 / latitude ±90; if the file is projected, set its SRID", info.BBox)}
					if j.opts.SourceSRID == 4326 {
						return st.outOfRange
					}
				}
				w.ewkb(gb.Bytes())
			}
			for i := range cols {
				v := vals[i]
				if v == nil || v[0] == 'n' {
					w.null()
					continue
				}
				c := &cols[i]
				if c.kinds&kText == 0 {
					c.kinds |= classifyJSON(v)
				}
				switch v[0] {
				case '"':
					s := v[1 : len(v)-1]
					if hasBackslash(s) {
						u, err := jsonscan.Unquote(s)
						if err != nil {
							return &InputError{Kind: ErrMalformed, Feature: f.Index, Offset: f.Offset, HasOffset: true, Column: c.source, Reason: "bad string"}
						}
						w.text(u)
					} else {
						w.raw(s) // JSON strings hold no raw control characters (no NUL)
					}
				case '{', '[':
					w.raw(v)
				default:
					w.raw(v)
				}
			}
			if err := w.endRow(); err != nil {
				return err
			}
			if f.Index&63 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				j.progress(Progress{Phase: "reading", BytesRead: read.N(), BytesTotal: in.size, Rows: w.rows}, false)
			}
		}
		if nullGeoms > 0 {
			j.warn("%d features have no geometry", nullGeoms)
		}
		if closed > 0 {
			j.warn("%d polygon rings were not closed; they were closed", closed)
		}
		if w.nulBytes > 0 {
			j.warn("%d NUL characters were removed from values", w.nulBytes)
		}
		return nil
	}
	done := j.timed("load geojson")
	rows, err := streamRows(ctx, j.conn, j.stage.Sanitized(), produce)
	done()
	if err != nil {
		return nil, j.geojsonErr(err, in)
	}
	st.rows = rows
	l := newLaunderer("cartodb_id", "geom")
	for i := range cols {
		cols[i].name = l.name(cols[i].source, i)
	}
	st.cols = cols
	st.srid = j.opts.SourceSRID
	if st.srid == 0 {
		st.srid = reader.SRID()
	}
	if st.srid == 0 {
		st.srid = 4326
	}
	return st, nil
}

func hasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// geojsonErr maps stream errors to InputErrors that say where.
func (j *job) geojsonErr(err error, in *input) error {
	if errors.Is(err, geojsonstream.ErrTopoJSON) {
		return errTopoJSON
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return ie
	}
	var se *geojsonstream.SyntaxError
	if errors.As(err, &se) {
		kind := ErrMalformed
		if errors.Is(err, geojsonstream.ErrFeatureTooLarge) {
			kind = ErrTooLarge
		}
		if e := textErr(se.Err); e != se.Err {
			return e
		}
		out := &InputError{Kind: kind, Offset: se.Offset, HasOffset: true, Feature: se.Feature, Reason: se.Msg, Err: se.Err}
		out.Line = j.lineAt(in, se.Offset)
		return out
	}
	if e := textErr(err); e != err {
		return e
	}
	return err
}
