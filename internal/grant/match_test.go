package grant

import (
	"errors"
	"strings"
	"testing"
)

func claimsWith(apis []API, grants ...Grant) *Claims {
	return &Claims{ID: "t", Grants: grants, APIs: apis}
}

func TestAllow(t *testing.T) {
	maps := []API{APIMaps}
	g := func(conn, src string) Grant { return Grant{Connection: conn, Source: src} }
	tests := []struct {
		name   string
		claims *Claims
		api    API
		conn   string
		source string
		want   error
	}{
		{"exact", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", "public.countries", nil},
		{"unqualified request, public grant", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", "countries", nil},
		{"unqualified grant, qualified request", claimsWith(maps, g("pg", "countries")), APIMaps, "pg", "public.countries", nil},
		{"unqualified both", claimsWith(maps, g("pg", "countries")), APIMaps, "pg", "countries", nil},
		{"case folds unquoted", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", "PUBLIC.Countries", nil},
		{"grant case folds too", claimsWith(maps, g("pg", "Public.COUNTRIES")), APIMaps, "pg", "public.countries", nil},
		{"quoted lower equals unquoted", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", `"public"."countries"`, nil},
		{"quoted upper differs", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", `public."Countries"`, ErrNoGrant},
		{"quoted grant needs quoted request", claimsWith(maps, g("pg", `public."Countries"`)), APIMaps, "pg", "public.countries", ErrNoGrant},
		{"quoted grant, same quoted request", claimsWith(maps, g("pg", `public."Countries"`)), APIMaps, "pg", `public."Countries"`, nil},
		{"quoted with escaped quote", claimsWith(maps, g("pg", `s."a""b"`)), APIMaps, "pg", `s."a""b"`, nil},
		{"quoted dot inside", claimsWith(maps, g("pg", `"a.b"`)), APIMaps, "pg", `public."a.b"`, nil},
		{"quoted dot is not a separator", claimsWith(maps, g("pg", `"a.b"`)), APIMaps, "pg", `a.b`, ErrNoGrant},
		{"other table", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", "public.cities", ErrNoGrant},
		{"prefix table name", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", "public.countries2", ErrNoGrant},
		{"other schema", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", "private.countries", ErrNoGrant},
		{"unqualified grant is public only", claimsWith(maps, g("pg", "countries")), APIMaps, "pg", "private.countries", ErrNoGrant},
		{"other connection", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg2", "public.countries", ErrNoGrant},
		{"connection is case-sensitive", claimsWith(maps, g("pg", "public.countries")), APIMaps, "PG", "public.countries", ErrNoGrant},
		{"whole connection", claimsWith(maps, g("pg", "*")), APIMaps, "pg", "any.table", nil},
		{"whole connection, trimmed", claimsWith(maps, g("pg", " * ")), APIMaps, "pg", "x", nil},
		{"whole connection, other connection", claimsWith(maps, g("pg", "*")), APIMaps, "wh", "any.table", ErrNoGrant},
		{"schema wildcard", claimsWith(maps, g("pg", "geo.*")), APIMaps, "pg", "geo.rivers", nil},
		{"schema wildcard folds", claimsWith(maps, g("pg", "GEO.*")), APIMaps, "pg", "geo.Rivers", nil},
		{"schema wildcard other schema", claimsWith(maps, g("pg", "geo.*")), APIMaps, "pg", "geography.rivers", ErrNoGrant},
		{"schema wildcard, unqualified request", claimsWith(maps, g("pg", "geo.*")), APIMaps, "pg", "rivers", ErrNoGrant},
		{"public wildcard, unqualified request", claimsWith(maps, g("pg", "public.*")), APIMaps, "pg", "rivers", nil},
		{"schema wildcard does not cover deeper names", claimsWith(maps, g("pg", "geo.*")), APIMaps, "pg", "db.geo.rivers", ErrNoGrant},
		{"three-part wildcard", claimsWith(maps, g("pg", "db.geo.*")), APIMaps, "pg", "db.geo.rivers", nil},
		{"three-part wildcard, two-part request", claimsWith(maps, g("pg", "db.geo.*")), APIMaps, "pg", "geo.rivers", ErrNoGrant},
		{"three-part exact", claimsWith(maps, g("pg", "proj.ds.table")), APIMaps, "pg", "proj.ds.table", nil},
		{"request for a pattern", claimsWith(maps, g("pg", "geo.*")), APIMaps, "pg", "geo.*", ErrNoGrant},
		{"request for *", claimsWith(maps, g("pg", "*")), APIMaps, "pg", "*", ErrNoGrant},
		{"request with spaces", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", " public.countries", ErrNoGrant},
		{"request is SQL", claimsWith(maps, g("pg", "public.countries")), APIMaps, "pg", "SELECT * FROM public.countries", ErrNoGrant},
		{"empty request", claimsWith(maps, g("pg", "*")), APIMaps, "pg", "", ErrNoGrant},
		{"trailing dot", claimsWith(maps, g("pg", "*")), APIMaps, "pg", "public.", ErrNoGrant},
		{"four parts", claimsWith(maps, g("pg", "*")), APIMaps, "pg", "a.b.c.d", ErrNoGrant},
		{"unterminated quote", claimsWith(maps, g("pg", "*")), APIMaps, "pg", `public."x`, ErrNoGrant},
		{"query grant does not cover tables", claimsWith(maps, g("pg", "SELECT * FROM public.countries")), APIMaps, "pg", "public.countries", ErrNoGrant},
		{"second grant matches", claimsWith(maps, g("pg", "a.b"), g("wh", "public.x"), g("pg", "public.x")), APIMaps, "pg", "x", nil},
		{"api not allowed", claimsWith([]API{APISQL}, g("pg", "*")), APIMaps, "pg", "x", ErrAPINotAllowed},
		{"unknown api", claimsWith([]API{"maps"}, g("pg", "*")), API("tiles"), "pg", "x", ErrAPINotAllowed},
		{"no apis", claimsWith(nil, g("pg", "*")), APIMaps, "pg", "x", ErrAPINotAllowed},
		{"no grants", claimsWith(maps), APIMaps, "pg", "x", ErrNoGrant},
	}
	key := newKey(t)
	v := NewVerifier(keySet(key), nil, VerifierConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.claims.Allow(tt.api, tt.conn, tt.source); !errors.Is(got, tt.want) || (tt.want == nil && got != nil) {
				t.Errorf("Allow(%q, %q, %q) with grants %v = %v, want %v", tt.api, tt.conn, tt.source, tt.claims.Grants, got, tt.want)
			}
			// Same answer from verified (precompiled) claims.
			tt.claims.ID = "t"
			verified, err := v.Verify(sign(t, tt.claims, key), t0)
			if err != nil {
				t.Fatal(err)
			}
			if got := verified.Allow(tt.api, tt.conn, tt.source); !errors.Is(got, tt.want) || (tt.want == nil && got != nil) {
				t.Errorf("verified Allow(%q, %q, %q) = %v, want %v", tt.api, tt.conn, tt.source, got, tt.want)
			}
		})
	}
}

func TestAllowQuery(t *testing.T) {
	const q = "SELECT name, geom FROM public.stores WHERE kind = 'a  b'"
	g := func(conn, src string) Grant { return Grant{Connection: conn, Source: src} }
	sqlOnly := []API{APISQL}
	tests := []struct {
		name   string
		claims *Claims
		api    API
		conn   string
		sql    string
		want   error
	}{
		{"same text", claimsWith(sqlOnly, g("pg", q)), APISQL, "pg", q, nil},
		{"reindented", claimsWith(sqlOnly, g("pg", q)), APISQL, "pg", "\n  SELECT name,\tgeom\n  FROM public.stores\n  WHERE kind = 'a  b';\n", nil},
		{"comment dropped", claimsWith(sqlOnly, g("pg", q)), APISQL, "pg", "SELECT name, geom -- columns\nFROM public.stores /* the /* nested */ table */ WHERE kind = 'a  b'", nil},
		{"whitespace inside literal matters", claimsWith(sqlOnly, g("pg", q)), APISQL, "pg", "SELECT name, geom FROM public.stores WHERE kind = 'a b'", ErrNoGrant},
		{"case matters", claimsWith(sqlOnly, g("pg", q)), APISQL, "pg", strings.ToLower(q), ErrNoGrant},
		{"extra condition", claimsWith(sqlOnly, g("pg", q)), APISQL, "pg", q + " OR true", ErrNoGrant},
		{"line comment hides the rest", claimsWith(sqlOnly, g("pg", "SELECT 1 -- FROM secrets")), APISQL, "pg", "SELECT 1 --\nFROM secrets", ErrNoGrant},
		{"line comment same", claimsWith(sqlOnly, g("pg", "SELECT 1 -- FROM secrets")), APISQL, "pg", "SELECT 1", nil},
		{"other connection", claimsWith(sqlOnly, g("pg", q)), APISQL, "wh", q, ErrNoGrant},
		{"star grant covers queries", claimsWith(sqlOnly, g("pg", "*")), APISQL, "pg", "SELECT * FROM anything", nil},
		{"schema grant does not cover queries", claimsWith(sqlOnly, g("pg", "public.*")), APISQL, "pg", "SELECT * FROM public.stores", ErrNoGrant},
		{"table grant does not cover queries", claimsWith(sqlOnly, g("pg", "public.stores")), APISQL, "pg", "SELECT * FROM public.stores", ErrNoGrant},
		{"empty query", claimsWith(sqlOnly, g("pg", "*")), APISQL, "pg", " ;\n", ErrNoGrant},
		{"api not allowed", claimsWith([]API{APIMaps}, g("pg", q)), APISQL, "pg", q, ErrAPINotAllowed},
		{"long query", claimsWith(sqlOnly, g("pg", "SELECT "+strings.Repeat("a, ", 1000)+"b FROM t")), APISQL, "pg", "SELECT " + strings.Repeat("a,  ", 1000) + "b\nFROM t", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.claims.AllowQuery(tt.api, tt.conn, tt.sql); !errors.Is(got, tt.want) || (tt.want == nil && got != nil) {
				t.Errorf("AllowQuery(%q, %q, %q) = %v, want %v", tt.api, tt.conn, tt.sql, got, tt.want)
			}
		})
	}
}

func TestNormalizeSQL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"  SELECT   1  ", "SELECT 1"},
		{"SELECT 1;", "SELECT 1"},
		{"SELECT 1 ; ; ", "SELECT 1"},
		{"SELECT 1; SELECT 2;", "SELECT 1; SELECT 2"},
		{"SELECT\n\t1\r\nFROM\tt", "SELECT 1 FROM t"},
		{"SELECT 'a  b',  'it''s  ok'", "SELECT 'a  b', 'it''s  ok'"},
		{"SELECT ';'", "SELECT ';'"},
		{`SELECT E'a\'  b',  x`, `SELECT E'a\'  b', x`},
		{`SELECT 'a\'  , x`, `SELECT 'a\' , x`}, // standard strings: backslash is literal, quote closes
		{`SELECT "My  Col"  FROM t`, `SELECT "My  Col" FROM t`},
		{"SELECT $$a  b$$,  $tag$ x  $$ y $tag$  , $1", "SELECT $$a  b$$, $tag$ x  $$ y $tag$ , $1"},
		{"SELECT a$b  FROM t", "SELECT a$b FROM t"},
		{"SELECT 1 -- comment\n  FROM t", "SELECT 1 FROM t"},
		{"SELECT 1 -- comment", "SELECT 1"},
		{"SELECT 1 /* a /* b */ c */ FROM t", "SELECT 1 FROM t"},
		{"SELECT a/**/b", "SELECT a b"},
		{"SELECT '--not a comment'  ,x", "SELECT '--not a comment' ,x"},
		{"SELECT 1 /* unterminated  ", "SELECT 1 /* unterminated  "},
		{"SELECT 'unterminated  ", "SELECT 'unterminated  "},
		{"SELECT 1 -\n- 2", "SELECT 1 - - 2"},
	}
	for _, tt := range tests {
		if got := string(normalizeSQL(nil, tt.in)); got != tt.want {
			t.Errorf("normalizeSQL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckReferer(t *testing.T) {
	tests := []struct {
		name     string
		referers []string
		header   string
		want     error
	}{
		{"no restriction", nil, "", nil},
		{"no restriction, any header", nil, "https://evil.example", nil},
		{"origin match", []string{"https://app.example.com"}, "https://app.example.com", nil},
		{"referer with path", []string{"https://app.example.com"}, "https://app.example.com/maps/1?x=y", nil},
		{"entry with path ignores it", []string{"https://app.example.com/app/"}, "https://app.example.com", nil},
		{"case-insensitive", []string{"https://App.Example.com"}, "HTTPS://app.EXAMPLE.com/", nil},
		{"other host", []string{"https://app.example.com"}, "https://evil.example.com", ErrReferer},
		{"suffix is not a match", []string{"https://app.example.com"}, "https://app.example.com.evil.net", ErrReferer},
		{"userinfo trick", []string{"https://app.example.com"}, "https://app.example.com@evil.net/", ErrReferer},
		{"other scheme", []string{"https://app.example.com"}, "http://app.example.com", ErrReferer},
		{"other port", []string{"https://app.example.com"}, "https://app.example.com:8443", ErrReferer},
		{"port match", []string{"http://localhost:3000"}, "http://localhost:3000", nil},
		{"schemeless entry, https", []string{"app.example.com"}, "https://app.example.com", nil},
		{"schemeless entry, http", []string{"app.example.com"}, "http://app.example.com/x", nil},
		{"schemeless entry, other scheme", []string{"app.example.com"}, "ftp://app.example.com", ErrReferer},
		{"wildcard subdomain", []string{"https://*.example.com"}, "https://a.b.example.com", nil},
		{"wildcard excludes apex", []string{"https://*.example.com"}, "https://example.com", ErrReferer},
		{"wildcard is not a suffix of a label", []string{"*.example.com"}, "https://badexample.com", ErrReferer},
		{"schemeless wildcard", []string{"*.example.com"}, "http://x.example.com", nil},
		{"star", []string{"*"}, "https://anything.net", nil},
		{"scheme star", []string{"https://*"}, "https://anything.net", nil},
		{"scheme star, other scheme", []string{"https://*"}, "http://anything.net", ErrReferer},
		{"second entry", []string{"https://a.com", "https://b.com"}, "https://b.com", nil},
		{"missing header", []string{"https://app.example.com"}, "", ErrReferer},
		{"null origin", []string{"https://app.example.com"}, "null", ErrReferer},
		{"bad entries match nothing", []string{"https://exa*mple.com", "@@"}, "https://example.com", ErrReferer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Claims{ID: "t", Referers: tt.referers}
			if got := c.CheckReferer(tt.header); !errors.Is(got, tt.want) || (tt.want == nil && got != nil) {
				t.Errorf("CheckReferer(%q) with referers %q = %v, want %v", tt.header, tt.referers, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func() *Claims {
		return &Claims{
			ID: "t1", IssuedAt: 100, ExpiresAt: 200,
			Grants:   []Grant{{"pg", "public.x"}, {"pg", "geo.*"}, {"wh-1", "*"}, {"pg", "SELECT 1"}},
			APIs:     []API{APIMaps, APISQL, APIImports, APILDS},
			Referers: []string{"https://a.com", "*.b.com"},
		}
	}
	tests := []struct {
		name    string
		mod     func(c *Claims)
		wantErr string
	}{
		{"valid", func(*Claims) {}, ""},
		{"never expires", func(c *Claims) { c.ExpiresAt = 0 }, ""},
		{"no jti", func(c *Claims) { c.ID = "" }, "missing token ID"},
		{"no grants", func(c *Claims) { c.Grants = nil }, "at least one grant"},
		{"bad connection", func(c *Claims) { c.Grants[0].Connection = "bad name" }, "connection name"},
		{"connection starts with dash", func(c *Claims) { c.Grants[0].Connection = "-pg" }, "connection name"},
		{"empty source", func(c *Claims) { c.Grants[0].Source = "  " }, "empty source"},
		{"bad pattern", func(c *Claims) { c.Grants[0].Source = "pub*.x" }, "neither a table"},
		{"four-part name", func(c *Claims) { c.Grants[0].Source = "a.b.c.d" }, "neither a table"},
		{"no apis", func(c *Claims) { c.APIs = nil }, "at least one API"},
		{"unknown api", func(c *Claims) { c.APIs = []API{"tiles"} }, `unknown API "tiles"`},
		{"bad referer", func(c *Claims) { c.Referers = []string{"https://a b"} }, "referer"},
		{"exp before iat", func(c *Claims) { c.ExpiresAt = 50 }, "exp must be after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.mod(c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidClaims) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate = %v, want ErrInvalidClaims mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidConnectionName(t *testing.T) {
	for name, want := range map[string]bool{
		"pg": true, "carto_dw": true, "a-b_c9": true, "9lives": true, strings.Repeat("a", 63): true,
		"": false, "_pg": false, "-pg": false, "a b": false, "a.b": false, "é": false, strings.Repeat("a", 64): false,
	} {
		if got := ValidConnectionName(name); got != want {
			t.Errorf("ValidConnectionName(%q) = %v, want %v", name, got, want)
		}
	}
}
