package importer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meridian-gis/meridian/workers/importer/geomenc"
)

// The GDAL path: ogr2ogr loads the chosen layer into an UNLOGGED staging
// table (reprojected to EPSG:4326, generic geometry type, no index), and
// finish does the rest exactly as for native loads. GDAL 3.6 has no -if
// to pin the input driver, so the format is decided by our own detection
// and the drivers that reach other files or the network (VRT, WFS…) are
// disabled through GDAL_SKIP.

// gdalSkip lists the GDAL drivers an upload must never reach.
const gdalSkip = "VRT OGR_VRT WFS OAPIF CSW WMS WMTS WCS ESRIC PLScenes NGW Elasticsearch CouchDB MongoDBv3 EEDA AmazonS3"

// Layer describes one layer of a source.
type Layer struct {
	// Name of the layer (a GeoPackage table, a KML folder, a shapefile).
	Name string
	// GeometryType as GDAL reports it ("Multi Polygon", "Unknown (any)").
	GeometryType string
	// Features in the layer (-1 when GDAL cannot tell cheaply).
	Features int64
}

type ogrLayer struct {
	Layer
	noSRS  bool
	epsg   int
	is3D   bool
	fields []string // source field names, in order
}

var (
	ogrEPSGRE  = regexp.MustCompile(`^    ID\["EPSG",(\d+)\]\]$`)
	ogrFieldRE = regexp.MustCompile(`^(.+): [A-Za-z0-9]+(List)? \(\d+\.\d+\)`)
)

// ogrLayers lists the layers of path with ogrinfo.
func (j *job) ogrLayers(ctx context.Context, path string) ([]ogrLayer, error) {
	cmd := exec.CommandContext(ctx, j.opts.OGRInfo, "-ro", "-so", "-al", path)
	cmd.Env = gdalEnv(nil)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 64 << 10}
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &InputError{Kind: ErrMalformed, Reason: "GDAL cannot read the file: " + firstGDALError(stderr.String()), Err: err}
	}
	return parseOGRInfo(string(out)), nil
}

func parseOGRInfo(out string) []ogrLayer {
	var layers []ogrLayer
	var cur *ogrLayer
	inSRS := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "Layer name: "):
			layers = append(layers, ogrLayer{Layer: Layer{Name: strings.TrimPrefix(line, "Layer name: "), Features: -1}})
			cur = &layers[len(layers)-1]
			inSRS = false
		case cur == nil:
		case strings.HasPrefix(line, "Geometry: "):
			cur.GeometryType = strings.TrimPrefix(line, "Geometry: ")
			cur.is3D = strings.HasPrefix(cur.GeometryType, "3D ")
		case strings.HasPrefix(line, "Feature Count: "):
			cur.Features, _ = strconv.ParseInt(strings.TrimPrefix(line, "Feature Count: "), 10, 64)
		case line == "Layer SRS WKT:":
			inSRS = true
		case inSRS && line == "(unknown)":
			cur.noSRS = true
			inSRS = false
		case inSRS && strings.HasPrefix(line, "Data axis to CRS axis mapping"):
			inSRS = false
		case inSRS:
			if m := ogrEPSGRE.FindStringSubmatch(line); m != nil {
				cur.epsg, _ = strconv.Atoi(m[1])
			}
		case strings.HasPrefix(line, "FID Column") || strings.HasPrefix(line, "Geometry Column") || strings.HasPrefix(line, "Extent:"):
		default:
			if m := ogrFieldRE.FindStringSubmatch(line); m != nil {
				cur.fields = append(cur.fields, m[1])
			}
		}
	}
	return layers
}

// chooseLayer picks the layer to import.
func (j *job) chooseLayer(layers []ogrLayer, in *input) (ogrLayer, error) {
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = fmt.Sprintf("%s (%d feature%s)", l.Name, l.Features, plural(l.Features))
	}
	if j.opts.Layer != "" && !in.layerChosen {
		for _, l := range layers {
			if l.Name == j.opts.Layer {
				return l, nil
			}
		}
		for _, l := range layers {
			if strings.EqualFold(l.Name, j.opts.Layer) {
				return l, nil
			}
		}
		return ogrLayer{}, &InputError{Kind: ErrLayerRequired, Reason: fmt.Sprintf("no layer %q; the layers are: %s", j.opts.Layer, strings.Join(names, ", "))}
	}
	switch len(layers) {
	case 0:
		return ogrLayer{}, inputErr(ErrNoFeatures, "GDAL finds no layer in the file")
	case 1:
		return layers[0], nil
	}
	var nonEmpty []ogrLayer
	for _, l := range layers {
		if l.Features != 0 {
			nonEmpty = append(nonEmpty, l)
		}
	}
	if len(nonEmpty) == 1 {
		return nonEmpty[0], nil
	}
	if len(nonEmpty) == 0 {
		return ogrLayer{}, inputErr(ErrNoFeatures, "every layer is empty")
	}
	return ogrLayer{}, &InputError{Kind: ErrLayerRequired, Reason: "the file has several layers; set the layer to one of: " + strings.Join(names, ", ")}
}

// loadGDAL runs ogr2ogr into the staging table.
func (j *job) loadGDAL(ctx context.Context, in *input) (*staged, error) {
	layers, err := j.ogrLayers(ctx, in.path)
	if err != nil {
		return nil, err
	}
	layer, err := j.chooseLayer(layers, in)
	if err != nil {
		return nil, err
	}
	j.layer = layer.Name
	if layer.Features == 0 {
		return nil, inputErr(ErrNoFeatures, "layer %q is empty", layer.Name)
	}
	conn, env, err := gdalConn(j.pool.Config().ConnConfig.Config, j.pool.Config().ConnString())
	if err != nil {
		return nil, err
	}
	nlt := "GEOMETRY"
	if layer.is3D {
		nlt = "GEOMETRYZ"
	}
	args := []string{
		"-f", "PostgreSQL", conn, in.path, layer.Name,
		"-nln", j.stage.Name,
		"-lco", "SCHEMA=" + j.stage.Schema, "-lco", "GEOMETRY_NAME=geom", "-lco", "SPATIAL_INDEX=NONE",
		"-lco", "UNLOGGED=ON", "-lco", "FID=_mi_fid", "-lco", "FID64=YES", "-lco", "PRECISION=NO", "-lco", "LAUNDER=YES",
		"-nlt", nlt, "-unsetFid", "-gt", "unlimited", "--config", "PG_USE_COPY", "YES", "-progress",
	}
	st := &staged{table: j.stage, orderBy: "_mi_fid", srid: 4326, sridSet: true}
	switch {
	case j.opts.SourceSRID != 0:
		args = append(args, "-s_srs", "EPSG:"+strconv.Itoa(j.opts.SourceSRID), "-t_srs", "EPSG:4326")
	case layer.noSRS:
		args = append(args, "-a_srs", "EPSG:4326")
		j.warn("layer %q has no coordinate system: it was read as EPSG:4326 (longitude/latitude)", layer.Name)
	default:
		args = append(args, "-t_srs", "EPSG:4326")
	}
	sourceSRID := j.opts.SourceSRID
	if sourceSRID == 0 {
		sourceSRID = layer.epsg
		if layer.noSRS {
			sourceSRID = 4326
		}
	}
	j.log.Debug("running ogr2ogr", "args", args)

	cmd := exec.CommandContext(ctx, j.opts.OGR2OGR, args...)
	cmd.Env = gdalEnv(env)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 64 << 10}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("running ogr2ogr: %w", err)
	}
	done := j.timed("load gdal")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running ogr2ogr: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		j.ogrProgress(stdout, in.size)
	}()
	wg.Wait()
	err = cmd.Wait()
	done()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := redact(stderr.String(), env)
		if exists, _ := j.tableExists(ctx, j.stage); !exists && !strings.Contains(msg, "PQ") && !strings.Contains(strings.ToLower(msg), "connection") {
			return nil, &InputError{Kind: ErrMalformed, Reason: "GDAL cannot read layer " + strconv.Quote(layer.Name) + ": " + firstGDALError(msg), Err: err}
		}
		return nil, fmt.Errorf("ogr2ogr failed: %s: %w", firstGDALError(msg), err)
	}
	if exists, err := j.tableExists(ctx, j.stage); err != nil {
		return nil, err
	} else if !exists {
		return nil, inputErr(ErrNoFeatures, "GDAL wrote nothing for layer %q", layer.Name)
	}

	rows, err := j.conn.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, j.stage.Sanitized())
	if err != nil {
		return nil, fmt.Errorf("reading the staged columns: %w", err)
	}
	type stagedAttr struct{ name, typ string }
	var attrs []stagedAttr
	for rows.Next() {
		var a stagedAttr
		if err := rows.Scan(&a.name, &a.typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the staged columns: %w", err)
		}
		switch a.name {
		case "_mi_fid":
		case "geom":
			st.hasGeom = true
		default:
			attrs = append(attrs, a)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the staged columns: %w", err)
	}
	l := newLaunderer("cartodb_id", "geom")
	for k, a := range attrs {
		src := a.name
		if len(layer.fields) == len(attrs) {
			src = layer.fields[k] // ogrinfo lists the fields in the order ogr2ogr creates them
		}
		st.cols = append(st.cols, stagedCol{stage: a.name, name: l.name(a.name, k), source: src, typ: gdalType(a.typ), gdal: true})
	}
	if err := j.conn.QueryRow(ctx, "SELECT count(*) FROM "+j.stage.Sanitized()).Scan(&st.rows); err != nil {
		return nil, fmt.Errorf("counting the staged rows: %w", err)
	}
	st.srid = 4326
	if st.hasGeom && (layer.noSRS || sourceSRID == 4326) && j.opts.SourceSRID == 0 {
		// Nothing was reprojected: check the data really is lon/lat.
		var fid int64
		err := j.conn.QueryRow(ctx, "SELECT _mi_fid FROM "+j.stage.Sanitized()+` WHERE geom IS NOT NULL AND NOT ST_IsEmpty(geom)
			AND (ST_XMin(geom) < $1 OR ST_XMax(geom) > $2 OR ST_YMin(geom) < $3 OR ST_YMax(geom) > $4) LIMIT 1`,
			-180-lonLatSlack, 180+lonLatSlack, -90-lonLatSlack, 90+lonLatSlack).Scan(&fid)
		if err == nil {
			return nil, &InputError{Kind: ErrOutOfRange, Feature: fid, Reason: "coordinates are outside longitude ±180 / latitude ±90; if the file is projected, set its SRID"}
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("checking coordinate ranges: %w", err)
		}
	}
	st.sourceSRID, st.sourceSet = sourceSRID, true
	st.declared = ogrGeometryType(layer.GeometryType)
	return st, nil
}

// ogrGeometryType reads ogrinfo's "Geometry:" ("3D Multi Polygon").
func ogrGeometryType(s string) geomenc.Type {
	s = strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(s, "3D "), "Measured "), " ", "")
	for t := geomenc.Point; t <= geomenc.GeometryCollection; t++ {
		if strings.EqualFold(s, t.String()) {
			return t
		}
	}
	return 0
}

// gdalType maps a staged column type to the final one.
func gdalType(t string) string {
	switch {
	case t == "character varying", strings.HasPrefix(t, "character varying("), strings.HasPrefix(t, "character("):
		return "text"
	case t == "json":
		return "jsonb"
	case t == "timestamp with time zone":
		return "timestamptz"
	case t == "timestamp without time zone":
		return "timestamp"
	}
	return t
}

var progressRE = regexp.MustCompile(`(\d+)(\.\.\.| - done)`)

// ogrProgress turns "0...10...20" on ogr2ogr's stdout into Progress calls.
func (j *job) ogrProgress(r io.Reader, size int64) {
	br := bufio.NewReader(r)
	var tok []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return
		}
		tok = append(tok, c)
		if m := progressRE.FindSubmatch(tok); m != nil {
			pct, _ := strconv.ParseInt(string(m[1]), 10, 64)
			j.progress(Progress{Phase: "reading", BytesRead: size * pct / 100, BytesTotal: size}, false)
			tok = tok[:0]
		}
		if len(tok) > 64 {
			tok = tok[:0]
		}
	}
}

// gdalConn builds a libpq connection string for ogr2ogr from the pool's
// configuration. The password travels in the environment (PGPASSWORD),
// never on the command line, where any local user could read it.
func gdalConn(cfg pgconn.Config, connString string) (string, []string, error) {
	kv := map[string]string{
		"host": cfg.Host, "port": strconv.Itoa(int(cfg.Port)), "dbname": cfg.Database, "user": cfg.User,
		"application_name": "meridian-import",
	}
	for k, v := range connParams(connString) {
		switch k {
		case "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "target_session_attrs", "connect_timeout":
			kv[k] = v
		}
	}
	if _, ok := kv["sslmode"]; !ok {
		if cfg.TLSConfig == nil {
			kv["sslmode"] = "disable"
		} else {
			kv["sslmode"] = "require"
		}
	}
	var b strings.Builder
	b.WriteString("PG:")
	for _, k := range []string{"host", "port", "dbname", "user", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "target_session_attrs", "connect_timeout", "application_name"} {
		v, ok := kv[k]
		if !ok || v == "" {
			continue
		}
		b.WriteString(k + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "' ")
	}
	var env []string
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}
	return strings.TrimSpace(b.String()), env, nil
}

// connParams extracts key/value parameters from a URL or DSN.
func connParams(s string) map[string]string {
	out := map[string]string{}
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return out
		}
		for k, v := range u.Query() {
			if len(v) > 0 {
				out[k] = v[0]
			}
		}
		return out
	}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = strings.Trim(v, "'")
		}
	}
	return out
}

// gdalEnv is the environment for GDAL programs: ours minus libpq
// variables that could redirect the connection, plus extra and the
// driver blacklist.
func gdalEnv(extra []string) []string {
	var env []string
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "PG") || strings.HasPrefix(e, "GDAL_SKIP=") {
			continue
		}
		env = append(env, e)
	}
	env = append(env, "GDAL_SKIP="+gdalSkip, "CPL_DEBUG=OFF", "GDAL_HTTP_TIMEOUT=1", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS=.none")
	return append(env, extra...)
}

// redact removes secrets from GDAL's messages.
func redact(s string, env []string) string {
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok && k == "PGPASSWORD" && v != "" {
			s = strings.ReplaceAll(s, v, "xxxxx")
		}
	}
	return s
}

// firstGDALError returns the first "ERROR n: …" line of GDAL's stderr.
func firstGDALError(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "FAILURE") {
			if _, msg, ok := strings.Cut(line, ": "); ok {
				return strings.TrimSpace(msg)
			}
			return strings.TrimSpace(line)
		}
	}
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "unknown error"
	}
	return s
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
