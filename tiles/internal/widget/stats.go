package widget

import (
	"math"
	"slices"
	"strconv"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
)

// Stats API answers (CARTO_API.md §4.5).
const (
	// MaxStatsCategories caps the categories of a String attribute.
	MaxStatsCategories = 200
	// MinQuantiles and MaxQuantiles bound the bucket counts of quantiles.
	MinQuantiles, MaxQuantiles = 2, 20
)

// quantileFractions are the fractions i/n for every n of quantiles,
// deduplicated and sorted.
var quantileFractions = func() []float64 {
	var fs []float64
	for n := MinQuantiles; n <= MaxQuantiles; n++ {
		for i := 0; i <= n; i++ {
			f := float64(i) / float64(n)
			if !slices.Contains(fs, f) {
				fs = append(fs, f)
			}
		}
	}
	slices.Sort(fs)
	return fs
}()

// Stats plans the statistics of one column of src within scope, the body
// of GET /v3/stats/…:
//
//   - geometry: {attribute, type: "Geometry", extent: {xmin, ymin, xmax, ymax}}
//     in lon/lat (all null when no row has a geometry);
//   - number: {attribute, type: "Number", count, min, max, avg, sum,
//     quantiles: {"n": [n+1 breaks from min to max]} for n = 2…20};
//   - timestamp: {attribute, type: "Timestamp", count, min, max} (ISO strings);
//   - boolean: {attribute, type: "Boolean", count, categories};
//   - anything else: {attribute, type: "String", count, categories:
//     [{category, frequency}]}, the MaxStatsCategories most frequent.
func Stats(src *Source, scope Scope, column string) (*Plan, error) {
	b := newBuilder(src, &scope)
	c, err := src.column(column)
	if err != nil {
		return nil, err
	}
	r := ref(c)
	switch {
	case c.Type == catalog.TypeGeometry:
		srid := 4326
		for _, g := range src.Geoms {
			if g.Name == c.Name && g.SRID != 0 {
				srid = g.SRID
			}
		}
		w, err := b.where()
		if err != nil {
			return nil, err
		}
		box := "ST_Transform(ST_SetSRID(ST_Extent(" + r + ")::geometry, " + b.bind(int32(srid)) + "::int), 4326)"
		st := b.stmt("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT " + box + " AS e FROM " +
			src.from() + w + ") s")
		return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
			row, err := one(res[0])
			if err != nil {
				return nil, err
			}
			ext := map[string]any{"xmin": nil, "ymin": nil, "xmax": nil, "ymax": nil}
			if row[0] != nil {
				clamp := func(v any, lo, hi float64) float64 { f, _ := v.(float64); return math.Max(lo, math.Min(hi, f)) }
				ext["xmin"], ext["xmax"] = clamp(row[0], -180, 180), clamp(row[2], -180, 180)
				ext["ymin"], ext["ymax"] = clamp(row[1], -90, 90), clamp(row[3], -90, 90)
			}
			return map[string]any{"attribute": column, "type": "Geometry", "extent": ext}, nil
		}}, nil

	case isNumeric(c):
		w, err := b.where()
		if err != nil {
			return nil, err
		}
		st := b.stmt("SELECT count(" + r + "), min(" + r + ")::float8, max(" + r + ")::float8, avg(" + r + ")::float8, sum(" + r +
			")::float8, percentile_disc(" + b.bind(quantileFractions) + "::float8[]) WITHIN GROUP (ORDER BY " + r + "::float8) FROM " +
			src.from() + w)
		return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
			row, err := one(res[0])
			if err != nil {
				return nil, err
			}
			out := map[string]any{"attribute": column, "type": "Number", "count": row[0],
				"min": Plain(row[1]), "max": Plain(row[2]), "avg": Plain(row[3]), "sum": Plain(row[4])}
			if breaks := floats(row[5]); len(breaks) == len(quantileFractions) {
				q := map[string][]float64{}
				for n := MinQuantiles; n <= MaxQuantiles; n++ {
					vals := make([]float64, 0, n+1)
					for i := 0; i <= n; i++ {
						vals = append(vals, breaks[slices.Index(quantileFractions, float64(i)/float64(n))])
					}
					q[strconv.Itoa(n)] = vals
				}
				out["quantiles"] = q
			}
			return out, nil
		}}, nil

	case c.Type == catalog.TypeTimestamp:
		w, err := b.where()
		if err != nil {
			return nil, err
		}
		st := b.stmt("SELECT count(" + r + "), min(" + r + "), max(" + r + ") FROM " + src.from() + w)
		return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
			row, err := one(res[0])
			if err != nil {
				return nil, err
			}
			return map[string]any{"attribute": column, "type": "Timestamp", "count": row[0], "min": Plain(row[1]), "max": Plain(row[2])}, nil
		}}, nil
	}

	typ, cat := "String", value(c)
	if c.Type == catalog.TypeBoolean {
		typ = "Boolean"
	} else if c.Type == catalog.TypeObject {
		cat = r + "::text"
	}
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	count := b.stmt("SELECT count(" + r + ") FROM " + src.from() + w)
	b2 := newBuilder(src, &scope)
	w2, err := b2.where(r + " IS NOT NULL")
	if err != nil {
		return nil, err
	}
	cats := b2.stmt("SELECT " + cat + " AS category, count(*) AS frequency FROM " + src.from() + w2 +
		" GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT " + b2.bind(int64(MaxStatsCategories)))
	return &Plan{Statements: []Statement{count, cats}, shape: func(res []Result) (any, error) {
		n, err := one(res[0])
		if err != nil {
			return nil, err
		}
		return map[string]any{"attribute": column, "type": typ, "count": n[0], "categories": rows(res[1])}, nil
	}}, nil
}

// floats reads a decoded float8[].
func floats(v any) []float64 {
	switch x := v.(type) {
	case []float64:
		return x
	case []any:
		out := make([]float64, 0, len(x))
		for _, e := range x {
			f, ok := e.(float64)
			if !ok {
				return nil
			}
			out = append(out, f)
		}
		return out
	}
	return nil
}
