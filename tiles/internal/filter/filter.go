// Package filter turns CARTO filters (CARTO_API.md §2.7) into a SQL
// boolean expression with bound parameters:
//
//	{"<column>": {"in": {"values": [...]}, "between": {"values": [[lo, hi]]},
//	              "closed_open": {...}, "time": {...}, "stringSearch": {...}}}
//
// Column names are checked against the source's columns and written as
// sanitized identifiers; every value travels as a parameter. Filter types
// on one column and columns are ANDed (or ORed across columns when asked,
// as widgets do with filtersLogicalOperator=or); the values of one filter
// are ORed. "owner" is client bookkeeping and is ignored.
package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
)

// Errors returned by Parse and SQL.
var (
	// ErrInvalid: the filters are not well-formed.
	ErrInvalid = clienterr.Kind("filter", "invalid filters")
	// ErrUnknownColumn: a filter names a column the source does not have.
	ErrUnknownColumn = catalog.ErrUnknownColumn
)

// Filter types.
const (
	OpIn           = "in"
	OpBetween      = "between"
	OpClosedOpen   = "closed_open"
	OpTime         = "time"
	OpStringSearch = "stringSearch"
)

// SearchParams tune a stringSearch filter.
type SearchParams struct {
	UseRegExp             bool `json:"useRegExp,omitempty"`
	MustStart             bool `json:"mustStart,omitempty"`
	MustEnd               bool `json:"mustEnd,omitempty"`
	CaseSensitive         bool `json:"caseSensitive,omitempty"`
	KeepSpecialCharacters bool `json:"keepSpecialCharacters,omitempty"`
}

// Filter is one filter on one column.
type Filter struct {
	Values []json.RawMessage `json:"values"`
	Params *SearchParams     `json:"params,omitempty"`
}

// Filters maps column → filter type → filter.
type Filters map[string]map[string]Filter

// Parse reads filters from raw JSON: an object, or a JSON string holding
// one (GET encoding). Empty, "", null and "null" give nil filters.
func Parse(raw []byte) (Filters, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, clienterr.Errorf(ErrInvalid, ": %v", err)
		}
		return Parse([]byte(s))
	}
	var in map[string]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, clienterr.Errorf(ErrInvalid, ": want an object of columns: %v", err)
	}
	out := Filters{}
	for col, ops := range in {
		for op, body := range ops {
			switch op {
			case OpIn, OpBetween, OpClosedOpen, OpTime, OpStringSearch:
			default:
				return nil, clienterr.Errorf(ErrInvalid, ": unknown filter type %q on column %q", op, col)
			}
			var f Filter
			if err := json.Unmarshal(body, &f); err != nil {
				return nil, clienterr.Errorf(ErrInvalid, ": %s filter on %q: %v", op, col, err)
			}
			if len(f.Values) == 0 {
				continue
			}
			if op != OpStringSearch {
				f.Params = nil
			}
			if out[col] == nil {
				out[col] = map[string]Filter{}
			}
			out[col][op] = f
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Canonical returns f as compact JSON with sorted keys and without owner
// fields, so that equal filters encode equally.
func (f Filters) Canonical() []byte {
	if len(f) == 0 {
		return nil
	}
	b, _ := json.Marshal(f) // maps marshal with sorted keys
	return b
}

// Columns returns the filtered columns, sorted.
func (f Filters) Columns() []string {
	out := make([]string, 0, len(f))
	for c := range f {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Lookup finds a source column by name.
type Lookup func(name string) (catalog.Column, bool)

// SQL renders f over row alias alias. Placeholders start at $argStart+1;
// args holds their values. or combines columns with OR instead of AND.
func (f Filters) SQL(alias string, lookup Lookup, argStart int, or bool) (sql string, args []any, err error) {
	if len(f) == 0 {
		return "", nil, nil
	}
	r := renderer{next: argStart}
	var parts []string
	for _, name := range f.Columns() {
		col, ok := lookup(name)
		if !ok {
			return "", nil, clienterr.Errorf(ErrUnknownColumn, " %q in filters", name)
		}
		c := alias + "." + pgx.Identifier{col.Name}.Sanitize()
		ops := f[name]
		opNames := make([]string, 0, len(ops))
		for op := range ops {
			opNames = append(opNames, op)
		}
		slices.Sort(opNames)
		for _, op := range opNames {
			s, err := r.filter(c, col, op, ops[op])
			if err != nil {
				return "", nil, fmt.Errorf("%s filter on %q: %w", op, name, err)
			}
			parts = append(parts, s)
		}
	}
	sep := " AND "
	if or {
		sep = " OR "
	}
	return strings.Join(parts, sep), r.args, nil
}

type renderer struct {
	next int
	args []any
}

func (r *renderer) bind(v any) string {
	r.args = append(r.args, v)
	r.next++
	return "$" + strconv.Itoa(r.next)
}

func (r *renderer) filter(c string, col catalog.Column, op string, f Filter) (string, error) {
	switch op {
	case OpIn:
		return r.in(c, col, f.Values)
	case OpBetween, OpClosedOpen, OpTime:
		return r.ranges(c, col, op, f.Values)
	case OpStringSearch:
		p := SearchParams{}
		if f.Params != nil {
			p = *f.Params
		}
		return r.search(c, f.Values, p)
	}
	return "", clienterr.Errorf(ErrInvalid, ": unknown filter type %q", op)
}

// in: c ∈ values; a null among the values matches NULL.
func (r *renderer) in(c string, col catalog.Column, values []json.RawMessage) (string, error) {
	var nulls bool
	var nums []float64
	var strs []string
	var bools []bool
	for _, v := range values {
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return "", clienterr.Errorf(ErrInvalid, ": value %s: %v", v, err)
		}
		switch x := x.(type) {
		case nil:
			nulls = true
		case float64:
			nums = append(nums, x)
			strs = append(strs, string(v))
		case string:
			strs = append(strs, x)
			if f, err := strconv.ParseFloat(x, 64); err == nil {
				nums = append(nums, f)
			}
		case bool:
			bools = append(bools, x)
			strs = append(strs, strconv.FormatBool(x))
		default:
			return "", clienterr.Errorf(ErrInvalid, ": value %s is not a string, number, boolean or null", v)
		}
	}
	var cond string
	switch col.Type {
	case catalog.TypeNumber, catalog.TypeBigint:
		if len(nums) != len(strs) {
			return "", clienterr.Errorf(ErrInvalid, ": non-numeric value for numeric column")
		}
		if len(nums) > 0 {
			cond = c + " = ANY(" + r.bind(nums) + "::float8[])"
		}
	case catalog.TypeBoolean:
		if len(bools) != len(strs) {
			return "", clienterr.Errorf(ErrInvalid, ": non-boolean value for boolean column")
		}
		if len(bools) > 0 {
			cond = c + " = ANY(" + r.bind(bools) + "::bool[])"
		}
	case catalog.TypeString:
		if len(strs) > 0 {
			cond = c + " = ANY(" + r.bind(strs) + "::text[])"
		}
	default:
		if len(strs) > 0 {
			cond = c + "::text = ANY(" + r.bind(strs) + "::text[])"
		}
	}
	switch {
	case nulls && cond != "":
		return "(" + cond + " OR " + c + " IS NULL)", nil
	case nulls:
		return c + " IS NULL", nil
	}
	return cond, nil
}

// ranges: any of the [lo, hi] pairs; null bounds are open.
func (r *renderer) ranges(c string, col catalog.Column, op string, values []json.RawMessage) (string, error) {
	var ors []string
	for _, v := range values {
		var pair []*float64
		if err := json.Unmarshal(v, &pair); err != nil || len(pair) != 2 {
			return "", clienterr.Errorf(ErrInvalid, ": want [low, high] pairs of numbers, got %s", v)
		}
		var ands []string
		for i, bound := range pair {
			if bound == nil {
				continue
			}
			if math.IsNaN(*bound) || math.IsInf(*bound, 0) {
				return "", clienterr.Errorf(ErrInvalid, ": bound %v", *bound)
			}
			cmp := " >= "
			if i == 1 {
				cmp = " <= "
				if op == OpClosedOpen {
					cmp = " < "
				}
			}
			var val string
			switch {
			case op == OpTime || col.Type == catalog.TypeTimestamp:
				val = "to_timestamp(" + r.bind(*bound) + "::float8 / 1000)"
			default:
				val = r.bind(*bound) + "::float8"
			}
			ands = append(ands, c+cmp+val)
		}
		if len(ands) == 0 {
			ands = []string{c + " IS NOT NULL"}
		}
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	if len(ors) == 1 {
		return ors[0], nil
	}
	return "(" + strings.Join(ors, " OR ") + ")", nil
}

// Letters with diacritics and their plain forms, for stringSearch without
// keepSpecialCharacters (no unaccent extension needed).
const (
	accented = "ÀÁÂÃÄÅàáâãäåĀāĂăĄąÇçĆćĈĉĊċČčĎďĐđÈÉÊËèéêëĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħÌÍÎÏìíîïĨĩĪīĬĭĮįİıĴĵĶķĹĺĻļĽľĿŀŁłÑñŃńŅņŇňÒÓÔÕÖØòóôõöøŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲųŴŵÝýÿŶŷŸŹźŻżŽž"
	plain    = "AAAAAAaaaaaaAaAaAaCcCcCcCcCcDdDdEEEEeeeeEeEeEeEeEeGgGgGgGgHhHhIIIIiiiiIiIiIiIiIiJjKkLlLlLlLlLlNnNnNnNnOOOOOOooooooOoOoOoRrRrRrSsSsSsSsTtTtTtUUUUuuuuUuUuUuUuUuUuWwYyyYyYZzZzZz"
)

// Unaccent replaces letters with diacritics by their plain form.
func Unaccent(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r > 127 }) {
		return s
	}
	from, to := []rune(accented), []rune(plain)
	return strings.Map(func(r rune) rune {
		if i := slices.Index(from, r); i >= 0 {
			return to[i]
		}
		return r
	}, s)
}

func (r *renderer) search(c string, values []json.RawMessage, p SearchParams) (string, error) {
	subject := c + "::text"
	if !p.KeepSpecialCharacters {
		subject = "translate(" + subject + ", '" + accented + "', '" + plain + "')"
	}
	var ors []string
	for _, v := range values {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", clienterr.Errorf(ErrInvalid, ": want string patterns, got %s", v)
		}
		if !p.KeepSpecialCharacters {
			s = Unaccent(s)
		}
		if p.UseRegExp {
			if p.MustStart && !strings.HasPrefix(s, "^") {
				s = "^(" + s + ")"
			}
			if p.MustEnd && !strings.HasSuffix(s, "$") {
				s = "(" + s + ")$"
			}
			cmp := " ~* "
			if p.CaseSensitive {
				cmp = " ~ "
			}
			ors = append(ors, subject+cmp+r.bind(s))
			continue
		}
		pat := likeEscape(s)
		if !p.MustStart {
			pat = "%" + pat
		}
		if !p.MustEnd {
			pat += "%"
		}
		cmp := " ILIKE "
		if p.CaseSensitive {
			cmp = " LIKE "
		}
		ors = append(ors, subject+cmp+r.bind(pat))
	}
	if len(ors) == 1 {
		return ors[0], nil
	}
	return "(" + strings.Join(ors, " OR ") + ")", nil
}

// likeEscape escapes LIKE's wildcards and its escape character.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
