package ldsload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Region is one OSM extract to load: its addresses, streets and road graph.
type Region struct {
	// Name identifies the region in the tables ("delaware"). Default:
	// the file name up to its first '-' or '.'.
	Name string
	// File is an OSM extract osmium reads (.osm.pbf, .osm, .osm.bz2…).
	File string
}

// RegionName is the default name of the region of an extract file.
func RegionName(file string) string {
	base := filepath.Base(file)
	if i := strings.IndexAny(base, "-."); i > 0 {
		base = base[:i]
	}
	return strings.ToLower(base)
}

// osmium runs `osmium tags-filter | osmium add-locations-to-ways` on file
// and returns the OPL stream and a wait function.
func osmium(ctx context.Context, file string) (io.ReadCloser, func() error, error) {
	bin, err := exec.LookPath("osmium")
	if err != nil {
		return nil, nil, errors.New("osmium not found: install osmium-tool (scripts/ensure-deps.sh lds does)")
	}
	if _, err := os.Stat(file); err != nil {
		return nil, nil, fmt.Errorf("opening OSM extract: %w", err)
	}
	filter := exec.CommandContext(ctx, bin, "tags-filter", file, "w/highway", "nw/addr:housenumber", "-f", "pbf", "-o", "-")
	locate := exec.CommandContext(ctx, bin, "add-locations-to-ways", "-F", "pbf", "-", "-f", "opl,add_metadata=false", "-o", "-")
	var ferr, lerr strings.Builder
	filter.Stderr, locate.Stderr = &ferr, &lerr
	pipe, err := filter.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	locate.Stdin = pipe
	out, err := locate.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := filter.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting osmium tags-filter: %w", err)
	}
	if err := locate.Start(); err != nil {
		filter.Process.Kill()
		filter.Wait()
		return nil, nil, fmt.Errorf("starting osmium add-locations-to-ways: %w", err)
	}
	wait := func() error {
		e1 := locate.Wait()
		e2 := filter.Wait()
		if e2 != nil {
			return fmt.Errorf("osmium tags-filter %s: %w: %s", file, e2, strings.TrimSpace(ferr.String()))
		}
		if e1 != nil {
			return fmt.Errorf("osmium add-locations-to-ways: %w: %s", e1, strings.TrimSpace(lerr.String()))
		}
		return nil
	}
	return out, wait, nil
}

type osmWay struct {
	id    int64
	tags  map[string]string
	nodes []wayNode
}

type addressRow struct {
	housenumber, street, city, postcode, country string
	lon, lat                                     float64
}

// loadRegion reads reg's extract and replaces the region's addresses,
// streets and edges in one transaction.
func (l *Loader) loadRegion(ctx context.Context, reg Region) error {
	if reg.Name == "" {
		reg.Name = RegionName(reg.File)
	}
	stage := "osm " + reg.Name
	l.progress(stage, 0, 3)
	out, wait, err := osmium(ctx, reg.File)
	if err != nil {
		return err
	}
	var ways []osmWay
	var addrs []addressRow
	minX, minY, maxX, maxY := 180.0, 90.0, -180.0, -90.0
	extend := func(x, y float64) {
		minX, minY, maxX, maxY = min(minX, x), min(minY, y), max(maxX, x), max(maxY, y)
	}
	rerr := readOPL(out, func(o *oplObject) error {
		if o.Tags["addr:housenumber"] != "" {
			a := addressRow{housenumber: o.Tags["addr:housenumber"], street: o.Tags["addr:street"],
				city: o.Tags["addr:city"], postcode: o.Tags["addr:postcode"], country: strings.ToUpper(o.Tags["addr:country"])}
			if a.street == "" {
				a.street = o.Tags["addr:place"]
			}
			ok := true
			if o.Kind == 'n' {
				a.lon, a.lat = o.Lon, o.Lat
			} else if len(o.Nodes) > 0 {
				for _, n := range o.Nodes {
					a.lon += n.Lon
					a.lat += n.Lat
				}
				a.lon /= float64(len(o.Nodes))
				a.lat /= float64(len(o.Nodes))
			} else {
				ok = false
			}
			if ok && a.street != "" && len(a.country) <= 2 {
				addrs = append(addrs, a)
			}
		}
		if o.Kind == 'w' && o.Tags["highway"] != "" && len(o.Nodes) >= 2 {
			ways = append(ways, osmWay{id: o.ID, tags: o.Tags, nodes: o.Nodes})
			for _, n := range o.Nodes {
				extend(n.Lon, n.Lat)
			}
		}
		return nil
	})
	if rerr != nil {
		out.Close()
		wait()
		return rerr
	}
	if err := wait(); err != nil {
		return err
	}
	if len(ways) == 0 {
		return fmt.Errorf("region %s: %s has no highway ways", reg.Name, reg.File)
	}
	l.progress(stage, 1, 3)

	// Split routable ways at every node two ways share (and at their ends).
	uses := map[int64]int{}
	for _, w := range ways {
		if !routable(w.tags["highway"]) {
			continue
		}
		for i, n := range w.nodes {
			uses[n.ID]++
			if i == 0 || i == len(w.nodes)-1 {
				uses[n.ID]++
			}
		}
	}
	var edgeRows, streetRows [][]any
	for _, w := range ways {
		hw := w.tags["highway"]
		if name := w.tags["name"]; name != "" && hw != "footway" && hw != "path" && hw != "steps" && hw != "cycleway" {
			pc := w.tags["addr:postcode"]
			if pc == "" {
				pc = w.tags["tiger:zip_left"]
			}
			streetRows = append(streetRows, []any{name, nullable(pc), lineWKT(w.nodes)})
		}
		if !routable(hw) {
			continue
		}
		ow := onewayOf(w.tags)
		start := 0
		for i := 1; i < len(w.nodes); i++ {
			if uses[w.nodes[i].ID] < 2 && i != len(w.nodes)-1 {
				continue
			}
			seg := w.nodes[start : i+1]
			start = i
			length := 0.0
			for j := 1; j < len(seg); j++ {
				length += haversine(seg[j-1].Lon, seg[j-1].Lat, seg[j].Lon, seg[j].Lat)
			}
			if seg[0].ID == seg[len(seg)-1].ID && length == 0 {
				continue
			}
			car, carRev, walk := edgeCosts(w.tags, length)
			a, b := seg[0], seg[len(seg)-1]
			edgeRows = append(edgeRows, []any{w.id, a.ID, b.ID, hw, nullable(w.tags["name"]), int16(ow), length,
				car, carRev, walk, a.Lon, a.Lat, b.Lon, b.Lat, lineWKT(seg)})
		}
	}
	l.progress(stage, 2, 3)

	err = pgx.BeginFunc(ctx, l.conn, func(tx pgx.Tx) error {
		for _, q := range []string{
			"DELETE FROM meridian_lds.edges WHERE region = $1",
			"DELETE FROM meridian_lds.vertices WHERE region = $1",
			"DELETE FROM meridian_lds.streets WHERE region = $1",
			"DELETE FROM meridian_lds.addresses WHERE region = $1",
			"DELETE FROM meridian_lds.regions WHERE name = $1",
		} {
			if _, err := tx.Exec(ctx, q, reg.Name); err != nil {
				return err
			}
		}
		// The region's country: the one containing the middle of its roads.
		var country string
		err := tx.QueryRow(ctx, `SELECT coalesce((SELECT country_code FROM meridian_lds.areas WHERE kind = 'country'
			AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326)) LIMIT 1), '')`,
			(minX+maxX)/2, (minY+maxY)/2).Scan(&country)
		if err != nil {
			return err
		}
		if country == "" {
			return fmt.Errorf("region %s: no country polygon contains its centre: load Natural Earth admin-0 first", reg.Name)
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE edges_load (osm_id bigint, source bigint, target bigint, highway text,
			name text, oneway smallint, length_m float8, car_cost float8, car_reverse_cost float8, walk_cost float8,
			x1 float8, y1 float8, x2 float8, y2 float8, wkt text) ON COMMIT DROP;
			CREATE TEMP TABLE streets_load (name text, postal_code text, wkt text) ON COMMIT DROP;
			CREATE TEMP TABLE addresses_load (housenumber text, street text, city text, postal_code text, country_code text,
			lon float8, lat float8) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"edges_load"}, []string{"osm_id", "source", "target", "highway", "name",
			"oneway", "length_m", "car_cost", "car_reverse_cost", "walk_cost", "x1", "y1", "x2", "y2", "wkt"},
			pgx.CopyFromRows(edgeRows)); err != nil {
			return fmt.Errorf("copying edges: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"streets_load"}, []string{"name", "postal_code", "wkt"},
			pgx.CopyFromRows(streetRows)); err != nil {
			return fmt.Errorf("copying streets: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"addresses_load"},
			[]string{"housenumber", "street", "city", "postal_code", "country_code", "lon", "lat"},
			pgx.CopyFromSlice(len(addrs), func(i int) ([]any, error) {
				a := addrs[i]
				return []any{a.housenumber, a.street, nullable(a.city), nullable(a.postcode), nullable(a.country), a.lon, a.lat}, nil
			})); err != nil {
			return fmt.Errorf("copying addresses: %w", err)
		}
		for _, q := range []string{
			`INSERT INTO meridian_lds.edges (region, osm_id, source, target, highway, name, oneway, length_m, car_cost,
				car_reverse_cost, walk_cost, x1, y1, x2, y2, geom)
			 SELECT $1, osm_id, source, target, highway, name, oneway, length_m, car_cost, car_reverse_cost, walk_cost,
				x1, y1, x2, y2, ST_GeomFromText(wkt, 4326) FROM edges_load`,
			`INSERT INTO meridian_lds.vertices (id, region, lon, lat)
			 SELECT DISTINCT ON (id) id, $1, lon, lat FROM (SELECT source id, x1 lon, y1 lat FROM edges_load
				UNION ALL SELECT target, x2, y2 FROM edges_load) v ON CONFLICT (id) DO NOTHING`,
			`INSERT INTO meridian_lds.streets (region, name, norm, postal_code, country_code, geom)
			 SELECT $1, name, meridian_lds.norm(name), postal_code, $2, ST_GeomFromText(wkt, 4326) FROM streets_load`,
			`INSERT INTO meridian_lds.addresses (region, housenumber, street, street_norm, city, postal_code, country_code, geom)
			 SELECT $1, housenumber, street, meridian_lds.norm(street), city, postal_code, coalesce(country_code, $2),
				ST_SetSRID(ST_MakePoint(lon, lat), 4326) FROM addresses_load`,
		} {
			args := []any{reg.Name}
			if strings.Contains(q, "$2") {
				args = append(args, country)
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("inserting region rows: %w", err)
			}
		}
		// Cities and postal codes the OSM data lacks: the nearest GeoNames
		// place and postal code.
		for _, q := range []string{
			`UPDATE meridian_lds.addresses a SET city = (SELECT p.name FROM meridian_lds.places p WHERE p.kind = 'city'
				ORDER BY p.geom <-> a.geom LIMIT 1) WHERE a.region = $1 AND a.city IS NULL`,
			`UPDATE meridian_lds.addresses a SET postal_code = (SELECT p.code FROM meridian_lds.postcodes p
				ORDER BY p.geom <-> a.geom LIMIT 1) WHERE a.region = $1 AND a.postal_code IS NULL`,
			`UPDATE meridian_lds.streets s SET city = (SELECT p.name FROM meridian_lds.places p WHERE p.kind = 'city'
				ORDER BY p.geom <-> ST_PointOnSurface(s.geom) LIMIT 1) WHERE s.region = $1`,
			`INSERT INTO meridian_lds.regions (name, file, bbox) VALUES ($1, $2, ST_MakeEnvelope($3, $4, $5, $6, 4326))`,
		} {
			args := []any{reg.Name}
			if strings.HasPrefix(q, "INSERT") {
				args = append(args, filepath.Base(reg.File), minX, minY, maxX, maxY)
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("completing region rows: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading region %s: %w", reg.Name, err)
	}
	l.progress(stage, 3, 3)
	l.logf("region %s: %d edges, %d streets, %d addresses", reg.Name, len(edgeRows), len(streetRows), len(addrs))
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func lineWKT(ns []wayNode) string {
	var b strings.Builder
	b.WriteString("LINESTRING(")
	for i, n := range ns {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(n.Lon, 'f', -1, 64))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatFloat(n.Lat, 'f', -1, 64))
	}
	b.WriteByte(')')
	return b.String()
}
