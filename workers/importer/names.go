package importer

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// maxIdent is PostgreSQL's identifier length limit (NAMEDATALEN-1 bytes).
const maxIdent = 63

var tableNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// tableName is a validated destination.
type tableName struct {
	Schema, Name string
}

func (t tableName) String() string { return t.Schema + "." + t.Name }

// Sanitized returns the quoted, schema-qualified name for SQL.
func (t tableName) Sanitized() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// sibling returns a quoted name in the same schema.
func (t tableName) sibling(name string) string { return pgx.Identifier{t.Schema, name}.Sanitize() }

// parseTableName validates "schema.table" or "table" (schema public).
// Names are folded to lower case and must be plain identifiers, so that
// they need no quoting in user SQL; "_mi_" (staging) and "pg_" prefixes
// are reserved.
func parseTableName(s string) (tableName, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	schema, name := "public", s
	if i := strings.IndexByte(s, '.'); i >= 0 {
		schema, name = s[:i], s[i+1:]
	}
	for _, part := range []string{schema, name} {
		if !tableNameRE.MatchString(part) || len(part) > maxIdent {
			return tableName{}, fmt.Errorf("%w: table %q: names are letters, digits and _ (not starting with a digit), at most 63 bytes", ErrInvalidOptions, s)
		}
	}
	if strings.HasPrefix(name, "_mi_") || strings.HasPrefix(name, "pg_") || strings.HasPrefix(schema, "pg_") {
		return tableName{}, fmt.Errorf("%w: table %q: the _mi_ and pg_ prefixes are reserved", ErrInvalidOptions, s)
	}
	return tableName{Schema: schema, Name: name}, nil
}

// launderer turns source field names into unique column names: lower
// case, letters (any script) and digits kept, everything else "_", at
// most 63 bytes; duplicates and reserved names get a "_2", "_3"… suffix.
type launderer struct {
	used map[string]bool
}

func newLaunderer(reserved ...string) *launderer {
	l := &launderer{used: map[string]bool{}}
	for _, r := range reserved {
		l.used[r] = true
	}
	return l
}

func launderBase(s string, fallback string) string {
	var b strings.Builder
	lastUnderscore := false
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
			lastUnderscore = false
			continue
		}
		if !lastUnderscore {
			b.WriteByte('_')
			lastUnderscore = true
		}
	}
	out := strings.Trim(b.String(), "_")
	if strings.HasPrefix(s, "_") && out != "" {
		out = "_" + out
	}
	if out == "" {
		out = fallback
	}
	return truncateIdent(out, maxIdent)
}

// truncateIdent cuts s to at most n bytes at a rune boundary.
func truncateIdent(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// name returns the unique column name for source field src (the i-th).
func (l *launderer) name(src string, i int) string {
	base := launderBase(src, "column_"+strconv.Itoa(i+1))
	out := base
	for k := 2; l.used[out]; k++ {
		suffix := "_" + strconv.Itoa(k)
		out = truncateIdent(base, maxIdent-len(suffix)) + suffix
	}
	l.used[out] = true
	return out
}

// pgTypes maps the type names accepted in TypeHints to canonical
// PostgreSQL spellings.
var pgTypes = map[string]string{
	"text": "text", "varchar": "text", "string": "text", "character varying": "text",
	"bigint": "bigint", "int8": "bigint", "integer": "integer", "int": "integer", "int4": "integer",
	"smallint": "smallint", "int2": "smallint",
	"double precision": "double precision", "float8": "double precision", "double": "double precision", "float": "double precision",
	"real": "real", "float4": "real",
	"numeric": "numeric", "decimal": "numeric", "number": "numeric",
	"boolean": "boolean", "bool": "boolean",
	"date":      "date",
	"timestamp": "timestamp", "timestamp without time zone": "timestamp",
	"timestamptz": "timestamptz", "timestamp with time zone": "timestamptz",
	"jsonb": "jsonb", "json": "jsonb",
	"uuid": "uuid",
}

func canonicalType(s string) (string, bool) {
	t, ok := pgTypes[strings.ToLower(strings.Join(strings.Fields(s), " "))]
	return t, ok
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }
