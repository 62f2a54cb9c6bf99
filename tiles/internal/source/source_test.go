package source

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// getParams mimics a GET request: every value is a JSON string.
func getParams(kv ...string) Params {
	p := Params{}
	for i := 0; i < len(kv); i += 2 {
		b, _ := json.Marshal(kv[i+1])
		p[kv[i]] = b
	}
	return p
}

func TestParseSpecGETAndPOSTAgree(t *testing.T) {
	get := getParams("v", "3.4", "client", "deck-gl-carto", "name", "public.stores",
		"spatialDataColumn", "geom", "spatialDataType", "geo", "tileResolution", "0.5",
		"columns", "name, revenue,name", "filters", `{"storetype":{"in":{"values":["Supermarket"],"owner":"w"}}}`)
	post := Params{}
	json.Unmarshal([]byte(`{"v":"3.4","client":"x","name":"public.stores","spatialDataColumn":"geom",
		"spatialDataType":"geo","tileResolution":"0.5","columns":["name","revenue"],
		"filters":{"storetype":{"in":{"values":["Supermarket"]}}}}`), &post)
	a, err := ParseSpec("pg", TypeTable, get)
	if err != nil {
		t.Fatalf("ParseSpec(GET): %v", err)
	}
	b, err := ParseSpec("pg", TypeTable, post)
	if err != nil {
		t.Fatalf("ParseSpec(POST): %v", err)
	}
	if a.Key() != b.Key() {
		t.Errorf("GET and POST keys differ:\n%s\n%s", a.Key(), b.Key())
	}
	if got := strings.Join(a.Columns, ","); got != "name,revenue" {
		t.Errorf("Columns = %q, want name,revenue", got)
	}
	back, err := DecodeKey(a.Key())
	if err != nil {
		t.Fatalf("DecodeKey: %v", err)
	}
	if back.Key() != a.Key() || back.Name != "public.stores" || string(back.Filters) != `{"storetype":{"in":{"values":["Supermarket"]}}}` {
		t.Errorf("DecodeKey round trip = %+v", back)
	}
	if len(ID(a.Key())) != 16 {
		t.Errorf("ID = %q, want 16 hex digits", ID(a.Key()))
	}
}

func TestParseSpecQuery(t *testing.T) {
	p := Params{}
	json.Unmarshal([]byte(`{"q":"SELECT * FROM stores WHERE kind = $1 AND n > $2;","queryParameters":["a", 3]}`), &p)
	s, err := ParseSpec("pg", TypeQuery, p)
	if err != nil {
		t.Fatalf("ParseSpec: %v", err)
	}
	if s.Query != "SELECT * FROM stores WHERE kind = $1 AND n > $2" {
		t.Errorf("Query = %q", s.Query)
	}
	args := s.Args()
	if len(args) != 2 || args[0] != "a" || args[1] != int64(3) {
		t.Errorf("Args() = %#v, want [a 3]", args)
	}
	// GET form: queryParameters JSON-encoded in a string.
	g := getParams("q", "SELECT $1::text AS x, geom FROM t", "queryParameters", `[1.5]`)
	s2, err := ParseSpec("pg", TypeQuery, g)
	if err != nil {
		t.Fatalf("ParseSpec(GET): %v", err)
	}
	if a := s2.Args(); len(a) != 1 || a[0] != 1.5 {
		t.Errorf("Args() = %#v, want [1.5]", a)
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  Type
		p    Params
	}{
		{"no name", TypeTable, getParams()},
		{"bad resolution", TypeTable, getParams("name", "t", "tileResolution", "3")},
		{"h3int", TypeTable, getParams("name", "t", "spatialDataType", "h3int")},
		{"bad aggregationResLevel", TypeTable, getParams("name", "t", "spatialDataType", "h3", "aggregationResLevel", "x")},
		{"legacy geo_column", TypeTable, getParams("name", "t", "geo_column", "geom")},
		{"bad filters", TypeTable, getParams("name", "t", "filters", `{"a":{"nope":{}}}`)},
		{"tileset", Type("tileset"), getParams("name", "t")},
		{"no query", TypeQuery, getParams()},
		{"two statements", TypeQuery, getParams("q", "SELECT 1; SELECT 2")},
		{"missing params", TypeQuery, getParams("q", "SELECT * FROM t WHERE a = $2", "queryParameters", `["x"]`)},
		{"named params with $n", TypeQuery, getParams("q", "SELECT * FROM t WHERE a = $1", "queryParameters", `{"a":1}`)},
		{"named object value", TypeQuery, getParams("q", "SELECT * FROM t WHERE a = :a", "queryParameters", `{"a":{"b":1}}`)},
		{"object param", TypeQuery, getParams("q", "SELECT $1", "queryParameters", `[{"a":1}]`)},
	}
	for _, tt := range tests {
		if _, err := ParseSpec("pg", tt.typ, tt.p); !errors.Is(err, ErrBadParams) {
			t.Errorf("%s: ParseSpec error = %v, want ErrBadParams", tt.name, err)
		}
	}
	// Empty queryParameters forms are accepted.
	for _, qp := range []string{`""`, `null`, `[]`, `{}`} {
		p := getParams("q", "SELECT 1")
		p["queryParameters"] = json.RawMessage(qp)
		if _, err := ParseSpec("pg", TypeQuery, p); err != nil {
			t.Errorf("queryParameters %s: %v", qp, err)
		}
	}
}

func TestDecodeKeyRejects(t *testing.T) {
	for _, k := range []string{"", "1", "2abc", "1!!!", "1" + strings.Repeat("A", 10)} {
		if _, err := DecodeKey(k); !errors.Is(err, ErrBadKey) {
			t.Errorf("DecodeKey(%q) error = %v, want ErrBadKey", k, err)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	s, _ := ParseSpec("pg", TypeTable, getParams("name", "public.stores", "columns", "name,revenue"))
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Key()
	}
}

// TestNamedParams: an object of queryParameters binds :name and @name
// placeholders as $1, $2… in order of first use, outside literals,
// quoted names, comments and casts.
func TestNamedParams(t *testing.T) {
	p := getParams("q", `SELECT x::text, ':a', "@a", g <@ :b FROM t WHERE a = @a AND c = :a -- :b`, "queryParameters", `{"a": 1.5, "b": "x", "unused": true}`)
	s, err := ParseSpec("pg", TypeQuery, p)
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT x::text, ':a', "@a", g <@ $1 FROM t WHERE a = $2 AND c = $2 -- :b`
	if s.SQL() != want || s.Query != p.String("q") {
		t.Errorf("SQL = %s\nwant  %s (Query %s)", s.SQL(), want, s.Query)
	}
	if args := s.Args(); len(args) != 2 || args[0] != "x" || args[1] != 1.5 {
		t.Errorf("args = %#v", args)
	}
	qs, err := ParseQuery(getParams("q", "SELECT :n + 1", "queryParameters", `{"n": 41}`))
	if err != nil || qs.SQL() != "SELECT $1 + 1" || qs.Query != "SELECT :n + 1" || len(qs.Args()) != 1 || qs.Args()[0] != int64(41) {
		t.Errorf("ParseQuery = %+v %v", qs, err)
	}
}
