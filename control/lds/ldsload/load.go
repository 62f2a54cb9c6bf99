// Package ldsload builds the Location Data Services gazetteer and road
// graph in schema meridian_lds of a data database (see schema.sql):
// Natural Earth admin-0/admin-1 (names in many languages, polygons),
// GeoNames places and postal codes, and, per OSM extract (a "region"),
// addresses, streets and a routable graph.
//
// The OSM extracts are read through osmium (osmium-tool): `tags-filter`
// keeps highways and addresses, `add-locations-to-ways` inlines node
// locations, and the OPL text is parsed here, so no node table is ever
// held in memory. Ways are split at shared nodes; vertex ids are OSM node
// ids. The graph has car and walk costs (see profile.go); turn
// restrictions are not modelled.
//
// Every step is idempotent: a source or region loaded again replaces its
// rows. The database needs postgis and pgrouting (created by a superuser:
// the cluster provisioning does it); pg_trgm and unaccent are created here.
package ldsload

import (
	"bufio"
	"compress/gzip"
	"context"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed schema.sql
var schemaSQL string

// Options say what to load. Empty fields are skipped.
type Options struct {
	// Admin0, Admin1: Natural Earth admin-0 countries and admin-1 states
	// GeoJSON (optionally .gz). Admin0 is needed before any region.
	Admin0, Admin1 string
	// Places: GeoNames cities CSV (name,country,admin1,admin2,latitude,longitude), optionally .gz.
	Places string
	// Postcodes: GeoNames postal codes CSV (country_code,zipcode,place,state,…,latitude,longitude).
	Postcodes string
	// PostcodeCountries, when not empty, keeps only these ISO-2 countries'
	// postal codes (tests load a subset).
	PostcodeCountries []string
	// Regions: OSM extracts.
	Regions []Region
}

// Progress is told how far a stage is: done of total units.
type Progress func(stage string, done, total int64)

// Loader loads into one database connection.
type Loader struct {
	conn     *pgx.Conn
	progress Progress
	logf     func(format string, args ...any)
}

// New returns a Loader on conn. progress and logf may be nil.
func New(conn *pgx.Conn, progress Progress, logf func(string, ...any)) *Loader {
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Loader{conn: conn, progress: progress, logf: logf}
}

// ErrMissingExtension: postgis or pgrouting is not installed in the database.
var ErrMissingExtension = errors.New("ldsload: missing extension")

// Prepare creates the schema (idempotent) and checks the extensions.
func (l *Loader) Prepare(ctx context.Context) error {
	for _, ext := range []string{"postgis", "pgrouting"} {
		var ok bool
		if err := l.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)", ext).Scan(&ok); err != nil {
			return fmt.Errorf("checking extension %s: %w", ext, err)
		}
		if !ok {
			// A superuser (or a trusted install) may still create it.
			if _, err := l.conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS "+ext); err != nil {
				return fmt.Errorf("%w %s (a superuser must run CREATE EXTENSION %s in this database; Debian: postgresql-15-pgrouting): %v",
					ErrMissingExtension, ext, ext, err)
			}
		}
	}
	if _, err := l.conn.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("creating schema meridian_lds: %w", err)
	}
	return nil
}

// Load runs Prepare and loads everything o names, in dependency order.
func (l *Loader) Load(ctx context.Context, o Options) error {
	if err := l.Prepare(ctx); err != nil {
		return err
	}
	if o.Admin0 != "" {
		if err := l.loadAdmin(ctx, o.Admin0, "country"); err != nil {
			return err
		}
	}
	if o.Admin1 != "" {
		if err := l.loadAdmin(ctx, o.Admin1, "state"); err != nil {
			return err
		}
	}
	if o.Places != "" {
		if err := l.loadPlaces(ctx, o.Places); err != nil {
			return err
		}
	}
	if o.Postcodes != "" {
		if err := l.loadPostcodes(ctx, o.Postcodes, o.PostcodeCountries); err != nil {
			return err
		}
	}
	if err := l.index(ctx); err != nil {
		return err
	}
	for _, r := range o.Regions {
		if err := l.loadRegion(ctx, r); err != nil {
			return err
		}
	}
	if len(o.Regions) > 0 {
		if err := l.index(ctx); err != nil {
			return err
		}
	}
	return nil
}

// index creates the indexes (idempotent) and analyzes the tables.
func (l *Loader) index(ctx context.Context) error {
	for _, q := range []string{
		"CREATE INDEX IF NOT EXISTS places_geom ON meridian_lds.places USING gist (geom)",
		"CREATE INDEX IF NOT EXISTS place_names_norm ON meridian_lds.place_names USING gin (norm gin_trgm_ops)",
		// Misspelt names in a given country (btree_gin): the trigram
		// matches of that country only.
		"CREATE INDEX IF NOT EXISTS place_names_country_norm ON meridian_lds.place_names USING gin (country_code, norm gin_trgm_ops)",
		"CREATE INDEX IF NOT EXISTS place_names_place ON meridian_lds.place_names (place_id)",
		// Exact names first (package geocode): a b-tree answers them in
		// microseconds where the trigram index scans thousands of rows.
		"CREATE INDEX IF NOT EXISTS place_names_exact ON meridian_lds.place_names (norm, country_code)",
		"CREATE INDEX IF NOT EXISTS places_kind_country ON meridian_lds.places (kind, country_code)",
		"CREATE INDEX IF NOT EXISTS areas_geom ON meridian_lds.areas USING gist (geom)",
		"CREATE INDEX IF NOT EXISTS area_parts_geom ON meridian_lds.area_parts USING gist (geom)",
		// A state named in an address ("Ayden, North Carolina") is found
		// by name: without this the lookup read every part (about 10 ms).
		"CREATE INDEX IF NOT EXISTS area_parts_name ON meridian_lds.area_parts (kind, country_code, name)",
		"CREATE INDEX IF NOT EXISTS postcodes_code ON meridian_lds.postcodes (code_norm, country_code)",
		"CREATE INDEX IF NOT EXISTS postcodes_geom ON meridian_lds.postcodes USING gist (geom)",
		"CREATE INDEX IF NOT EXISTS addresses_street ON meridian_lds.addresses USING gin (street_norm gin_trgm_ops)",
		"CREATE INDEX IF NOT EXISTS addresses_geom ON meridian_lds.addresses USING gist (geom)",
		"CREATE INDEX IF NOT EXISTS streets_norm ON meridian_lds.streets USING gin (norm gin_trgm_ops)",
		"CREATE INDEX IF NOT EXISTS streets_geom ON meridian_lds.streets USING gist (geom)",
		"CREATE INDEX IF NOT EXISTS edges_geom ON meridian_lds.edges USING gist (geom)",
		"CREATE INDEX IF NOT EXISTS edges_region ON meridian_lds.edges (region)",
		"CREATE INDEX IF NOT EXISTS edges_source ON meridian_lds.edges (source)",
		"CREATE INDEX IF NOT EXISTS edges_target ON meridian_lds.edges (target)",
		"ANALYZE meridian_lds.places, meridian_lds.place_names, meridian_lds.areas, meridian_lds.area_parts, meridian_lds.postcodes, " +
			"meridian_lds.addresses, meridian_lds.streets, meridian_lds.edges",
	} {
		if _, err := l.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("indexing meridian_lds: %w", err)
		}
	}
	return nil
}

// open opens a plain or gzipped file.
func open(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return bufio.NewReaderSize(f, 1<<16), func() { f.Close() }, nil
	}
	z, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return z, func() { z.Close(); f.Close() }, nil
}

// feature is a GeoJSON feature.
type feature struct {
	Properties map[string]any  `json:"properties"`
	Geometry   json.RawMessage `json:"geometry"`
}

// loadAdmin loads Natural Earth admin-0 (kind "country") or admin-1
// (kind "state") polygons as areas and places with all their names.
func (l *Loader) loadAdmin(ctx context.Context, path, kind string) error {
	r, closeFn, err := open(path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer closeFn()
	var fc struct {
		Features []feature `json:"features"`
	}
	if err := json.NewDecoder(r).Decode(&fc); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	stage := "natural earth " + kind
	total := int64(len(fc.Features))
	l.progress(stage, 0, total)
	return pgx.BeginFunc(ctx, l.conn, func(tx pgx.Tx) error {
		for _, q := range []string{"DELETE FROM meridian_lds.places WHERE kind = $1", "DELETE FROM meridian_lds.areas WHERE kind = $1"} {
			if _, err := tx.Exec(ctx, q, kind); err != nil {
				return err
			}
		}
		n := 0
		for i, f := range fc.Features {
			p := props(f.Properties)
			var name, cc, state string
			var pop int64
			var names []string
			rank := 2
			if kind == "country" {
				rank = 1
				name = p.str("NAME")
				cc = p.str("ISO_A2")
				if cc == "" || cc == "-99" {
					cc = p.str("ISO_A2_EH")
				}
				pop = int64(p.num("POP_EST"))
				names = p.all("NAME", "NAME_LONG", "ADMIN", "FORMAL_EN", "NAME_SORT", "NAME_CIAWF", "GEOUNIT", "SOVEREIGNT",
					"ISO_A3", "ISO_A2", "ISO_A2_EH")
				names = append(names, p.prefixed("NAME_")...)
			} else {
				name = p.str("name")
				cc = p.str("iso_a2")
				state = name
				names = p.all("name", "woe_name", "gn_name", "gns_name", "name_en", "postal", "iso_3166_2")
				for _, alt := range strings.Split(p.str("name_alt"), "|") {
					names = append(names, alt)
				}
				names = append(names, p.prefixed("name_")...)
			}
			if name == "" || len(cc) != 2 || len(f.Geometry) == 0 || string(f.Geometry) == "null" {
				continue
			}
			var id int64
			err := tx.QueryRow(ctx, `WITH a AS (
				INSERT INTO meridian_lds.areas (kind, name, country_code, geom)
				VALUES ($1, $2, $3, ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON($4), 4326)), 3)))
				RETURNING geom)
				INSERT INTO meridian_lds.places (kind, name, country_code, state, population, rank, geom)
				SELECT $1, $2, $3, nullif($5, ''), $6, $7, ST_PointOnSurface(geom) FROM a RETURNING id`,
				kind, name, cc, string(f.Geometry), state, pop, rank).Scan(&id)
			if err != nil {
				return fmt.Errorf("inserting %s %s: %w", kind, name, err)
			}
			seen := map[string]bool{}
			var uniq []string
			for _, nm := range names {
				nm = strings.TrimSpace(nm)
				if nm == "" || nm == "-99" || seen[nm] {
					continue
				}
				seen[nm] = true
				uniq = append(uniq, nm)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO meridian_lds.place_names (place_id, country_code, norm)
				SELECT DISTINCT $1::bigint, $3, meridian_lds.norm(n) FROM unnest($2::text[]) n WHERE meridian_lds.norm(n) <> ''`, id, uniq, cc); err != nil {
				return fmt.Errorf("inserting names of %s: %w", name, err)
			}
			n++
			if i%100 == 0 {
				l.progress(stage, int64(i), total)
			}
		}
		l.progress(stage, total, total)
		l.logf("%s: %d loaded from %s", stage, n, path)
		if _, err := tx.Exec(ctx, `DELETE FROM meridian_lds.area_parts WHERE kind = $1`, kind); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO meridian_lds.area_parts (area_id, kind, name, country_code, geom)
			SELECT id, kind, name, country_code, ST_Subdivide(geom, 128) FROM meridian_lds.areas WHERE kind = $1`, kind); err != nil {
			return fmt.Errorf("cutting %s areas: %w", kind, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO meridian_lds.sources (name, file, rows) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET file = EXCLUDED.file, rows = EXCLUDED.rows, loaded_at = now()`, kind, path, n)
		return err
	})
}

type props map[string]any

func (p props) str(k string) string {
	switch v := p[k].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

func (p props) num(k string) float64 {
	v, _ := p[k].(float64)
	return v
}

func (p props) all(keys ...string) []string {
	var out []string
	for _, k := range keys {
		if s := p.str(k); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// prefixed returns the string values of keys starting with prefix
// (NAME_DE, name_fr…), but not of the NAME_LEN-style numbers.
func (p props) prefixed(prefix string) []string {
	var out []string
	for k, v := range p {
		if s, ok := v.(string); ok && strings.HasPrefix(k, prefix) && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// csvRows streams a CSV file's records after its header to fn, with a
// column index by header name.
func csvRows(path string, fn func(rec []string, col map[string]int) error) error {
	r, closeFn, err := open(path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer closeFn()
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	head, err := cr.Read()
	if err != nil {
		return fmt.Errorf("reading %s header: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.ToLower(h))] = i
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if err := fn(rec, col); err != nil {
			return err
		}
	}
}

func field(rec []string, col map[string]int, name string) string {
	if i, ok := col[name]; ok && i < len(rec) {
		return strings.TrimSpace(rec[i])
	}
	return ""
}

// loadPlaces loads GeoNames cities as places of kind "city".
func (l *Loader) loadPlaces(ctx context.Context, path string) error {
	var rows [][]any
	err := csvRows(path, func(rec []string, col map[string]int) error {
		lat, e1 := strconv.ParseFloat(field(rec, col, "latitude"), 64)
		lon, e2 := strconv.ParseFloat(field(rec, col, "longitude"), 64)
		name, cc := field(rec, col, "name"), strings.ToUpper(field(rec, col, "country"))
		if e1 != nil || e2 != nil || name == "" || len(cc) != 2 {
			return nil
		}
		rows = append(rows, []any{name, cc, lon, lat})
		return nil
	})
	if err != nil {
		return err
	}
	stage := "geonames places"
	l.progress(stage, 0, int64(len(rows)))
	err = pgx.BeginFunc(ctx, l.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM meridian_lds.places WHERE kind = 'city'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE places_load (name text, country_code text, lon float8, lat float8) ON COMMIT DROP"); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"places_load"}, []string{"name", "country_code", "lon", "lat"},
			&progressRows{rows: rows, progress: func(i int) { l.progress(stage, int64(i), int64(len(rows))) }}); err != nil {
			return fmt.Errorf("copying places: %w", err)
		}
		if _, err := tx.Exec(ctx, `WITH p AS (
				INSERT INTO meridian_lds.places (kind, name, country_code, rank, geom)
				SELECT 'city', name, country_code, 3, ST_SetSRID(ST_MakePoint(lon, lat), 4326) FROM places_load
				RETURNING id, name, country_code)
			INSERT INTO meridian_lds.place_names (place_id, country_code, norm) SELECT id, country_code, meridian_lds.norm(name) FROM p`); err != nil {
			return fmt.Errorf("inserting places: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO meridian_lds.sources (name, file, rows) VALUES ('places', $1, $2)
			ON CONFLICT (name) DO UPDATE SET file = EXCLUDED.file, rows = EXCLUDED.rows, loaded_at = now()`, path, len(rows))
		return err
	})
	if err != nil {
		return fmt.Errorf("loading %s: %w", path, err)
	}
	l.progress(stage, int64(len(rows)), int64(len(rows)))
	l.logf("geonames places: %d loaded from %s", len(rows), path)
	return nil
}

// loadPostcodes loads GeoNames postal codes (optionally of some countries only).
func (l *Loader) loadPostcodes(ctx context.Context, path string, countries []string) error {
	keep := map[string]bool{}
	for _, c := range countries {
		keep[strings.ToUpper(c)] = true
	}
	var rows [][]any
	err := csvRows(path, func(rec []string, col map[string]int) error {
		cc := strings.ToUpper(field(rec, col, "country_code"))
		if len(keep) > 0 && !keep[cc] {
			return nil
		}
		lat, e1 := strconv.ParseFloat(field(rec, col, "latitude"), 64)
		lon, e2 := strconv.ParseFloat(field(rec, col, "longitude"), 64)
		code := field(rec, col, "zipcode")
		if e1 != nil || e2 != nil || code == "" || len(cc) != 2 {
			return nil
		}
		rows = append(rows, []any{cc, code, NormPostcode(code), nullable(field(rec, col, "place")), nullable(field(rec, col, "state")), lon, lat})
		return nil
	})
	if err != nil {
		return err
	}
	stage := "geonames postal codes"
	err = pgx.BeginFunc(ctx, l.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DROP INDEX IF EXISTS meridian_lds.postcodes_code; DROP INDEX IF EXISTS meridian_lds.postcodes_geom; TRUNCATE meridian_lds.postcodes"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE postcodes_load (country_code text, code text, code_norm text, place text, state text, lon float8, lat float8) ON COMMIT DROP"); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"postcodes_load"}, []string{"country_code", "code", "code_norm", "place", "state", "lon", "lat"},
			&progressRows{rows: rows, progress: func(i int) { l.progress(stage, int64(i), int64(len(rows))) }}); err != nil {
			return fmt.Errorf("copying postal codes: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO meridian_lds.postcodes (country_code, code, code_norm, place, state, geom)
			SELECT country_code, code, code_norm, place, state, ST_SetSRID(ST_MakePoint(lon, lat), 4326) FROM postcodes_load`); err != nil {
			return fmt.Errorf("inserting postal codes: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO meridian_lds.sources (name, file, rows) VALUES ('postcodes', $1, $2)
			ON CONFLICT (name) DO UPDATE SET file = EXCLUDED.file, rows = EXCLUDED.rows, loaded_at = now()`, path, len(rows))
		return err
	})
	if err != nil {
		return fmt.Errorf("loading %s: %w", path, err)
	}
	l.progress(stage, int64(len(rows)), int64(len(rows)))
	l.logf("geonames postal codes: %d loaded from %s", len(rows), path)
	return nil
}

// NormPostcode is the form postal codes are matched in: upper case,
// without spaces and dashes.
func NormPostcode(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t':
			return -1
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// progressRows is a pgx.CopyFromSource over rows that reports progress
// every 10,000 rows.
type progressRows struct {
	rows     [][]any
	i        int
	progress func(int)
}

func (p *progressRows) Next() bool {
	p.i++
	if p.i%10000 == 0 {
		p.progress(p.i)
	}
	return p.i <= len(p.rows)
}
func (p *progressRows) Values() ([]any, error) { return p.rows[p.i-1], nil }
func (p *progressRows) Err() error             { return nil }

// Standard returns the options loading the shared data folder's files
// (see ../shared/data/SOURCES.md): Natural Earth 10m admin-0 and
// admin-1, GeoNames cities and postal codes, and every OSM extract in
// dataDir/osm (.osm.pbf, .osm.bz2, .osm).
func Standard(dataDir string) (Options, error) {
	o := Options{
		Admin0:    dataDir + "/polygons/ne_10m_admin_0_countries.geojson.gz",
		Admin1:    dataDir + "/polygons/ne_10m_admin_1_states_provinces.geojson.gz",
		Places:    dataDir + "/points/geonames_cities1000.csv.gz",
		Postcodes: dataDir + "/points/geonames_postal_codes_117_countries.csv.gz",
	}
	for _, f := range []string{o.Admin0, o.Admin1, o.Places, o.Postcodes} {
		if _, err := os.Stat(f); err != nil {
			return Options{}, fmt.Errorf("LDS data: %w (set MERIDIAN_TESTDATA or pass the data folder)", err)
		}
	}
	entries, err := os.ReadDir(dataDir + "/osm")
	if err != nil {
		return Options{}, fmt.Errorf("LDS data: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".osm.pbf") || strings.HasSuffix(n, ".osm.bz2") || strings.HasSuffix(n, ".osm") {
			o.Regions = append(o.Regions, Region{File: dataDir + "/osm/" + n})
		}
	}
	return o, nil
}
