package workers

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// TableStats measures rows, extent, geometry and per-column statistics in
// the TileJSON tilestats shape.
func TestTableStats(t *testing.T) {
	e := newWorkerEnv(t, nil)
	ctx := context.Background()
	if _, err := e.data.Pool.Exec(ctx, `CREATE TABLE public.shops (cartodb_id serial PRIMARY KEY, name text, kind text,
			revenue double precision, staff int, open boolean, opened date, tags jsonb, geom geometry(Point, 4326));
		INSERT INTO public.shops (name, kind, revenue, staff, open, opened, tags, geom) VALUES
			('a', 'food', 10.5, 2, true, '2020-01-02', '{}', 'SRID=4326;POINT(-10 40)'),
			('b', 'food', 20, 3, true, '2021-05-06', '{}', 'SRID=4326;POINT(5 45)'),
			('c', 'books', NULL, 1, false, '2019-12-31', '{}', 'SRID=4326;POINT(2 -3)'),
			('d', NULL, 'Infinity', 4, NULL, NULL, NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	pool := e.data.Pool
	st, err := TableStats(ctx, pool, "shops")
	if err != nil {
		t.Fatal(err)
	}
	if st.Table != "public.shops" || st.Rows != 4 || st.GeometryColumn != "geom" || st.GeometryType != "POINT" || st.SRID != 4326 {
		t.Errorf("stats = %+v, want public.shops, 4 rows, geom POINT 4326", st)
	}
	if got, want := st.BBox, []float64{-10, -3, 5, 45}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("bbox = %v, want %v", got, want)
	}
	layer := st.Tilestats.Layers[0]
	if st.Tilestats.LayerCount != 1 || layer.Layer != "default" || layer.Count != 4 || layer.Geometry != "Point" {
		t.Errorf("tilestats layer = %+v, want default, 4, Point", layer)
	}
	attrs := map[string]TilestatsAttribute{}
	for _, a := range layer.Attributes {
		attrs[a.Attribute] = a
	}
	if len(attrs) != 7 || layer.AttributeCount != 7 {
		t.Errorf("attributes = %v, want 7 (geom and jsonb left out)", layer.Attributes)
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	tests := []struct{ attr, want string }{
		{"kind", `{"attribute":"kind","type":"String","categories":[{"category":"food","frequency":2},{"category":"books","frequency":1}]}`},
		{"staff", `{"attribute":"staff","type":"Number","min":1,"max":4,"avg":2.5,"sum":10}`},
		{"revenue", `{"attribute":"revenue","type":"Number","min":10.5}`}, // max, avg, sum are infinite: left out
		{"open", `{"attribute":"open","type":"Boolean","categories":[{"category":true,"frequency":2},{"category":false,"frequency":1}]}`},
		{"opened", `{"attribute":"opened","type":"Timestamp","min":"2019-12-31","max":"2021-05-06"}`},
	}
	for _, tt := range tests {
		if got := js(attrs[tt.attr]); got != tt.want {
			t.Errorf("attribute %s = %s, want %s", tt.attr, got, tt.want)
		}
	}
	if _, err := TableStats(ctx, pool, "public.nope"); !errors.Is(err, ErrNoTable) {
		t.Errorf("TableStats of a missing table = %v, want ErrNoTable", err)
	}
}
