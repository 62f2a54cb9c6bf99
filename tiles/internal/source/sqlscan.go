package source

import (
	"errors"
	"strconv"
	"strings"

	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
)

// Errors about client SQL text.
var (
	// ErrEmptyQuery: no SQL.
	ErrEmptyQuery = errors.New("source: empty query")
	// ErrMultipleStatements: more than one statement.
	ErrMultipleStatements = errors.New("source: only one SQL statement is allowed")
	// ErrUnterminated: a string, quoted name or comment is not closed.
	ErrUnterminated = errors.New("source: unterminated string, quoted identifier or comment in query")
)

// scanSQL walks PostgreSQL SQL text outside string literals, quoted
// identifiers, dollar-quoted strings and comments, calling code for each
// byte offset of code. It reports unterminated constructs.
func scanSQL(sql string, code func(i int)) error {
	n := len(sql)
	isIdent := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
	}
	for i := 0; i < n; {
		c := sql[i]
		switch {
		case c == '-' && i+1 < n && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				return nil
			}
			i += j + 1
		case c == '/' && i+1 < n && sql[i+1] == '*':
			depth := 1
			i += 2
			for depth > 0 {
				if i+1 >= n {
					return ErrUnterminated
				}
				switch {
				case sql[i] == '/' && sql[i+1] == '*':
					depth++
					i += 2
				case sql[i] == '*' && sql[i+1] == '/':
					depth--
					i += 2
				default:
					i++
				}
			}
		case c == '\'':
			// E'…' strings allow backslash escapes.
			escapes := i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i < 2 || !isIdent(sql[i-2]))
			i++
			for {
				if i >= n {
					return ErrUnterminated
				}
				if escapes && sql[i] == '\\' {
					i += 2
					continue
				}
				if sql[i] == '\'' {
					if i+1 < n && sql[i+1] == '\'' {
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
		case c == '"':
			i++
			for {
				if i >= n {
					return ErrUnterminated
				}
				if sql[i] == '"' {
					if i+1 < n && sql[i+1] == '"' {
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
		case c == '$' && (i == 0 || !isIdent(sql[i-1])) && i+1 < n && !(sql[i+1] >= '0' && sql[i+1] <= '9'):
			// $tag$ … $tag$ (tag may be empty); otherwise a lone '$'.
			j := i + 1
			for j < n && sql[j] != '$' && isIdent(sql[j]) {
				j++
			}
			if j >= n || sql[j] != '$' {
				code(i)
				i++
				continue
			}
			tag := sql[i : j+1]
			end := strings.Index(sql[j+1:], tag)
			if end < 0 {
				return ErrUnterminated
			}
			i = j + 1 + end + len(tag)
		case isIdent(c):
			// Identifiers and keywords may contain '$' (a$1 is one name).
			for i < n && (isIdent(sql[i]) || sql[i] == '$') {
				code(i)
				i++
			}
		default:
			code(i)
			i++
		}
	}
	return nil
}

// NormalizeQuery trims sql, drops trailing semicolons and rejects text that
// holds more than one statement.
func NormalizeQuery(sql string) (string, error) {
	sql = strings.TrimSpace(sql)
	var semis []int
	var last int = -1
	err := scanSQL(sql, func(i int) {
		if sql[i] == ';' {
			semis = append(semis, i)
		} else if sql[i] != ' ' && sql[i] != '\t' && sql[i] != '\n' && sql[i] != '\r' {
			last = i
		}
	})
	if err != nil {
		return "", err
	}
	// Semicolons after the last code byte only end the statement.
	cut := len(sql)
	for k := len(semis) - 1; k >= 0; k-- {
		if semis[k] < last {
			return "", ErrMultipleStatements
		}
		cut = semis[k]
	}
	if len(semis) > 0 {
		sql = strings.TrimSpace(sql[:cut])
	}
	if last < 0 {
		return "", ErrEmptyQuery
	}
	return sql, nil
}

// MaxPlaceholder returns the highest $n placeholder used in sql outside
// literals and comments (0 when none).
func MaxPlaceholder(sql string) (int, error) {
	maxN := 0
	var skipUntil int
	err := scanSQL(sql, func(i int) {
		if i < skipUntil || sql[i] != '$' {
			return
		}
		if i > 0 {
			if p := sql[i-1]; p == '_' || p >= 'a' && p <= 'z' || p >= 'A' && p <= 'Z' || p >= '0' && p <= '9' {
				return
			}
		}
		n, j := 0, i+1
		for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' && n < 1_000_000 {
			n = n*10 + int(sql[j]-'0')
			j++
		}
		skipUntil = j
		maxN = max(maxN, n)
	})
	if err != nil {
		return 0, err
	}
	return maxN, nil
}

// checkPlaceholders verifies that sql uses no placeholder beyond nParams.
func checkPlaceholders(sql string, nParams int) error {
	n, err := MaxPlaceholder(sql)
	if err != nil {
		return err
	}
	if n > nParams {
		return clienterr.Errorf(ErrBadParams, ": the query uses $%d but %d queryParameters were given", n, nParams)
	}
	return nil
}

// BindNamed rewrites the named placeholders of sql (:name or @name,
// outside literals and comments) whose name is a key of named into $1,
// $2… in order of first use, and returns the rewritten SQL and the names
// in that order. A "::" cast, an operator such as "<@" or "@>", and names
// that are not keys stay as they are (PostgreSQL then reports them).
func BindNamed(sql string, named map[string]any) (string, []string, error) {
	isIdentStart := func(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	type use struct{ at, end int }
	var uses []use
	err := scanSQL(sql, func(i int) {
		c := sql[i]
		if c != ':' && c != '@' || i+1 >= len(sql) || !isIdentStart(sql[i+1]) {
			return
		}
		if i > 0 && strings.IndexByte(":@<>&|~!=#%^*+-/?", sql[i-1]) >= 0 {
			return
		}
		j := i + 1
		for j < len(sql) && isIdent(sql[j]) {
			j++
		}
		if _, ok := named[sql[i+1:j]]; ok {
			uses = append(uses, use{i, j})
		}
	})
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	var order []string
	index := map[string]int{}
	last := 0
	for _, u := range uses {
		name := sql[u.at+1 : u.end]
		n, ok := index[name]
		if !ok {
			order = append(order, name)
			n = len(order)
			index[name] = n
		}
		b.WriteString(sql[last:u.at])
		b.WriteString("$" + strconv.Itoa(n))
		last = u.end
	}
	b.WriteString(sql[last:])
	return b.String(), order, nil
}
