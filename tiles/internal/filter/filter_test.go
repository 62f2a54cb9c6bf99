package filter

import (
	"context"
	"errors"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
)

var cols = map[string]catalog.Column{
	"name":  {Name: "name", Type: catalog.TypeString, PGType: "text"},
	"pop":   {Name: "pop", Type: catalog.TypeNumber, PGType: "integer"},
	"big":   {Name: "big", Type: catalog.TypeBigint, PGType: "bigint"},
	"open":  {Name: "open", Type: catalog.TypeBoolean, PGType: "boolean"},
	"at":    {Name: "at", Type: catalog.TypeTimestamp, PGType: "timestamp with time zone"},
	"Mixed": {Name: "Mixed", Type: catalog.TypeString, PGType: "text"},
}

func lookup(n string) (catalog.Column, bool) { c, ok := cols[n]; return c, ok }

func TestAccentTables(t *testing.T) {
	if a, p := utf8.RuneCountInString(accented), utf8.RuneCountInString(plain); a != p {
		t.Fatalf("accented has %d letters, plain %d", a, p)
	}
	if got := Unaccent("Ñandú Čeština São"); got != "Nandu Cestina Sao" {
		t.Errorf("Unaccent = %q", got)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantNil bool
		wantErr bool
		canon   string
	}{
		{"empty", ``, true, false, ""},
		{"null", `null`, true, false, ""},
		{"empty string", `""`, true, false, ""},
		{"object", `{"name":{"in":{"values":["a","b"],"owner":"w1"}}}`, false, false, `{"name":{"in":{"values":["a","b"]}}}`},
		{"json string", `"{\"pop\":{\"between\":{\"values\":[[1,2]]}}}"`, false, false, `{"pop":{"between":{"values":[[1,2]]}}}`},
		{"sorted", `{"pop":{"in":{"values":[1]}},"name":{"in":{"values":["x"]}}}`, false, false, `{"name":{"in":{"values":["x"]}},"pop":{"in":{"values":[1]}}}`},
		{"no values dropped", `{"name":{"in":{"values":[]}}}`, true, false, ""},
		{"unknown op", `{"name":{"like":{"values":["a"]}}}`, false, true, ""},
		{"not an object", `[1,2]`, false, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%s) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v is not ErrInvalid", err)
				}
				return
			}
			if (f == nil) != tt.wantNil {
				t.Errorf("Parse(%s) = %v, want nil %v", tt.in, f, tt.wantNil)
			}
			if got := string(f.Canonical()); got != tt.canon {
				t.Errorf("Canonical() = %s, want %s", got, tt.canon)
			}
		})
	}
}

func TestSQL(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		or       bool
		wantSQL  string
		wantArgs []any
		wantErr  error
	}{
		{"in strings", `{"name":{"in":{"values":["a","b"]}}}`, false,
			`g."name" = ANY($3::text[])`, []any{[]string{"a", "b"}}, nil},
		{"in numbers with null", `{"pop":{"in":{"values":[1,2.5,null]}}}`, false,
			`(g."pop" = ANY($3::float8[]) OR g."pop" IS NULL)`, []any{[]float64{1, 2.5}}, nil},
		{"in only null", `{"pop":{"in":{"values":[null]}}}`, false, `g."pop" IS NULL`, nil, nil},
		{"in bool", `{"open":{"in":{"values":[true]}}}`, false, `g."open" = ANY($3::bool[])`, []any{[]bool{true}}, nil},
		{"in numeric strings", `{"pop":{"in":{"values":["3"]}}}`, false, `g."pop" = ANY($3::float8[])`, []any{[]float64{3}}, nil},
		{"in bad number", `{"pop":{"in":{"values":["x"]}}}`, false, "", nil, ErrInvalid},
		{"between open bounds", `{"pop":{"between":{"values":[[10,20],[30,null]]}}}`, false,
			`((g."pop" >= $3::float8 AND g."pop" <= $4::float8) OR (g."pop" >= $5::float8))`, []any{10.0, 20.0, 30.0}, nil},
		{"closed_open", `{"big":{"closed_open":{"values":[[0,100]]}}}`, false,
			`(g."big" >= $3::float8 AND g."big" < $4::float8)`, []any{0.0, 100.0}, nil},
		{"time", `{"at":{"time":{"values":[[1704067200000,null]]}}}`, false,
			`(g."at" >= to_timestamp($3::float8 / 1000))`, []any{1704067200000.0}, nil},
		{"bad pair", `{"pop":{"between":{"values":[[1]]}}}`, false, "", nil, ErrInvalid},
		{"search default", `{"name":{"stringSearch":{"values":["50%_off"]}}}`, false,
			`translate(g."name"::text, '` + accented + `', '` + plain + `') ILIKE $3`, []any{`%50\%\_off%`}, nil},
		{"search anchored case regex", `{"Mixed":{"stringSearch":{"values":["^Ma","x"],"params":{"useRegExp":true,"mustEnd":true,"caseSensitive":true,"keepSpecialCharacters":true}}}}`, false,
			`(g."Mixed"::text ~ $3 OR g."Mixed"::text ~ $4)`, []any{"(^Ma)$", "(x)$"}, nil},
		{"two columns or", `{"name":{"in":{"values":["a"]}},"pop":{"between":{"values":[[1,2]]}}}`, true,
			`g."name" = ANY($3::text[]) OR (g."pop" >= $4::float8 AND g."pop" <= $5::float8)`, []any{[]string{"a"}, 1.0, 2.0}, nil},
		{"unknown column", `{"nope":{"in":{"values":["a"]}}}`, false, "", nil, ErrUnknownColumn},
		{"injection in column name", `{"name\" OR 1=1 --":{"in":{"values":["a"]}}}`, false, "", nil, ErrUnknownColumn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, args, err := f.SQL("g", lookup, 2, tt.or)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("SQL error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SQL: %v", err)
			}
			if got != tt.wantSQL {
				t.Errorf("SQL =\n%s\nwant\n%s", got, tt.wantSQL)
			}
			if len(args) != len(tt.wantArgs) {
				t.Fatalf("args = %#v, want %#v", args, tt.wantArgs)
			}
			for i := range args {
				if !equalArg(args[i], tt.wantArgs[i]) {
					t.Errorf("args[%d] = %#v, want %#v", i, args[i], tt.wantArgs[i])
				}
			}
		})
	}
}

func equalArg(a, b any) bool {
	switch a := a.(type) {
	case []string:
		return slices.Equal(a, b.([]string))
	case []float64:
		return slices.Equal(a, b.([]float64))
	case []bool:
		return slices.Equal(a, b.([]bool))
	}
	return a == b
}

// TestSQLOnPostgres runs rendered filters and checks which rows match.
func TestSQLOnPostgres(t *testing.T) {
	db := pgtest.Data(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `CREATE TABLE t (id int, name text, pop int, big int8, open bool, at timestamptz, "Mixed" text);
		INSERT INTO t VALUES
		(1, 'São Paulo', 100, 1, true, '2024-01-01T00:00:00Z', 'Main St'),
		(2, 'Paris', 50, 2, false, '2024-02-01T00:00:00Z', 'main st'),
		(3, '50%_off', NULL, 3, NULL, NULL, 'x'),
		(4, 'Madrid', 200, 4, true, '2023-12-31T00:00:00Z', 'Ma')`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		or   bool
		want []int
	}{
		{`{"name":{"in":{"values":["Paris","Madrid"]}}}`, false, []int{2, 4}},
		{`{"pop":{"in":{"values":[100,null]}}}`, false, []int{1, 3}},
		{`{"pop":{"between":{"values":[[50,100]]}}}`, false, []int{1, 2}},
		{`{"pop":{"closed_open":{"values":[[50,100]]}}}`, false, []int{2}},
		{`{"pop":{"between":{"values":[[150,null]]}}}`, false, []int{4}},
		{`{"at":{"time":{"values":[[1704067200000,1706745600000]]}}}`, false, []int{1, 2}},
		{`{"name":{"stringSearch":{"values":["sao"]}}}`, false, []int{1}},
		{`{"name":{"stringSearch":{"values":["sao"],"params":{"keepSpecialCharacters":true}}}}`, false, nil},
		{`{"name":{"stringSearch":{"values":["%_"]}}}`, false, []int{3}},
		{`{"name":{"stringSearch":{"values":["pa"],"params":{"mustStart":true}}}}`, false, []int{2}},
		{`{"Mixed":{"stringSearch":{"values":["Main"],"params":{"caseSensitive":true}}}}`, false, []int{1}},
		{`{"Mixed":{"stringSearch":{"values":["^ma$"],"params":{"useRegExp":true}}}}`, false, []int{4}},
		{`{"open":{"in":{"values":[true]}},"pop":{"between":{"values":[[0,60]]}}}`, true, []int{1, 2, 4}},
		{`{"open":{"in":{"values":[true]}},"pop":{"between":{"values":[[0,150]]}}}`, false, []int{1}},
	}
	for _, tt := range tests {
		f, err := Parse([]byte(tt.in))
		if err != nil {
			t.Fatalf("Parse(%s): %v", tt.in, err)
		}
		where, args, err := f.SQL("g", lookup, 0, tt.or)
		if err != nil {
			t.Fatalf("SQL(%s): %v", tt.in, err)
		}
		rows, err := db.Pool.Query(ctx, "SELECT id FROM t g WHERE "+where+" ORDER BY id", args...)
		if err != nil {
			t.Fatalf("query for %s: %v\n%s", tt.in, err, where)
		}
		var got []int
		for rows.Next() {
			var id int
			rows.Scan(&id)
			got = append(got, id)
		}
		rows.Close()
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s matched %v, want %v", tt.in, got, tt.want)
		}
	}
}
