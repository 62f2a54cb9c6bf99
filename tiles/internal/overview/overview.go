// Package overview builds and finds tile-ready copies of large line and
// polygon tables, what the platform Meridian replaces calls overview
// tables. Rendering a tile from a table of detailed polygons costs little
// in the tile itself and much in the rows it touches: each one is read
// whole (a province of 68,000 vertices is 760 KB compressed) to be
// clipped to a small square at high zoom, or simplified from full detail
// at low zoom. The copy holds every feature in Web-Mercator, simplified
// for each zoom below Bands and cut into pieces of at most MaxVertices
// vertices, so a tile reads only the pieces it shows, already at its
// level of detail (see mvt.BuildOverview for the statement that reads it).
//
// A copy is made for one state of its table: its name carries the table's
// OID, geometry column and catalog fingerprint (relation file and
// insert/update/delete counters), and a copy whose fingerprint is not the
// catalog's current one is never used. A change to the table therefore
// sends tiles back to the table itself until the new copy is built. The
// copies live in the schema Schema of the data database, which the
// engine's catalog does not list; building one needs the right to create
// that schema and tables in it, and without it the engine goes on
// rendering from the tables. One node builds a given copy at a time
// (advisory lock); the others find it by name.
package overview

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
)

// Schema holds the copies.
const Schema = "meridian_overviews"

// Defaults of Config.
const (
	DefaultBands       = 10
	DefaultMaxVertices = 256
	DefaultPointLevels = 16
	DefaultMinBytes    = 8 << 20
	DefaultTimeout     = 30 * time.Minute
	// retryAfter is how long a failed or busy build waits before the
	// next try.
	retryAfter = time.Minute
)

// Config tunes the copies.
type Config struct {
	// Disabled turns copies off: every tile renders from its table.
	Disabled bool
	// MinBytes is the smallest table (pg_table_size, TOAST included)
	// worth a copy. Default: 8 MiB.
	MinBytes int64
	// Bands is the number of simplified zoom levels (0..Bands-1); the
	// zooms beyond read full-detail pieces. Default: 8.
	Bands int
	// MaxVertices bounds a piece (ST_Subdivide). Default: 256.
	MaxVertices int
	// PointLevels is the finest aggregation level of point overviews
	// (2^level cells across the world): tiles of zoom z aggregated at
	// z+8 (tileResolution 0.5) are served from it up to z = PointLevels-8.
	// Default: 16.
	PointLevels int
	// Timeout bounds one build. Default: 30m.
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.MinBytes <= 0 {
		c.MinBytes = DefaultMinBytes
	}
	if c.Bands <= 0 {
		c.Bands = DefaultBands
	}
	if c.PointLevels <= 0 {
		c.PointLevels = DefaultPointLevels
	}
	if c.MaxVertices < 8 {
		c.MaxVertices = DefaultMaxVertices
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
}

// Table is a table source's state, as the catalog last saw it.
type Table struct {
	// Conn is the data connection.
	Conn string
	// Schema and Name of the table.
	Schema, Name string
	// OID and Fingerprint of the catalog entry.
	OID         uint32
	Fingerprint uint64
	// Geom is the geometry column; SRID its SRID (4326 or 3857 only).
	Geom string
	SRID int
	// Shape of the geometry column (lines and polygons only).
	Shape catalog.Shape
}

// Eligible says whether t could have a copy at all.
func Eligible(t Table) bool {
	return t.OID != 0 && t.Fingerprint != 0 && (t.SRID == 4326 || t.SRID == 3857) &&
		(t.Shape == catalog.ShapeLine || t.Shape == catalog.ShapePolygon || t.Shape == catalog.ShapePoint)
}

// prefix is the start of the names of t's copies (any fingerprint).
func prefix(t Table) string {
	h := fnv.New32a()
	h.Write([]byte(t.Geom))
	return "o" + strconv.FormatUint(uint64(t.OID), 10) + "_" + fmt.Sprintf("%08x", h.Sum32()) + "_"
}

// sourceOIDSQL is the OID of the table a copy in Schema was made from, read
// from the copy's name (pg_class c), in SQL: the name starts with prefix.
const sourceOIDSQL = `substring(c.relname FROM '^o([0-9]+)_')::oid`

// Name is the stem of the names of t's band tables in Schema. It carries
// the version of their layout (formatVersion), so that a copy of an
// earlier layout is dropped and built again like a stale one.
func Name(t Table) string { return prefix(t) + formatVersion + fmt.Sprintf("%016x", t.Fingerprint) }

// formatVersion is the version of the band tables' contents: "v2" added
// the centres of polygons under a band's pixel, "v3" rows in the order of
// their position (point cells by (level, cx, cy), band pieces by the
// geometry's B-tree order).
const formatVersion = "v3"

// Status of a copy.
type Status int

// Statuses.
const (
	// Unknown: not looked for yet, or being looked for or built.
	Unknown Status = iota
	// Ready: the copy exists; tiles read it.
	Ready
	// Skipped: the table does not get a copy (too small, no key).
	Skipped
	// Failed: the last build failed; it is tried again later.
	Failed
)

type state struct {
	status Status
	ov     mvt.Overview
	// busy: a job for it is queued or running.
	busy bool
	// retry is when a Failed state is tried again; attempts counts the
	// failures, each doubling the wait (a table whose build always fails
	// is not rebuilt every minute).
	retry    time.Time
	attempts int
}

// Manager finds and builds copies in the background.
type Manager struct {
	cfg  Config
	pool func(ctx context.Context, conn string) (*pgxpool.Pool, error)
	log  *slog.Logger

	mu     sync.Mutex
	states map[string]*state // by conn + "\x00" + Name
	jobs   chan Table
	// OnBuilt, when set, is called after a copy is built and tiles can
	// use it (metrics).
	OnBuilt func(t Table, took time.Duration)
}

// NewManager returns a Manager; pool gives a data connection's pool. Run
// must run for copies to be found or built.
func NewManager(cfg Config, pool func(ctx context.Context, conn string) (*pgxpool.Pool, error), log *slog.Logger) *Manager {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, pool: pool, log: log, states: map[string]*state{}, jobs: make(chan Table, 256)}
}

// Get returns t's copy when it is ready. Otherwise it queues a look (and
// a build when needed) without waiting, and returns false.
func (m *Manager) Get(t Table) (mvt.Overview, bool) {
	if m == nil || m.cfg.Disabled || !Eligible(t) {
		return mvt.Overview{}, false
	}
	key := t.Conn + "\x00" + Name(t)
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.states[key]
	if st == nil {
		// A new state of the table: what was known of the others goes.
		stem := t.Conn + "\x00" + prefix(t)
		for k := range m.states {
			if strings.HasPrefix(k, stem) {
				delete(m.states, k)
			}
		}
		st = &state{}
		m.states[key] = st
	}
	switch {
	case st.status == Ready:
		return st.ov, true
	case st.busy || st.status == Skipped:
		return mvt.Overview{}, false
	case st.status == Failed && time.Now().Before(st.retry):
		return mvt.Overview{}, false
	}
	select {
	case m.jobs <- t:
		st.busy = true
	default: // full: asked again on a later tile
	}
	return mvt.Overview{}, false
}

// Lookup is Get for a node that has not seen t yet: when nothing is
// known of t's copy, it looks for one already built (by this node before
// a restart, or by another node) and waits for the answer, so that a
// freshly started node renders from the copy from its first tile instead
// of from the table while the background look runs. It never builds;
// Get queues that. Errors leave the state unknown (Get looks again).
func (m *Manager) Lookup(ctx context.Context, t Table) (mvt.Overview, bool) {
	if m == nil || m.cfg.Disabled || !Eligible(t) {
		return mvt.Overview{}, false
	}
	key := t.Conn + "\x00" + Name(t)
	m.mu.Lock()
	st := m.states[key]
	m.mu.Unlock()
	if st != nil {
		return m.Get(t)
	}
	ov, found, err := m.findBuilt(ctx, t)
	if err != nil || !found {
		if err != nil && ctx.Err() == nil {
			m.log.Debug("overview: looking for a built copy", "conn", t.Conn, "table", t.Schema+"."+t.Name, "err", err)
		}
		return m.Get(t)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.states[key] == nil {
		stem := t.Conn + "\x00" + prefix(t)
		for k := range m.states {
			if strings.HasPrefix(k, stem) {
				delete(m.states, k)
			}
		}
		m.states[key] = &state{status: Ready, ov: ov}
	}
	if st := m.states[key]; st.status == Ready {
		return st.ov, true
	}
	return mvt.Overview{}, false
}

// findBuilt looks for t's copy without building it.
func (m *Manager) findBuilt(ctx context.Context, t Table) (mvt.Overview, bool, error) {
	pool, err := m.pool(ctx, t.Conn)
	if err != nil {
		return mvt.Overview{}, false, err
	}
	key, _, err := keyColumn(ctx, pool, t.OID)
	if err != nil || key == "" {
		return mvt.Overview{}, false, err
	}
	ov, last := m.overviewOf(t, key)
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{Schema, last}.Sanitize()).Scan(&exists); err != nil {
		return ov, false, fmt.Errorf("looking for overview: %w", err)
	}
	return ov, exists, nil
}

// overviewOf describes t's copy with key column key, and names its last
// table (the one built last: its presence means the copy is complete).
func (m *Manager) overviewOf(t Table, key string) (ov mvt.Overview, last string) {
	if t.Shape == catalog.ShapePoint {
		ov = mvt.Overview{Schema: Schema, Table: Name(t) + "_p", Key: key, Bands: m.cfg.PointLevels, Points: true}
		return ov, ov.Table
	}
	ov = mvt.Overview{Schema: Schema, Table: Name(t), Key: key, Bands: m.cfg.Bands}
	return ov, ov.BandTable(ov.Bands)
}

// Forget drops what is known of t's copy (a tile found it gone): the next
// Get looks again.
func (m *Manager) Forget(t Table) {
	m.mu.Lock()
	delete(m.states, t.Conn+"\x00"+Name(t))
	m.mu.Unlock()
}

// Status returns what is known of t's copy.
func (m *Manager) Status(t Table) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.states[t.Conn+"\x00"+Name(t)]; st != nil {
		return st.status
	}
	return Unknown
}

// Run looks for and builds copies, one at a time, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-m.jobs:
			st, ov, took, err := m.ensure(ctx, t)
			if err != nil && ctx.Err() == nil {
				m.log.Warn("overview: not built", "conn", t.Conn, "table", t.Schema+"."+t.Name, "err", err)
			}
			m.mu.Lock()
			if s := m.states[t.Conn+"\x00"+Name(t)]; s != nil {
				s.busy, s.status, s.ov = false, st, ov
				if st == Failed {
					s.retry = time.Now().Add(retryAfter << min(s.attempts, 8))
					s.attempts++
				}
			}
			m.mu.Unlock()
			// Told once tiles can use the copy (after the state above).
			if took > 0 && m.OnBuilt != nil {
				m.OnBuilt(t, took)
			}
		}
	}
}

// ensure finds t's copy, building it when it is missing and worth it. A
// role without the rights to read or create the schema, or a read-only
// connection, skips the table.
func (m *Manager) ensure(ctx context.Context, t Table) (Status, mvt.Overview, time.Duration, error) {
	st, ov, took, err := m.find(ctx, t)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "25006") { // no privilege; read-only connection
		m.log.Info("overview: not allowed here (no right, or a read-only connection); tiles render from the table", "conn", t.Conn,
			"table", t.Schema+"."+t.Name, "err", pe.Message)
		return Skipped, ov, 0, nil
	}
	return st, ov, took, err
}

func (m *Manager) find(ctx context.Context, t Table) (Status, mvt.Overview, time.Duration, error) {
	pool, err := m.pool(ctx, t.Conn)
	if err != nil {
		return Failed, mvt.Overview{}, 0, err
	}
	key, keyType, err := keyColumn(ctx, pool, t.OID)
	if err != nil {
		return Failed, mvt.Overview{}, 0, err
	}
	if key == "" {
		m.log.Info("overview: table has no single-column primary key; tiles render from it", "conn", t.Conn, "table", t.Schema+"."+t.Name)
		return Skipped, mvt.Overview{}, 0, nil
	}
	ov, last := m.overviewOf(t, key)
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{Schema, last}.Sanitize()).Scan(&exists); err != nil {
		return Failed, ov, 0, fmt.Errorf("looking for overview: %w", err)
	}
	if exists {
		return Ready, ov, 0, nil
	}
	var size int64
	if err := pool.QueryRow(ctx, "SELECT pg_table_size($1::int8::oid)", int64(t.OID)).Scan(&size); err != nil {
		return Failed, ov, 0, fmt.Errorf("sizing table: %w", err)
	}
	if size < m.cfg.MinBytes {
		return Skipped, ov, 0, nil
	}
	start := time.Now()
	built, err := m.build(ctx, pool, t, ov, keyType)
	if err != nil {
		return Failed, ov, 0, err
	}
	if !built {
		return Failed, ov, 0, nil // another node builds it, or the table changed: look again later
	}
	took := time.Since(start)
	m.log.Info("overview: built", "conn", t.Conn, "table", t.Schema+"."+t.Name, "overview", Schema+"."+ov.Table, "seconds", took.Round(time.Millisecond).Seconds())
	m.dropOld(ctx, pool, t)
	return Ready, ov, took, nil
}

// keyColumn returns the single-column primary key of relation oid and
// its SQL type, or "" when there is none.
func keyColumn(ctx context.Context, q catalog.Querier, oid uint32) (name, typ string, err error) {
	err = q.QueryRow(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indrelid = $1::int8::oid AND i.indisprimary AND i.indnkeyatts = 1`, int64(oid)).Scan(&name, &typ)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("reading primary key: %w", err)
	}
	return name, typ, nil
}

// build makes t's copy in one transaction. It returns false, nil when
// another session holds the build lock or the table changed meanwhile.
func (m *Manager) build(ctx context.Context, pool *pgxpool.Pool, t Table, ov mvt.Overview, keyType string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return false, fmt.Errorf("starting build: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var locked bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(hashtext($1))", Schema+"."+ov.Table).Scan(&locked); err != nil {
		return false, fmt.Errorf("locking build: %w", err)
	}
	if !locked {
		return false, nil
	}
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return false, err
	}
	stmts := BuildSQL(t, ov, keyType, m.cfg.MaxVertices)
	if ov.Points {
		stmts = BuildPointSQL(t, ov, keyType)
	}
	for _, stmt := range stmts {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42P07" { // built meanwhile by another node
				return false, nil
			}
			return false, fmt.Errorf("building overview: %w", err)
		}
	}
	fp, err := catalog.ReadFingerprint(ctx, tx, t.OID)
	if err != nil {
		return false, err
	}
	if fp != t.Fingerprint {
		return false, nil // the table changed while it was copied
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("committing overview: %w", err)
	}
	return true, nil
}

// dropOld drops t's copies of earlier states, and the copies of tables
// that no longer exist (an import replaces a table by a new one). A node
// still on an older catalog finds its copy gone, forgets it and renders
// from the table. The schema is the engine's: nothing else belongs there.
func (m *Manager) dropOld(ctx context.Context, pool *pgxpool.Pool, t Table) {
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r' AND (
		  (starts_with(c.relname, $2) AND NOT starts_with(c.relname, $3))
		  OR NOT EXISTS (SELECT 1 FROM pg_class s WHERE s.oid = `+sourceOIDSQL+`))`,
		Schema, prefix(t), Name(t)+"_")
	if err != nil {
		m.log.Warn("overview: listing old copies", "err", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		m.log.Warn("overview: listing old copies", "err", err)
		return
	}
	for _, n := range names {
		if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{Schema, n}.Sanitize()); err != nil {
			m.log.Warn("overview: dropping old copy", "overview", n, "err", err)
		}
	}
}

// worldLat is the latitude limit of Web-Mercator.
const worldLat = "85.0511287798066"

// BuildSQL returns the statements that create t's copy ov, whose key
// column has SQL type keyType, inside one transaction. The table is read
// once into a temporary table of valid Web-Mercator geometries; the
// full-detail band is cut from it, and each coarser band is simplified
// from the one above it (cheaper than from full detail each time), keeping
// the features no smaller than a pixel at that band (see mvt.Overview for
// what a band is). Geometries are made valid where the source or the
// simplification broke them: ST_Subdivide refuses invalid input.
func BuildSQL(t Table, ov mvt.Overview, keyType string, maxVertices int) []string {
	g := "g." + pgx.Identifier{t.Geom}.Sanitize()
	perWorld, merc := "40075016.685578488", g
	if t.SRID == 4326 {
		perWorld = "360"
		merc = "ST_Transform(ST_ClipByBox2D(" + g + ", ST_MakeEnvelope(-180, -" + worldLat + ", 180, " + worldLat + ", 4326)), 3857)"
	}
	valid := func(geom string) string {
		return "CASE WHEN ST_IsValid(" + geom + ") THEN " + geom + " ELSE ST_MakeValid(" + geom + ") END"
	}
	stmts := []string{"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{Schema}.Sanitize()}
	for band := 0; band <= ov.Bands; band++ {
		stmts = append(stmts, "CREATE TABLE "+pgx.Identifier{Schema, ov.BandTable(band)}.Sanitize()+
			" (key "+keyType+" NOT NULL, geom geometry NOT NULL, w float8 NOT NULL, h float8 NOT NULL, x0 float8 NOT NULL, y0 float8 NOT NULL)")
	}
	prev := "__meridian_ov_" + strconv.Itoa(ov.Bands)
	stmts = append(stmts, `CREATE TEMP TABLE `+prev+` ON COMMIT DROP AS
SELECT f.key, f.w, f.h, f.x0, f.y0, `+valid("f.geom")+` AS geom
FROM (
  SELECT g.`+pgx.Identifier{ov.Key}.Sanitize()+` AS key, `+merc+` AS geom,
         ST_XMax(b.b) - ST_XMin(b.b) AS w, ST_YMax(b.b) - ST_YMin(b.b) AS h, ST_XMin(b.b) AS x0, ST_YMin(b.b) AS y0
  FROM `+pgx.Identifier{t.Schema, t.Name}.Sanitize()+` g
  CROSS JOIN LATERAL (SELECT postgis_getbbox(`+g+`) AS b) b
  WHERE `+g+` IS NOT NULL AND NOT ST_IsEmpty(`+g+`)
) f`)
	// The centre of every polygon, which the coarser bands hold for the
	// polygons smaller than their pixel: the tiles draw them as a
	// one-pixel square (mvt.Layer.KeepSmall). Lines under a pixel are not
	// drawn: their bands leave them out.
	const centres = "__meridian_ov_centres"
	if t.Shape == catalog.ShapePolygon {
		stmts = append(stmts, `CREATE TEMP TABLE `+centres+` ON COMMIT DROP AS
SELECT p.key, p.w, p.h, p.x0, p.y0, ST_PointOnSurface(p.geom) AS geom FROM `+prev+` p`)
	}
	// A band's rows are written in the geometry's B-tree order (PostGIS
	// 3: a Hilbert curve): the pieces a tile reads are then neighbours on
	// disk rather than spread over the table in key order.
	fill := func(band int, from, pixelSrc string) {
		bt := pgx.Identifier{Schema, ov.BandTable(band)}.Sanitize()
		rows := "SELECT p.key, ST_Subdivide(p.geom, " + strconv.Itoa(maxVertices) + ") AS geom, p.w, p.h, p.x0, p.y0 FROM " + from + " p WHERE NOT ST_IsEmpty(p.geom)"
		if pixelSrc != "" && t.Shape == catalog.ShapePolygon {
			rows += "\nUNION ALL\nSELECT c.key, c.geom, c.w, c.h, c.x0, c.y0 FROM " + centres +
				" c WHERE greatest(c.w, c.h) < " + pixelSrc + " AND NOT ST_IsEmpty(c.geom)"
		}
		stmts = append(stmts,
			"INSERT INTO "+bt+" (key, geom, w, h, x0, y0) SELECT r.key, r.geom, r.w, r.h, r.x0, r.y0 FROM (\n"+rows+"\n) r ORDER BY r.geom")
		stmts = append(stmts,
			"CREATE INDEX ON "+bt+" USING gist (geom)",
			"ANALYZE "+bt)
	}
	fill(ov.Bands, prev, "")
	for band := ov.Bands - 1; band >= 0; band-- {
		// A pixel of a 512-unit tile at zoom band, in source units (the
		// culling) and in metres (the simplification).
		pixelSrc := "(" + perWorld + " / 512.0 / 2.0::float8 ^ " + strconv.Itoa(band) + ")"
		tol := "(40075016.685578488 / 512.0 / 2.0::float8 ^ " + strconv.Itoa(band) + " * 0.5)"
		cur := "__meridian_ov_" + strconv.Itoa(band)
		stmts = append(stmts, `CREATE TEMP TABLE `+cur+` ON COMMIT DROP AS
SELECT s.key, s.w, s.h, s.x0, s.y0, `+valid("s.geom")+` AS geom
FROM (SELECT p.key, p.w, p.h, p.x0, p.y0, ST_Simplify(p.geom, `+tol+`, true) AS geom FROM `+prev+` p
      WHERE greatest(p.w, p.h) >= `+pixelSrc+`) s`,
			"DROP TABLE "+prev)
		fill(band, cur, pixelSrc)
		prev = cur
	}
	return stmts
}

// BuildPointSQL returns the statements that create t's point overview ov
// (see mvt.BuildPointOverview for its table): the finest level is
// aggregated from the table, each coarser one from the level above.
// Coordinates are Web-Mercator computed as the tile statements compute
// them (arithmetic for SRID 4326), so the cells are theirs.
func BuildPointSQL(t Table, ov mvt.Overview, keyType string) []string {
	tbl := pgx.Identifier{Schema, ov.Table}.Sanitize()
	g := "g." + pgx.Identifier{t.Geom}.Sanitize()
	mx, my := "ST_X("+g+")", "ST_Y("+g+")"
	if t.SRID == 4326 {
		mx = "ST_X(" + g + ") * 111319.49079327357"
		my = "ln(tan(pi() / 4 + radians(least(greatest(ST_Y(" + g + "), -" + worldLat + "), " + worldLat + ")) / 2)) * 6378137"
	}
	// Points outside the Web-Mercator square are in no tile.
	world := "ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)"
	if t.SRID == 4326 {
		world = "ST_MakeEnvelope(-180, -" + worldLat + ", 180, " + worldLat + ", 4326)"
	}
	top := strconv.Itoa(ov.Bands)
	cell := "(40075016.685578488 / 2.0::float8 ^ " + top + ")"
	// The levels are aggregated in a temporary table, then copied in
	// (level, cx, cy) order: a tile's cells are then neighbours on disk
	// (one page holds about a hundred), where aggregation order scattered
	// them one a page.
	stage := pgx.Identifier{"__meridian_ovp"}.Sanitize()
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{Schema}.Sanitize(),
		"CREATE TEMP TABLE " + stage + " (level int2 NOT NULL, cx int4 NOT NULL, cy int4 NOT NULL, n int8 NOT NULL, " +
			"sx float8 NOT NULL, sy float8 NOT NULL, key " + keyType + " NOT NULL) ON COMMIT DROP",
		`INSERT INTO ` + stage + ` (level, cx, cy, n, sx, sy, key)
SELECT ` + top + `, floor(m.x / ` + cell + `)::int4, floor(m.y / ` + cell + `)::int4, count(*), sum(m.x), sum(m.y), min(m.key)
FROM (SELECT g.` + pgx.Identifier{ov.Key}.Sanitize() + ` AS key, ` + mx + ` AS x, ` + my + ` AS y
      FROM ` + pgx.Identifier{t.Schema, t.Name}.Sanitize() + ` g WHERE ` + g + ` && ` + world + `) m
GROUP BY 2, 3`,
	}
	for level := ov.Bands - 1; level >= 0; level-- {
		stmts = append(stmts, `INSERT INTO `+stage+` (level, cx, cy, n, sx, sy, key)
SELECT `+strconv.Itoa(level)+`, cx >> 1, cy >> 1, sum(n), sum(sx), sum(sy), min(key) FROM `+stage+`
WHERE level = `+strconv.Itoa(level+1)+` GROUP BY 2, 3`)
	}
	return append(stmts,
		"CREATE TABLE "+tbl+" (LIKE "+stage+")",
		"INSERT INTO "+tbl+" SELECT * FROM "+stage+" ORDER BY level, cx, cy",
		"ALTER TABLE "+tbl+" ADD PRIMARY KEY (level, cx, cy)",
		"ANALYZE "+tbl)
}

// warmCopies bounds the copies WarmStatements plans.
const warmCopies = 256

// WarmStatements returns statements that, run on a fresh backend of the
// data database q, load what its first tiles from the copies would: each
// copy's relation, indexes and geometry statistics (a plan of a read by
// bounding box) and its table's relation. They only plan (EXPLAIN), so
// they cost milliseconds whatever the sizes. None when the database holds
// no copy of the current layout.
func WarmStatements(ctx context.Context, q catalog.Querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname),
       EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'geom' AND NOT a.attisdropped),
       (SELECT format('%I.%I', sn.nspname, s.relname) FROM pg_class s JOIN pg_namespace sn ON sn.oid = s.relnamespace
         WHERE s.oid = `+sourceOIDSQL+`)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind = 'r' AND strpos(c.relname, $2) > 0
ORDER BY c.oid DESC LIMIT $3`, Schema, "_"+formatVersion, warmCopies)
	if err != nil {
		return nil, fmt.Errorf("listing overview copies: %w", err)
	}
	var stmts []string
	tables := map[string]bool{}
	for rows.Next() {
		var copy string
		var geom bool
		var table *string
		if err := rows.Scan(&copy, &geom, &table); err != nil {
			return nil, fmt.Errorf("listing overview copies: %w", err)
		}
		if geom {
			stmts = append(stmts, "EXPLAIN SELECT * FROM "+copy+" WHERE geom && ST_MakeEnvelope(0, 0, 1, 1, 3857)")
		} else {
			stmts = append(stmts, "EXPLAIN SELECT * FROM "+copy)
		}
		if table != nil && !tables[*table] {
			tables[*table] = true
			stmts = append(stmts, "EXPLAIN SELECT * FROM "+*table)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing overview copies: %w", err)
	}
	return stmts, nil
}
