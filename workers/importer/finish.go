package importer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meridian-gis/meridian/workers/importer/geomenc"
)

// finish turns what a loader staged into the final table and swaps it in.
func (j *job) finish(ctx context.Context, st *staged) (Result, error) {
	j.progress(Progress{Phase: "finishing", BytesRead: j.srcSize, BytesTotal: j.srcSize, Rows: st.rows}, true)
	if st.rows == 0 {
		return Result{}, inputErr(ErrNoFeatures, "%s holds no features", j.srcName)
	}
	if !st.hasGeom {
		return Result{}, inputErr(ErrNoGeometry, "the layer has no geometry column")
	}
	if st.srid == 4326 && st.outOfRange != nil {
		return Result{}, st.outOfRange
	}
	if st.srid != 4326 {
		var known bool
		if err := j.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM spatial_ref_sys WHERE srid = $1)", st.srid).Scan(&known); err != nil {
			return Result{}, fmt.Errorf("checking SRID %d: %w", st.srid, err)
		}
		if !known {
			if j.opts.SourceSRID != 0 {
				return Result{}, fmt.Errorf("%w: SRID %d is unknown to PostGIS", ErrInvalidOptions, st.srid)
			}
			return Result{}, inputErr(ErrMalformed, "the file's coordinate system EPSG:%d is unknown to PostGIS", st.srid)
		}
	}
	res := Result{Table: j.target.String(), Format: j.format, Layer: j.layer, SRID: 4326, SourceSRID: st.srid}
	if st.sourceSet {
		res.SourceSRID = st.sourceSRID
	}

	// 1. Repair invalid geometries (points are always valid).
	if !st.direct {
		if st.geomStats == nil {
			stats, err := j.geomStats(ctx, st.table)
			if err != nil {
				return Result{}, err
			}
			st.geomStats = stats
		}
		if !pointsOnly(st.geomStats) {
			fixed, collapsed, err := j.repair(ctx, st.table)
			if err != nil {
				return Result{}, err
			}
			if res.InvalidFixed = fixed; fixed > 0 {
				msg := fmt.Sprintf("%d invalid geometries were repaired with ST_MakeValid", fixed)
				if collapsed > 0 {
					msg += fmt.Sprintf(" (%d collapsed to empty geometries)", collapsed)
				}
				j.warn("%s", msg)
				if st.geomStats, err = j.geomStats(ctx, st.table); err != nil {
					return Result{}, err
				}
			}
		}
	}

	// 2. The geometry column's type.
	g := decideGeometry(st.geomStats, st.declared)
	for _, w := range g.warnings {
		j.warn("%s", w)
	}
	res.GeometryType = g.name

	// 3. Column types.
	for i := range st.cols {
		c := &st.cols[i]
		switch {
		case j.hints[c.name] != "":
			c.final = j.hints[c.name]
		case j.hints[c.source] != "":
			c.final = j.hints[c.source]
		case c.typ == "text" && !c.gdal:
			c.final = typeOf(c.kinds)
		default:
			c.final = c.typ
		}
	}

	// 4. Build the final table.
	if st.direct {
		var alters []string
		for _, c := range st.cols {
			if c.final != c.typ {
				alters = append(alters, fmt.Sprintf("ALTER COLUMN %s TYPE %s USING %s::%s", quoteIdent(c.name), c.final, quoteIdent(c.name), c.final))
			}
		}
		if len(alters) > 0 {
			if _, err := j.conn.Exec(ctx, "ALTER TABLE "+j.final.Sanitized()+" "+strings.Join(alters, ", ")); err != nil {
				return Result{}, j.castErr(err, "typing columns")
			}
		}
	} else {
		done := j.timed("build final")
		if err := j.buildFinal(ctx, st, g); err != nil {
			return Result{}, err
		}
		done()
	}
	if _, err := j.conn.Exec(ctx, "DROP TABLE IF EXISTS "+j.stage.Sanitized()); err != nil {
		return Result{}, fmt.Errorf("dropping the staging table: %w", err)
	}

	// 5. Keys, index, statistics.
	if err := j.buildIndexes(ctx); err != nil {
		return Result{}, err
	}
	done := j.timed("analyze")
	if _, err := j.conn.Exec(ctx, "ANALYZE "+j.final.Sanitized()); err != nil {
		return Result{}, fmt.Errorf("analyzing the table: %w", err)
	}
	done()
	var minx, miny, maxx, maxy *float64
	if err := j.conn.QueryRow(ctx, "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM "+j.final.Sanitized()+") s").Scan(&minx, &miny, &maxx, &maxy); err != nil {
		return Result{}, fmt.Errorf("measuring the extent: %w", err)
	}
	if minx != nil {
		// Clamp the float noise of edge-of-the-world data (lonLatSlack).
		res.BBox = [4]float64{max(*minx, -180), max(*miny, -90), min(*maxx, 180), min(*maxy, 90)}
	}
	res.Columns = append(res.Columns, Column{Name: "cartodb_id", Type: "bigint"}, Column{Name: "geom", Type: g.typmod})
	for _, c := range st.cols {
		res.Columns = append(res.Columns, Column{Name: c.name, Type: c.final, Source: c.source})
	}
	res.Rows = st.rows

	// 6. Swap (or append) in one transaction.
	done = j.timed("swap")
	rows, err := j.swap(ctx, st.rows)
	done()
	if err != nil {
		return Result{}, err
	}
	res.Rows = rows
	res.Warnings = j.warnings
	j.progress(Progress{Phase: "done", BytesRead: j.srcSize, BytesTotal: j.srcSize, Rows: rows}, true)
	return res, nil
}

// buildIndexes builds the primary key's unique index and the GiST index
// at the same time, on two connections (two index builds take a SHARE
// lock each, which do not conflict; on two cores this saves the shorter
// build's time), then turns the unique index into the primary key, which
// is a catalog change only.
func (j *job) buildIndexes(ctx context.Context) error {
	defer j.timed("indexes")()
	pkey := j.final.Name + "_pkey"
	gist := j.final.Name + "_geom_idx"
	other, err := j.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer other.Release()
	gerr := make(chan error, 1)
	go func() {
		tx, err := other.Begin(ctx)
		if err == nil {
			defer tx.Rollback(context.WithoutCancel(ctx))
			_, err = tx.Exec(ctx, "SET LOCAL maintenance_work_mem = '256MB'")
		}
		if err == nil {
			_, err = tx.Exec(ctx, "CREATE INDEX "+quoteIdent(gist)+" ON "+j.final.Sanitized()+" USING GIST (geom)")
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		gerr <- err
	}()
	_, perr := j.conn.Exec(ctx, "CREATE UNIQUE INDEX "+quoteIdent(pkey)+" ON "+j.final.Sanitized()+" (cartodb_id)")
	if err := <-gerr; err != nil {
		return fmt.Errorf("building the spatial index: %w", err)
	}
	if perr != nil {
		return fmt.Errorf("building the primary key: %w", perr)
	}
	if _, err := j.conn.Exec(ctx, "ALTER TABLE "+j.final.Sanitized()+" ADD CONSTRAINT "+quoteIdent(pkey)+" PRIMARY KEY USING INDEX "+quoteIdent(pkey)); err != nil {
		return fmt.Errorf("adding the primary key: %w", err)
	}
	return nil
}

type geomDecision struct {
	typmod   string // geometry(MultiPolygon,4326)
	name     string // MultiPolygon
	multi    bool   // wrap with ST_Multi
	force2D  bool
	warnings []string
}

func pointsOnly(stats map[geomKey]int64) bool {
	for k := range stats {
		if k.t != geomenc.Point && k.t != geomenc.MultiPoint {
			return false
		}
	}
	return true
}

// repair runs ST_MakeValid on the invalid geometries of t, in place. The
// repair keeps a geometry's dimension (a degenerate line stays a line,
// possibly empty, instead of turning into a point, which would make the
// column's type generic); polygons use the "structure" method, which
// keeps areas and drops collapsed parts. It returns how many geometries
// were repaired and how many of them became empty.
func (j *job) repair(ctx context.Context, t tableName) (fixed, collapsed int64, err error) {
	done := j.timed("repair")
	defer done()
	rows, err := j.conn.Query(ctx, "UPDATE "+t.Sanitized()+` SET geom = CASE
			WHEN ST_GeometryType(geom) = 'ST_GeometryCollection' THEN ST_MakeValid(geom)
			WHEN ST_Dimension(geom) = 2 THEN ST_CollectionExtract(ST_MakeValid(geom, 'method=structure'), 3)
			ELSE ST_CollectionExtract(ST_MakeValid(geom), ST_Dimension(geom) + 1) END
		WHERE geom IS NOT NULL AND NOT ST_IsValid(geom)
		RETURNING ST_IsEmpty(geom)`)
	if err != nil {
		return 0, 0, fmt.Errorf("repairing invalid geometries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var empty bool
		if err := rows.Scan(&empty); err != nil {
			return 0, 0, fmt.Errorf("repairing invalid geometries: %w", err)
		}
		fixed++
		if empty {
			collapsed++
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("repairing invalid geometries: %w", err)
	}
	return fixed, collapsed, nil
}

// decideGeometry picks the geometry column type: the one type present;
// Multi* when single and multi of one family mix, or when the source
// declares the Multi type; generic Geometry (with a warning) for
// collections or mixed families. Mixed dimensions are flattened to 2D.
func decideGeometry(stats map[geomKey]int64, declared geomenc.Type) geomDecision {
	var d geomDecision
	types := map[geomenc.Type]int64{}
	type zm struct{ z, m bool }
	dims := map[zm]bool{}
	for k, n := range stats {
		types[k.t] += n
		dims[zm{k.z, k.m}] = true
	}
	base := "Geometry"
	switch {
	case len(types) == 0:
		d.warnings = append(d.warnings, "no feature has a geometry")
	case len(types) == 1:
		for t := range types {
			if declared >= geomenc.MultiPoint && declared <= geomenc.MultiPolygon && t == declared.Single() {
				base, d.multi = declared.String(), true
			} else if t == geomenc.GeometryCollection {
				d.warnings = append(d.warnings, "the geometries are GeometryCollections: the geom column has the generic geometry type")
			} else {
				base = t.String()
			}
		}
	default:
		family, same := geomenc.Type(0), true
		for t := range types {
			if t == geomenc.GeometryCollection {
				same = false
			}
			if family == 0 {
				family = t.Single()
			} else if t.Single() != family {
				same = false
			}
		}
		if same {
			base, d.multi = family.Multi().String(), true
		} else {
			var names []string
			for t, n := range types {
				names = append(names, fmt.Sprintf("%s (%d)", t, n))
			}
			sort.Strings(names)
			d.warnings = append(d.warnings, "mixed geometry types "+strings.Join(names, ", ")+": the geom column has the generic geometry type")
		}
	}
	suffix := ""
	if len(dims) == 1 {
		for k := range dims {
			switch {
			case k.z && k.m:
				suffix = "ZM"
			case k.z:
				suffix = "Z"
			case k.m:
				suffix = "M"
			}
		}
	} else if len(dims) > 1 {
		d.force2D = true
		d.warnings = append(d.warnings, "geometries mix 2D and 3D/measured coordinates: Z and M values were dropped")
	}
	d.name = base + suffix
	d.typmod = "geometry(" + d.name + ",4326)"
	return d
}

// geomStats asks the database for the geometry types in table.
func (j *job) geomStats(ctx context.Context, t tableName) (map[geomKey]int64, error) {
	rows, err := j.conn.Query(ctx, "SELECT ST_GeometryType(geom), ST_Zmflag(geom), count(*) FROM "+t.Sanitized()+" WHERE geom IS NOT NULL GROUP BY 1, 2")
	if err != nil {
		return nil, fmt.Errorf("reading geometry types: %w", err)
	}
	defer rows.Close()
	out := map[geomKey]int64{}
	for rows.Next() {
		var name string
		var flag int16
		var n int64
		if err := rows.Scan(&name, &flag, &n); err != nil {
			return nil, fmt.Errorf("reading geometry types: %w", err)
		}
		t := geomenc.GeometryCollection // curves and surfaces: generic
		for k := geomenc.Point; k <= geomenc.GeometryCollection; k++ {
			if strings.EqualFold(name, "ST_"+k.String()) {
				t = k
			}
		}
		out[geomKey{t: t, z: flag&2 != 0, m: flag&1 != 0}] += n
	}
	return out, rows.Err()
}

// buildFinal creates the final table and fills it from staging in one
// INSERT … SELECT: casts, SRID, reprojection, Multi promotion. cartodb_id
// is the source order column (the row or feature number): the heap order
// of the staging table is not the COPY order (bulk inserts reuse free
// space in earlier pages), so an identity filled by the SELECT would not
// follow the file.
func (j *job) buildFinal(ctx context.Context, st *staged, g geomDecision) error {
	var create, names, exprs strings.Builder
	create.WriteString("CREATE TABLE " + j.final.Sanitized() + " (cartodb_id bigint GENERATED BY DEFAULT AS IDENTITY, geom " + g.typmod)
	names.WriteString("cartodb_id, geom")
	exprs.WriteString(quoteIdent(st.orderBy) + ", ")
	geom := "geom"
	switch {
	case !st.sridSet && st.srid == 4326:
		geom = "ST_SetSRID(geom, 4326)"
	case !st.sridSet:
		geom = fmt.Sprintf("ST_Transform(ST_SetSRID(geom, %d), 4326)", st.srid)
	case st.srid != 4326:
		geom = "ST_Transform(geom, 4326)"
	}
	if g.force2D {
		geom = "ST_Force2D(" + geom + ")"
	}
	if g.multi {
		geom = "ST_Multi(" + geom + ")"
	}
	// An empty geometry becomes NULL, whatever the format wrote (GeoJSON
	// and WKT keep EMPTY, GDAL's GeoPackage and KML readers give NULL):
	// one answer for "no shape", which tiles and extents skip alike.
	geom = "CASE WHEN ST_IsEmpty(geom) THEN NULL ELSE " + geom + " END"
	exprs.WriteString(geom)
	for _, c := range st.cols {
		create.WriteString(", " + quoteIdent(c.name) + " " + c.final)
		names.WriteString(", " + quoteIdent(c.name))
		e := quoteIdent(c.stage)
		if c.final != c.typ {
			e += "::" + c.final
		}
		exprs.WriteString(", " + e)
	}
	create.WriteString(")")
	if _, err := j.conn.Exec(ctx, create.String()); err != nil {
		return fmt.Errorf("creating the table: %w", err)
	}
	if err := j.storeGeomUncompressed(ctx, j.final); err != nil {
		return err
	}
	if err := j.markTable(ctx, j.final); err != nil {
		return err
	}
	q := "INSERT INTO " + j.final.Sanitized() + " (" + names.String() + ") SELECT " + exprs.String() + " FROM " + st.table.Sanitized()
	if _, err := j.conn.Exec(ctx, q); err != nil {
		return j.castErr(err, "filling the table")
	}
	// Later inserts (appends) continue after the last row.
	if _, err := j.conn.Exec(ctx, "SELECT setval(pg_get_serial_sequence($1, 'cartodb_id'), coalesce(max(cartodb_id), 0) + 1, false) FROM "+j.final.Sanitized(), j.final.Sanitized()); err != nil {
		return fmt.Errorf("setting the cartodb_id sequence: %w", err)
	}
	return nil
}

// castErr reports a value that would not convert (a type hint that does
// not fit the data) as an input error.
func (j *job) castErr(err error, doing string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
		return &InputError{Kind: ErrMalformed, Reason: "a value does not convert to its column type: " + pe.Message, Err: err}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// swap puts the final table in place (or appends it) in one transaction,
// and records the import in the ledger when it has an ID.
func (j *job) swap(ctx context.Context, rows int64) (int64, error) {
	tx, err := j.conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("starting the swap: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d; SET LOCAL synchronous_commit = on", j.opts.LockTimeout.Milliseconds())); err != nil {
		return 0, fmt.Errorf("starting the swap: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("table:"+j.target.String())); err != nil {
		return 0, fmt.Errorf("locking %s: %w", j.target, err)
	}
	if j.opts.ImportID != "" {
		var n int64
		err := tx.QueryRow(ctx, "SELECT rows FROM "+j.ledger().Sanitized()+" WHERE import_id = $1", j.id).Scan(&n)
		if err == nil {
			return n, nil // applied meanwhile by another delivery
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("reading the import ledger: %w", err)
		}
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", j.target.Sanitized()).Scan(&exists); err != nil {
		return 0, fmt.Errorf("checking %s: %w", j.target, err)
	}
	switch {
	case exists && j.opts.IfExists == IfExistsFail:
		return 0, fmt.Errorf("%w: %s", ErrTableExists, j.target)
	case exists && j.opts.IfExists == IfExistsAppend:
		n, err := j.appendInto(ctx, tx)
		if err != nil {
			return 0, err
		}
		rows = n
		if _, err := tx.Exec(ctx, "DROP TABLE "+j.final.Sanitized()); err != nil {
			return 0, fmt.Errorf("dropping the appended table: %w", err)
		}
	default:
		if exists {
			if _, err := tx.Exec(ctx, "LOCK TABLE "+j.target.Sanitized()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
				return 0, fmt.Errorf("locking %s for the swap: %w", j.target, err)
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+j.target.Sanitized()); err != nil {
				return 0, fmt.Errorf("replacing %s (do views depend on it?): %w", j.target, err)
			}
		}
		if err := j.renameFinal(ctx, tx); err != nil {
			return 0, err
		}
	}
	if j.opts.ImportID != "" {
		if _, err := tx.Exec(ctx, "INSERT INTO "+j.ledger().Sanitized()+" (import_id, table_name, rows) VALUES ($1, $2, $3)", j.id, j.target.String(), rows); err != nil {
			return 0, fmt.Errorf("recording the import: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("committing the swap: %w", err)
	}
	if exists && j.opts.IfExists == IfExistsAppend {
		if _, err := j.conn.Exec(ctx, "ANALYZE "+j.target.Sanitized()); err != nil {
			j.log.Warn("analyzing after append", "err", err)
		}
	}
	return rows, nil
}

// renameFinal renames the final table, its key, index and sequence after
// the target, keeping generated names when the wanted one is taken.
func (j *job) renameFinal(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "ALTER TABLE "+j.final.Sanitized()+" RENAME TO "+quoteIdent(j.target.Name)); err != nil {
		return fmt.Errorf("renaming into %s: %w", j.target, err)
	}
	t := j.target.Sanitized()
	renames := []struct{ old, new, stmt string }{
		{j.final.Name + "_pkey", j.target.Name + "_pkey", "ALTER TABLE " + t + " RENAME CONSTRAINT %s TO %s"},
		{j.final.Name + "_geom_idx", j.target.Name + "_geom_idx", "ALTER INDEX " + quoteIdent(j.target.Schema) + ".%s RENAME TO %s"},
		{j.final.Name + "_cartodb_id_seq", j.target.Name + "_cartodb_id_seq", "ALTER SEQUENCE " + quoteIdent(j.target.Schema) + ".%s RENAME TO %s"},
	}
	for _, r := range renames {
		want := truncateIdent(r.new, maxIdent)
		var taken bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", j.target.sibling(want)).Scan(&taken); err != nil {
			return fmt.Errorf("renaming: %w", err)
		}
		if taken {
			continue
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(r.stmt, quoteIdent(r.old), quoteIdent(want))); err != nil {
			return fmt.Errorf("renaming %s: %w", r.old, err)
		}
	}
	return nil
}

// appendInto inserts the final table's rows into the existing target in
// one statement: columns matched by name and cast to the target's types,
// geometry reprojected to the target's SRID and promoted to Multi when
// the target is.
func (j *job) appendInto(ctx context.Context, tx pgx.Tx) (int64, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attidentity <> '' OR a.atthasdef,
			t.typname = 'geometry', CASE WHEN t.typname = 'geometry' THEN postgis_typmod_srid(a.atttypmod) ELSE 0 END,
			CASE WHEN t.typname = 'geometry' THEN postgis_typmod_type(a.atttypmod) ELSE '' END
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, j.target.Sanitized())
	if err != nil {
		return 0, fmt.Errorf("reading the columns of %s: %w", j.target, err)
	}
	type col struct {
		name, typ, gtype string
		hasDefault, geom bool
		srid             int32
	}
	var target []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.name, &c.typ, &c.hasDefault, &c.geom, &c.srid, &c.gtype); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reading the columns of %s: %w", j.target, err)
		}
		target = append(target, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading the columns of %s: %w", j.target, err)
	}
	srcCols, err := tx.Query(ctx, "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped", j.final.Sanitized())
	if err != nil {
		return 0, fmt.Errorf("reading the imported columns: %w", err)
	}
	have := map[string]bool{}
	for srcCols.Next() {
		var n string
		srcCols.Scan(&n)
		have[n] = true
	}
	srcCols.Close()

	var names, exprs []string
	used := map[string]bool{}
	for _, c := range target {
		switch {
		case c.name == "cartodb_id":
			used[c.name] = true
			if c.hasDefault {
				continue
			}
			names = append(names, quoteIdent(c.name))
			exprs = append(exprs, "(SELECT coalesce(max(cartodb_id), 0) FROM "+j.target.Sanitized()+") + row_number() OVER (ORDER BY n.cartodb_id)")
		case c.geom && have["geom"]:
			used["geom"] = true
			e := "n.geom"
			if c.srid > 0 && c.srid != 4326 {
				e = fmt.Sprintf("ST_Transform(%s, %d)", e, c.srid)
			}
			if strings.HasPrefix(strings.ToUpper(c.gtype), "MULTI") {
				e = "ST_Multi(" + e + ")"
			}
			names = append(names, quoteIdent(c.name))
			exprs = append(exprs, e)
		case have[c.name]:
			used[c.name] = true
			names = append(names, quoteIdent(c.name))
			exprs = append(exprs, "n."+quoteIdent(c.name)+"::"+c.typ)
		}
	}
	var dropped []string
	for n := range have {
		if !used[n] {
			dropped = append(dropped, n)
		}
	}
	if len(dropped) > 0 {
		sort.Strings(dropped)
		j.warn("columns not in %s were not appended: %s", j.target, strings.Join(dropped, ", "))
	}
	tag, err := tx.Exec(ctx, "INSERT INTO "+j.target.Sanitized()+" ("+strings.Join(names, ", ")+") SELECT "+strings.Join(exprs, ", ")+" FROM "+j.final.Sanitized()+" n ORDER BY n.cartodb_id")
	if err != nil {
		return 0, j.castErr(err, "appending to "+j.target.String())
	}
	return tag.RowsAffected(), nil
}

// ledger is the table recording applied import IDs, in the target schema.
func (j *job) ledger() tableName {
	return tableName{Schema: j.target.Schema, Name: "_meridian_imports"}
}

// ledgerLookup creates the ledger if needed and tells whether this import
// ID was applied, with its row count.
func (j *job) ledgerLookup(ctx context.Context) (int64, bool, error) {
	tx, err := j.conn.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("opening the import ledger: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("ledger:"+j.target.Schema)); err != nil {
		return 0, false, fmt.Errorf("opening the import ledger: %w", err)
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+j.ledger().Sanitized()+` (
		import_id text PRIMARY KEY, table_name text NOT NULL, rows bigint NOT NULL,
		finished_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, false, fmt.Errorf("creating the import ledger: %w", err)
	}
	var n int64
	err = tx.QueryRow(ctx, "SELECT rows FROM "+j.ledger().Sanitized()+" WHERE import_id = $1", j.id).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, tx.Commit(ctx)
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading the import ledger: %w", err)
	}
	return n, true, tx.Commit(ctx)
}
