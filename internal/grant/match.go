package grant

import "strings"

// Matching rules (the tiles issue may extend the query rule):
//
// A grant's source is classified once:
//   - "*" covers the whole connection: every table and every query;
//   - a qualified name ending in ".*" ("schema.*", "db.schema.*") covers
//     every table directly in that schema;
//   - a qualified name of 1 to 3 parts ("table", "schema.table",
//     "db.schema.table") covers that table;
//   - anything else is SQL query text.
//
// Names follow PostgreSQL's rules: unquoted parts fold to lower case
// (ASCII), "quoted" parts keep their case and may contain "" for a quote,
// so "public.Countries", "PUBLIC.countries" and `"public"."countries"`
// are the same table and `"Countries"` is another one. A one-part name
// means schema public ("countries" = "public.countries", also for a
// grant), as with the default search_path. Three-part names are compared
// as written (no database-name folding).
//
// A query is covered by "*" or by a query grant whose text is equal after
// normalizeSQL (whitespace runs and comments outside literals become one
// space, leading/trailing whitespace and trailing semicolons dropped).
// Table and schema grants never cover a query: deciding which tables a
// query reads needs a SQL parser.

type sourceKind uint8

const (
	kindQuery  sourceKind = iota // SQL text
	kindAll                      // "*"
	kindTable                    // one table
	kindPrefix                   // every table of a schema: "schema.*"
)

type identPart struct {
	s      string // for a quoted part: the text between the quotes, "" escapes kept
	quoted bool
}

// qualName is a parsed 1–3 part name; for a pattern, the prefix before ".*".
type qualName struct {
	parts [3]identPart
	n     int
}

var publicSchema = identPart{s: "public"}

type preparedGrant struct {
	conn  string
	kind  sourceKind
	name  qualName // kindTable (canonical) and kindPrefix
	query string   // kindQuery: normalized text
}

// prepared is the claims compiled for fast matching.
type prepared struct {
	apis           uint8
	grants         []preparedGrant
	referers       []refererPattern
	restrictOrigin bool // Referers was not empty
}

func compile(c *Claims) *prepared {
	p := &prepared{grants: make([]preparedGrant, 0, len(c.Grants))}
	for _, a := range c.APIs {
		p.apis |= apiBit(a)
	}
	for _, g := range c.Grants {
		pg := preparedGrant{conn: g.Connection}
		src := strings.TrimSpace(g.Source)
		pg.kind, pg.name = classify(src)
		if pg.kind == kindQuery {
			pg.query = string(normalizeSQL(nil, src))
			if pg.query == "" {
				continue // an empty grant covers nothing
			}
		}
		p.grants = append(p.grants, pg)
	}
	p.restrictOrigin = len(c.Referers) > 0
	for _, r := range c.Referers {
		if rp, ok := parseRefererPattern(r); ok {
			p.referers = append(p.referers, rp) // bad entries match nothing
		}
	}
	return p
}

// prepared returns the compiled claims: cached for verified claims,
// compiled on the fly (allocating) for claims built by hand.
func (c *Claims) prepared() *prepared {
	if c.prep != nil {
		return c.prep
	}
	return compile(c)
}

func classify(src string) (sourceKind, qualName) {
	if src == "*" {
		return kindAll, qualName{}
	}
	qn, wild, ok := parseName(src)
	switch {
	case !ok:
		return kindQuery, qualName{}
	case wild:
		return kindPrefix, qn
	default:
		return kindTable, qn.canonical()
	}
}

// HasAPI reports whether the claims allow api.
func (c *Claims) HasAPI(api API) bool {
	b := apiBit(api)
	return b != 0 && c.prepared().apis&b != 0
}

// Allow reports whether the claims allow reading table source on
// connection through api: nil, ErrAPINotAllowed or ErrNoGrant (returned
// unwrapped; no allocation for verified claims). source is a table name
// as a client sends it ("countries", "public.countries", `"My"."Tab"`);
// a pattern or anything that is not a name is refused with ErrNoGrant.
func (c *Claims) Allow(api API, connection, source string) error {
	p := c.prepared()
	if b := apiBit(api); b == 0 || p.apis&b == 0 {
		return ErrAPINotAllowed
	}
	r, wild, ok := parseName(source)
	if !ok || wild {
		return ErrNoGrant
	}
	r = r.canonical()
	for i := range p.grants {
		g := &p.grants[i]
		if g.conn != connection {
			continue
		}
		switch g.kind {
		case kindAll:
			return nil
		case kindTable:
			if g.name.n == r.n && prefixEqual(&g.name, &r, r.n) {
				return nil
			}
		case kindPrefix:
			if r.n == g.name.n+1 && prefixEqual(&g.name, &r, g.name.n) {
				return nil
			}
		}
	}
	return ErrNoGrant
}

// AllowQuery reports whether the claims allow running the SQL query text
// sql on connection through api: nil, ErrAPINotAllowed or ErrNoGrant. It
// is allowed by a "*" grant on the connection or by a granted query with
// the same normalized text. It does not allocate for verified claims and
// queries up to 2 KiB.
func (c *Claims) AllowQuery(api API, connection, sql string) error {
	p := c.prepared()
	if b := apiBit(api); b == 0 || p.apis&b == 0 {
		return ErrAPINotAllowed
	}
	var buf [2048]byte
	norm := normalizeSQL(buf[:0], sql)
	if len(norm) == 0 {
		return ErrNoGrant
	}
	for i := range p.grants {
		g := &p.grants[i]
		if g.conn != connection {
			continue
		}
		if g.kind == kindAll || g.kind == kindQuery && g.query == string(norm) {
			return nil
		}
	}
	return ErrNoGrant
}

// AllowConnection reports whether the claims cover everything on
// connection for api: a "*" grant, which also covers any query. Responses
// computed from a client's query are served from a cache only on this.
func (c *Claims) AllowConnection(api API, connection string) error {
	p := c.prepared()
	if b := apiBit(api); b == 0 || p.apis&b == 0 {
		return ErrAPINotAllowed
	}
	for i := range p.grants {
		if g := &p.grants[i]; g.conn == connection && g.kind == kindAll {
			return nil
		}
	}
	return ErrNoGrant
}

// canonical gives a one-part name its implicit schema, public.
func (q qualName) canonical() qualName {
	if q.n == 1 {
		q.parts[1] = q.parts[0]
		q.parts[0] = publicSchema
		q.n = 2
	}
	return q
}

func prefixEqual(a, b *qualName, n int) bool {
	for i := 0; i < n; i++ {
		if !identEqual(a.parts[i], b.parts[i]) {
			return false
		}
	}
	return true
}

// parseName parses a 1–3 part qualified name, or a 1–2 part prefix
// followed by ".*" (wild), or a lone "*" (wild with n == 0). It does not
// allocate.
func parseName(s string) (q qualName, wild bool, ok bool) {
	if s == "" {
		return q, false, false
	}
	i := 0
	for {
		if s[i] == '*' {
			if i+1 != len(s) || q.n > 2 {
				return q, false, false
			}
			return q, true, true
		}
		if q.n == 3 {
			return q, false, false
		}
		var part identPart
		if s[i] == '"' {
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], '"')
				if k < 0 {
					return q, false, false // unterminated
				}
				j += k
				if j+1 < len(s) && s[j+1] == '"' {
					j += 2 // "" escape
					continue
				}
				break
			}
			if j == i+1 {
				return q, false, false // "" is not a name
			}
			part = identPart{s: s[i+1 : j], quoted: true}
			i = j + 1
		} else {
			if !identStart(s[i]) {
				return q, false, false
			}
			j := i + 1
			for j < len(s) && identChar(s[j]) {
				j++
			}
			part = identPart{s: s[i:j]}
			i = j
		}
		q.parts[q.n] = part
		q.n++
		if i == len(s) {
			return q, false, true
		}
		if s[i] != '.' || i+1 == len(s) {
			return q, false, false
		}
		i++
	}
}

func identStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80
}

func identChar(c byte) bool {
	return identStart(c) || '0' <= c && c <= '9' || c == '$'
}

// identEqual compares two name parts as PostgreSQL resolves them.
func identEqual(a, b identPart) bool {
	switch {
	case !a.quoted && !b.quoted:
		return asciiEqualFold(a.s, b.s)
	case a.quoted && b.quoted:
		return a.s == b.s
	}
	ra, rb := identReader{p: a}, identReader{p: b}
	for {
		ca, oka := ra.next()
		cb, okb := rb.next()
		if oka != okb || ca != cb {
			return false
		}
		if !oka {
			return true
		}
	}
}

// identReader yields the bytes of a name part as PostgreSQL stores it:
// unquoted folded to lower case, quoted with "" unescaped.
type identReader struct {
	p identPart
	i int
}

func (r *identReader) next() (byte, bool) {
	if r.i >= len(r.p.s) {
		return 0, false
	}
	c := r.p.s[r.i]
	r.i++
	if r.p.quoted {
		if c == '"' {
			r.i++ // skip the second quote of ""
		}
		return c, true
	}
	return lower(c), true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// normalizeSQL appends to dst the query text with every run of whitespace
// and comments outside string literals, quoted identifiers and
// dollar-quoted strings replaced by one space, without leading or
// trailing whitespace and trailing semicolons. Literals are copied
// verbatim, so 'a  b' stays distinct from 'a b'; comments are dropped, so
// "SELECT 1 -- x FROM t" (one line) and "SELECT 1 -- x\nFROM t" differ.
// It assumes standard_conforming_strings (the default since PostgreSQL
// 9.1): backslashes escape only in E” strings. An unterminated literal
// or comment is copied verbatim to the end.
func normalizeSQL(dst []byte, s string) []byte {
	start := len(dst)
	keep := start // dst length without trailing semicolons
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isSQLSpace(c):
			space = true
			i++
			continue
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			j := strings.IndexAny(s[i:], "\n\r")
			if j < 0 {
				i = len(s)
			} else {
				i += j
			}
			space = true
			continue
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			if j := endBlockComment(s, i); j > 0 {
				i = j
				space = true
				continue
			}
			// unterminated: copied verbatim below
		}
		if space && len(dst) > start {
			dst = append(dst, ' ')
		}
		space = false
		j := i + 1
		switch {
		case c == '\'':
			j = endString(s, i, isEString(s, i))
		case c == '"':
			j = endString(s, i, false)
		case c == '$' && (i == 0 || !identChar(s[i-1])):
			if tag := dollarTag(s, i); tag != "" {
				k := strings.Index(s[i+len(tag):], tag)
				if k < 0 {
					j = len(s)
				} else {
					j = i + len(tag) + k + len(tag)
				}
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			j = len(s) // unterminated comment
		}
		dst = append(dst, s[i:j]...)
		if j > i+1 || c != ';' {
			keep = len(dst)
		}
		i = j
	}
	return dst[:keep]
}

func isSQLSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// endString returns the index after the quoted token starting at s[i]
// (quote char s[i], doubled to escape; with backslash escapes when esc),
// or len(s) when unterminated.
func endString(s string, i int, esc bool) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if esc {
				j++
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// isEString reports whether the quote at s[i] opens an E” string.
func isEString(s string, i int) bool {
	return i > 0 && (s[i-1] == 'e' || s[i-1] == 'E') && (i == 1 || !identChar(s[i-2]))
}

// dollarTag returns the dollar-quote opening at s[i] ("$$" or "$tag$"),
// or "" if s[i] does not open one (e.g. a $1 parameter).
func dollarTag(s string, i int) string {
	j := i + 1
	if j < len(s) && s[j] == '$' {
		return s[i : j+1]
	}
	if j >= len(s) || !identStart(s[j]) {
		return ""
	}
	for j < len(s) && identChar(s[j]) && s[j] != '$' {
		j++
	}
	if j < len(s) && s[j] == '$' {
		return s[i : j+1]
	}
	return ""
}

// endBlockComment returns the index after the (nested) /* */ comment
// starting at s[i], or 0 when it is unterminated.
func endBlockComment(s string, i int) int {
	depth := 0
	for j := i; j+1 < len(s); {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j += 2
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j
			}
		default:
			j++
		}
	}
	return 0
}
