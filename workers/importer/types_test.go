package importer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/workers/importer"
	"github.com/meridian-gis/meridian/workers/importer/geojsonstream"
)

// airportsTimes builds a CSV from the real airports fixture repeated n
// times (beyond the 20,000-row sample), with extra columns computed from
// the row number r (1-based).
func airportsTimes(t *testing.T, n int, extra []string, value func(r int, col string) string) (string, [][]string) {
	t.Helper()
	raw, err := os.ReadFile(data(t, "fixtures/csv/us_airports_datagov.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	var b strings.Builder
	b.WriteString(lines[0])
	for _, c := range extra {
		b.WriteString("," + c)
	}
	b.WriteString("\n")
	var rows [][]string
	r := 0
	for k := 0; k < n; k++ {
		for _, l := range lines[1:] {
			r++
			b.WriteString(l)
			row := []string{l}
			for _, c := range extra {
				v := value(r, c)
				b.WriteString("," + v)
				row = append(row, v)
			}
			b.WriteString("\n")
			rows = append(rows, row)
		}
	}
	return writeFile(t, "airports.csv", []byte(b.String())), rows
}

func csvValue(r int, col string) string {
	switch col {
	case "code":
		if r < 21000 {
			return fmt.Sprint(r)
		}
		return fmt.Sprintf("A%d", r)
	case "late":
		if r < 20500 {
			return ""
		}
		return fmt.Sprint(r * 3)
	case "day":
		return fmt.Sprintf("2020-%02d-%02d", r%12+1, r%28+1)
	case "flag":
		return []string{"true", "false"}[r%2]
	case "big":
		return fmt.Sprintf("1234567890123456789%d", r%10)
	case "score":
		return fmt.Sprintf("%.2f", float64(r)/7)
	case "ratio":
		if r < 21000 {
			return fmt.Sprintf("%d.50", r%3)
		}
		return "n/a"
	}
	return ""
}

func TestCSVTypesWidenSafely(t *testing.T) {
	pool := testDB(t)
	tests := []struct {
		name      string
		extra     []string
		wantTypes map[string]string
		wantLog   string
		noLog     string
	}{
		{
			name:  "direct load widens integers in place and narrows late columns",
			extra: []string{"code", "late", "day", "flag", "big", "score"},
			wantTypes: map[string]string{
				"code": "text", "late": "bigint", "day": "date", "flag": "boolean", "big": "numeric", "score": "double precision",
				"latitude": "double precision", "iata": "text", "geom": "geometry(Point,4326)",
			},
			wantLog: "widening a column during a direct load", noLog: "restarts through staging",
		},
		{
			name:      "a double column meeting text restarts through staging",
			extra:     []string{"code", "ratio"},
			wantTypes: map[string]string{"code": "text", "ratio": "text", "latitude": "double precision"},
			wantLog:   "restarts through staging",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, rows := airportsTimes(t, 7, tt.extra, csvValue)
			var logs bytes.Buffer
			table := fmt.Sprintf("csvtypes_%d", i)
			res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{
				Table: table, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, pool, table, res)
			if res.Rows != int64(len(rows)) {
				t.Errorf("Rows = %d, want %d", res.Rows, len(rows))
			}
			types := columnTypes(t, pool, table)
			for c, want := range tt.wantTypes {
				if types[c] != want {
					t.Errorf("column %s is %q, want %q", c, types[c], want)
				}
			}
			if !strings.Contains(logs.String(), tt.wantLog) || tt.noLog != "" && strings.Contains(logs.String(), tt.noLog) {
				t.Errorf("logs do not show the expected path (want %q, not %q):\n%s", tt.wantLog, tt.noLog, logs.String())
			}
			// Every value reads back as the file wrote it.
			for _, r := range []int{1, 7, 20499, 20500, 20999, 21000, len(rows)} {
				for k, c := range tt.extra {
					var got *string
					if err := pool.QueryRow(context.Background(), fmt.Sprintf("SELECT %s::text FROM %s WHERE cartodb_id = $1", c, table), r).Scan(&got); err != nil {
						t.Fatal(err)
					}
					want := rows[r-1][k+1]
					switch {
					case want == "" && got == nil:
					case got == nil:
						t.Errorf("row %d %s = NULL, want %q", r, c, want)
					case types[c] == "double precision":
						if parseF(*got) != parseF(want) {
							t.Errorf("row %d %s = %s, want %s", r, c, *got, want)
						}
					case *got != want:
						t.Errorf("row %d %s = %q, want %q", r, c, *got, want)
					}
				}
			}
		})
	}
}

// roadsWith builds a FeatureCollection from the first n real features of
// the TIGER roads fixture, with properties added by props(i) (1-based).
func roadsWith(t *testing.T, n int, props func(i int) map[string]any) string {
	t.Helper()
	f, err := os.Open(data(t, "fixtures/geojson/tiger_roads_manhattan.geojson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := geojsonstream.NewReader(f, geojsonstream.Options{})
	var b bytes.Buffer
	b.WriteString(`{"type":"FeatureCollection","features":[`)
	for i := 1; i <= n; i++ {
		feat, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := map[string]any{}
		geojsonProps(t, feat.Props, &p)
		id := ""
		for k, v := range props(i) {
			if k == "@id" {
				id = fmt.Sprintf(`"id":%q,`, v)
				continue
			}
			p[k] = v
		}
		pj, _ := json.Marshal(p)
		if i > 1 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `{"type":"Feature",%s"properties":%s,"geometry":%s}`, id, pj, feat.Geometry)
	}
	b.WriteString("]}")
	return writeFile(t, "roads.geojson", b.Bytes())
}

func TestGeoJSONPropertyTypes(t *testing.T) {
	pool := testDB(t)
	path := roadsWith(t, 300, func(i int) map[string]any {
		p := map[string]any{
			"@id":      fmt.Sprintf("road-%d", i),
			"n":        float64(i) + float64(i%2)*0.5, // ints and floats
			"obj":      map[string]any{"a": i, "b": []any{1, "x"}},
			"day":      fmt.Sprintf("2021-03-%02d", i%28+1),
			"name":     "lower " + fmt.Sprint(i), // collides with NAME once laundered
			"tab\tkey": true,
			"nul":      "a\x00b",
		}
		if i < 200 {
			p["mixed"] = i
		} else {
			p["mixed"] = "x"
		}
		if i == 5 {
			p["objmix"] = "scalar"
		} else {
			p["objmix"] = map[string]any{"k": i}
		}
		if i >= 250 {
			p["late"] = i
		}
		return p
	})
	res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: "roads_types"})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, pool, "roads_types", res)
	if res.Rows != 300 || res.GeometryType != "LineString" {
		t.Errorf("Rows = %d, GeometryType %s; want 300 LineString", res.Rows, res.GeometryType)
	}
	types := columnTypes(t, pool, "roads_types")
	want := map[string]string{
		"id": "text", "n": "double precision", "obj": "jsonb", "day": "date", "mixed": "text", "objmix": "text",
		"late": "bigint", "tab_key": "boolean", "nul": "text", "cfcc": "text", "name": "text", "name_2": "text",
	}
	for c, w := range want {
		if types[c] != w {
			t.Errorf("column %s is %q, want %q (all: %v)", c, types[c], w, types)
		}
	}
	var (
		id, mixed, objmix5, objmix6, nul, name2 string
		n                                       float64
		late249                                 *int64
		late250                                 int64
		objA                                    int
	)
	err = pool.QueryRow(context.Background(), `SELECT
		(SELECT id FROM roads_types WHERE cartodb_id = 7), (SELECT mixed FROM roads_types WHERE cartodb_id = 7),
		(SELECT objmix FROM roads_types WHERE cartodb_id = 5), (SELECT objmix FROM roads_types WHERE cartodb_id = 6),
		(SELECT nul FROM roads_types WHERE cartodb_id = 1), (SELECT name_2 FROM roads_types WHERE cartodb_id = 3),
		(SELECT n FROM roads_types WHERE cartodb_id = 3), (SELECT late FROM roads_types WHERE cartodb_id = 249),
		(SELECT late FROM roads_types WHERE cartodb_id = 250), (SELECT (obj->>'a')::int FROM roads_types WHERE cartodb_id = 42)`).
		Scan(&id, &mixed, &objmix5, &objmix6, &nul, &name2, &n, &late249, &late250, &objA)
	if err != nil {
		t.Fatal(err)
	}
	if id != "road-7" || mixed != "7" || objmix5 != "scalar" || objmix6 != `{"k":6}` || nul != "ab" || name2 != "lower 3" ||
		n != 3.5 || late249 != nil || late250 != 250 || objA != 42 {
		t.Errorf("values: id %q mixed %q objmix %q/%q nul %q name_2 %q n %v late %v/%v obj.a %v", id, mixed, objmix5, objmix6, nul, name2, n, late249, late250, objA)
	}
	var sawNUL bool
	for _, w := range res.Warnings {
		sawNUL = sawNUL || strings.Contains(w, "NUL")
	}
	if !sawNUL {
		t.Errorf("no warning about the removed NUL characters: %q", res.Warnings)
	}
	for _, c := range res.Columns {
		if c.Name == "name_2" && c.Source != "name" || c.Name == "name" && c.Source != "NAME" {
			t.Errorf("column %s has source %q", c.Name, c.Source)
		}
	}
}

// TestTypeHints forces types, and reports a value that does not fit.
func TestTypeHints(t *testing.T) {
	pool := testDB(t)
	path := data(t, "fixtures/csv/ne_110m_populated_places.csv")
	res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{
		Table: "hinted", TypeHints: map[string]string{"pop_max": "numeric", "iso_a2": "varchar"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, pool, "hinted", res)
	if got := columnTypes(t, pool, "hinted"); got["pop_max"] != "numeric" || got["iso_a2"] != "text" {
		t.Errorf("hinted types = %v", got)
	}
	_, err = importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: "badhint", TypeHints: map[string]string{"name": "integer"}})
	var ie *importer.InputError
	if !errorsAs(err, &ie) || ie.Kind != importer.ErrMalformed {
		t.Errorf("hint that does not fit: error = %v, want an ErrMalformed InputError", err)
	}
	if tableExists(t, pool, "badhint") || stagingLeft(t, pool) != 0 {
		t.Errorf("a failed import left tables behind")
	}
	if _, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: "x", TypeHints: map[string]string{"name": "text; DROP TABLE x"}}); !errorsIs(err, importer.ErrInvalidOptions) {
		t.Errorf("unknown hint type: error = %v, want ErrInvalidOptions", err)
	}
}
