// Package aggexp parses CARTO's aggregationExp ("sum(pop) AS total,
// count(*) AS n") into SQL that is safe to put in a statement: the text is
// parsed with a small grammar and re-rendered, never copied. Only
// arithmetic, numeric literals, the source's own columns (inside an
// aggregate) and a short list of functions are accepted, so an expression
// cannot read another table or call an arbitrary function.
//
//	list    := item {"," item}
//	item    := expr ["AS"] alias
//	expr    := term {("+" | "-") term}
//	term    := unary {("*" | "/") unary}
//	unary   := ["-"] primary
//	primary := number | column | call | "(" expr ")"
//	call    := name "(" ["DISTINCT"] (expr {"," expr} | "*") ")"
package aggexp

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
)

// ErrInvalid is returned for expressions outside the grammar.
var ErrInvalid = clienterr.Kind("aggexp", "invalid aggregation expression")

// MaxLen bounds the expression text.
const MaxLen = 4096

type kind int

const (
	kNum kind = iota
	kInt
	kText
	kBool
	kAny
)

// aggregates and their result kind (kAny: the argument's kind).
var aggregates = map[string]kind{
	"count": kInt, "sum": kNum, "avg": kNum, "min": kAny, "max": kAny,
	"stddev": kNum, "stddev_pop": kNum, "stddev_samp": kNum,
	"variance": kNum, "var_pop": kNum, "var_samp": kNum,
	"bool_and": kBool, "bool_or": kBool,
}

// scalar functions allowed around aggregates.
var scalars = map[string]kind{
	"coalesce": kAny, "round": kNum, "abs": kNum, "nullif": kAny, "greatest": kAny, "least": kAny,
	"ceil": kNum, "floor": kNum, "sqrt": kNum, "ln": kNum, "log": kNum, "exp": kNum, "power": kNum,
}

// Item is one parsed expression.
type Item struct {
	// Agg is the expression as safe SQL over row alias g, and its alias.
	Agg mvt.AggExpr
	// Type is the output's CARTO type.
	Type catalog.Type
}

// Parse parses expr against the source's columns.
func Parse(expr string, lookup func(string) (catalog.Column, bool)) ([]Item, error) {
	if len(expr) > MaxLen {
		return nil, clienterr.Errorf(ErrInvalid, ": longer than %d bytes", MaxLen)
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, lookup: lookup}
	var items []Item
	seen := map[string]bool{}
	for {
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if n.bare {
			return nil, clienterr.Errorf(ErrInvalid, ": column %s must be inside an aggregate such as sum() or min()", n.col)
		}
		if p.peekWord("as") {
			p.pos++
		}
		t := p.next()
		if t.typ != tIdent && t.typ != tQuoted {
			return nil, clienterr.Errorf(ErrInvalid, ": want an alias after the expression, got %q", t.text)
		}
		alias := t.text // case kept as written: JavaScript clients read it verbatim
		if alias == "" || strings.HasPrefix(alias, "__m") || alias == mvt.DensityProp || seen[alias] {
			return nil, clienterr.Errorf(ErrInvalid, ": alias %q is reserved or repeated", alias)
		}
		seen[alias] = true
		sql, typ := n.sql, catalog.TypeUnknown
		switch n.kind {
		case kNum:
			sql, typ = "("+sql+")::float8", catalog.TypeNumber
		case kInt:
			sql, typ = "("+sql+")::int8", catalog.TypeNumber
		case kBool:
			typ = catalog.TypeBoolean
		case kText, kAny:
			sql, typ = "("+sql+")::text", catalog.TypeString
		}
		items = append(items, Item{Agg: mvt.AggExpr{SQL: sql, Alias: alias}, Type: typ})
		t = p.next()
		if t.typ == tEOF {
			return items, nil
		}
		if t.text != "," {
			return nil, clienterr.Errorf(ErrInvalid, ": unexpected %q", t.text)
		}
	}
}

type tokType int

const (
	tEOF tokType = iota
	tIdent
	tQuoted
	tNumber
	tPunct
)

type token struct {
	typ  tokType
	text string
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			out = append(out, token{tIdent, s[i:j]})
			i = j
		case c == '"':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, clienterr.Errorf(ErrInvalid, ": unterminated quoted name")
				}
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			out = append(out, token{tQuoted, b.String()})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				(s[j] == '-' || s[j] == '+') && j > i && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			if _, err := strconv.ParseFloat(s[i:j], 64); err != nil {
				return nil, clienterr.Errorf(ErrInvalid, ": bad number %q", s[i:j])
			}
			out = append(out, token{tNumber, s[i:j]})
			i = j
		case strings.IndexByte("(),*+-/", c) >= 0:
			out = append(out, token{tPunct, string(c)})
			i++
		default:
			return nil, clienterr.Errorf(ErrInvalid, ": unexpected character %q", c)
		}
	}
	return out, nil
}

type parser struct {
	toks   []token
	pos    int
	lookup func(string) (catalog.Column, bool)
	inAgg  bool
	depth  int
}

type node struct {
	sql  string
	kind kind
	bare bool   // a column reference outside any aggregate
	col  string // for error messages
}

func (p *parser) next() token {
	if p.pos >= len(p.toks) {
		return token{typ: tEOF}
	}
	t := p.toks[p.pos]
	p.pos++
	return t
}

func (p *parser) peek() token {
	if p.pos >= len(p.toks) {
		return token{typ: tEOF}
	}
	return p.toks[p.pos]
}

func (p *parser) peekWord(w string) bool {
	t := p.peek()
	return t.typ == tIdent && strings.EqualFold(t.text, w)
}

func (p *parser) expr() (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 32 {
		return node{}, clienterr.Errorf(ErrInvalid, ": nested too deeply")
	}
	l, err := p.term()
	if err != nil {
		return node{}, err
	}
	for t := p.peek(); t.typ == tPunct && (t.text == "+" || t.text == "-"); t = p.peek() {
		p.pos++
		r, err := p.term()
		if err != nil {
			return node{}, err
		}
		l = node{sql: l.sql + " " + t.text + " " + r.sql, kind: kNum, bare: l.bare || r.bare, col: l.col + r.col}
	}
	return l, nil
}

func (p *parser) term() (node, error) {
	l, err := p.unary()
	if err != nil {
		return node{}, err
	}
	for t := p.peek(); t.typ == tPunct && (t.text == "*" || t.text == "/"); t = p.peek() {
		p.pos++
		r, err := p.unary()
		if err != nil {
			return node{}, err
		}
		op := t.text
		rs := r.sql
		if op == "/" {
			rs = "nullif(" + rs + ", 0)::float8" // no division-by-zero errors, no integer division
		}
		l = node{sql: l.sql + " " + op + " " + rs, kind: kNum, bare: l.bare || r.bare, col: l.col + r.col}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	if t := p.peek(); t.typ == tPunct && t.text == "-" {
		p.pos++
		n, err := p.primary()
		if err != nil {
			return node{}, err
		}
		return node{sql: "-" + n.sql, kind: kNum, bare: n.bare, col: n.col}, nil
	}
	return p.primary()
}

func (p *parser) primary() (node, error) {
	t := p.next()
	switch t.typ {
	case tNumber:
		return node{sql: t.text, kind: kNum}, nil
	case tPunct:
		if t.text != "(" {
			return node{}, clienterr.Errorf(ErrInvalid, ": unexpected %q", t.text)
		}
		n, err := p.expr()
		if err != nil {
			return node{}, err
		}
		if c := p.next(); c.text != ")" {
			return node{}, clienterr.Errorf(ErrInvalid, ": missing )")
		}
		n.sql = "(" + n.sql + ")"
		return n, nil
	case tIdent, tQuoted:
		if t.typ == tIdent {
			if nt := p.peek(); nt.typ == tPunct && nt.text == "(" {
				return p.call(strings.ToLower(t.text))
			}
		}
		col, ok := p.lookup(t.text)
		if !ok && t.typ == tIdent {
			col, ok = p.lookup(strings.ToLower(t.text))
		}
		if !ok {
			return node{}, clienterr.Errorf(catalog.ErrUnknownColumn, " %q in aggregationExp", t.text)
		}
		if col.Type == catalog.TypeGeometry {
			return node{}, clienterr.Errorf(ErrInvalid, ": geometry column %q", col.Name)
		}
		k := kText
		switch col.Type {
		case catalog.TypeNumber, catalog.TypeBigint:
			k = kNum
		case catalog.TypeBoolean:
			k = kBool
		}
		return node{sql: "g." + pgx.Identifier{col.Name}.Sanitize(), kind: k, bare: !p.inAgg, col: col.Name}, nil
	}
	return node{}, clienterr.Errorf(ErrInvalid, ": unexpected end of expression")
}

func (p *parser) call(name string) (node, error) {
	p.pos++ // "("
	aggKind, isAgg := aggregates[name]
	scalarKind, isScalar := scalars[name]
	if !isAgg && !isScalar {
		return node{}, clienterr.Errorf(ErrInvalid, ": function %s is not allowed", name)
	}
	if isAgg && p.inAgg {
		return node{}, clienterr.Errorf(ErrInvalid, ": nested aggregate %s", name)
	}
	outer := p.inAgg
	if isAgg {
		p.inAgg = true
	}
	defer func() { p.inAgg = outer }()
	var b strings.Builder
	b.WriteString(name + "(")
	if isAgg && p.peekWord("distinct") {
		p.pos++
		b.WriteString("DISTINCT ")
	}
	var args []node
	if t := p.peek(); t.typ == tPunct && t.text == "*" {
		if name != "count" {
			return node{}, clienterr.Errorf(ErrInvalid, ": %s(*)", name)
		}
		p.pos++
		b.WriteString("*")
	} else {
		for {
			n, err := p.expr()
			if err != nil {
				return node{}, err
			}
			args = append(args, n)
			if len(args) > 1 {
				b.WriteString(", ")
			}
			b.WriteString(n.sql)
			if t := p.peek(); t.typ == tPunct && t.text == "," && (isScalar || len(args) == 0) {
				p.pos++
				continue
			}
			break
		}
	}
	if t := p.next(); t.text != ")" {
		return node{}, clienterr.Errorf(ErrInvalid, ": missing ) after %s(", name)
	}
	b.WriteString(")")
	k := aggKind
	if isScalar {
		k = scalarKind
	}
	n := node{sql: b.String(), kind: k}
	if k == kAny {
		n.kind = kText
		if len(args) > 0 {
			n.kind = args[0].kind
		}
	}
	for _, a := range args {
		if a.bare {
			n.bare, n.col = true, a.col
		}
	}
	return n, nil
}
