// Package jsonscan walks JSON text in place: skip a value, read a string
// or a number, iterate over the members of an object or the elements of an
// array. It never allocates on the happy path, and it never panics on bad
// input (it returns ErrSyntax), but it is not a validator: callers that need
// a full syntax check run encoding/json first, as the importer does.
package jsonscan

import (
	"encoding/json"
	"errors"
	"strconv"
)

// ErrSyntax reports JSON the walker cannot follow.
var ErrSyntax = errors.New("malformed JSON")

// Space returns the index of the first non-space byte at or after i.
func Space(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// String reads the string whose opening quote is at b[i]. It returns the
// raw content between the quotes, the index after the closing quote, and
// whether the content holds escapes (then Unquote gives its value).
func String(b []byte, i int) (content []byte, end int, escaped bool, err error) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false, ErrSyntax
	}
	j := i + 1
	for j < len(b) {
		switch b[j] {
		case '"':
			return b[i+1 : j], j + 1, escaped, nil
		case '\\':
			escaped = true
			j += 2
		default:
			j++
		}
	}
	return nil, len(b), false, ErrSyntax
}

// Unquote decodes the escapes of a string's raw content.
func Unquote(content []byte) (string, error) {
	quoted := make([]byte, 0, len(content)+2)
	quoted = append(quoted, '"')
	quoted = append(quoted, content...)
	quoted = append(quoted, '"')
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "", ErrSyntax
	}
	return s, nil
}

// Value returns the index after the value starting at or after i.
func Value(b []byte, i int) (int, error) {
	i = Space(b, i)
	if i >= len(b) {
		return i, ErrSyntax
	}
	switch c := b[i]; {
	case c == '"':
		_, end, _, err := String(b, i)
		return end, err
	case c == '{' || c == '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				_, end, _, err := String(b, i)
				if err != nil {
					return end, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return i, ErrSyntax
	default:
		j := i
		for j < len(b) && isScalarByte(b[j]) {
			j++
		}
		if j == i {
			return i, ErrSyntax
		}
		return j, nil
	}
}

func isScalarByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'E'
}

// Number reads the number starting at or after i.
func Number(b []byte, i int) (v float64, end int, err error) {
	i = Space(b, i)
	j := i
	for j < len(b) {
		c := b[j]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			j++
			continue
		}
		break
	}
	if j == i {
		return 0, i, ErrSyntax
	}
	v, err = strconv.ParseFloat(string(b[i:j]), 64)
	if err != nil {
		return 0, j, ErrSyntax
	}
	return v, j, nil
}

// Object calls fn for each member of the object starting at or after i,
// with the raw key content, whether it holds escapes, and the span
// [vstart, vend) of the value. It returns the index after the object.
func Object(b []byte, i int, fn func(key []byte, escaped bool, vstart, vend int) error) (int, error) {
	i = Space(b, i)
	if i >= len(b) || b[i] != '{' {
		return i, ErrSyntax
	}
	i = Space(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		key, end, esc, err := String(b, Space(b, i))
		if err != nil {
			return end, err
		}
		i = Space(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, ErrSyntax
		}
		vs := Space(b, i+1)
		ve, err := Value(b, vs)
		if err != nil {
			return ve, err
		}
		if err := fn(key, esc, vs, ve); err != nil {
			return ve, err
		}
		i = Space(b, ve)
		if i >= len(b) {
			return i, ErrSyntax
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i + 1, nil
		default:
			return i, ErrSyntax
		}
	}
}

// Array calls fn for each element of the array starting at or after i with
// the element's start index; fn returns the index after the element. Array
// returns the index after the array.
func Array(b []byte, i int, fn func(start int) (int, error)) (int, error) {
	i = Space(b, i)
	if i >= len(b) || b[i] != '[' {
		return i, ErrSyntax
	}
	i = Space(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := fn(Space(b, i))
		if err != nil {
			return end, err
		}
		i = Space(b, end)
		if i >= len(b) {
			return i, ErrSyntax
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			return i + 1, nil
		default:
			return i, ErrSyntax
		}
	}
}

// IsNull reports whether the value at or after i is the literal null.
func IsNull(b []byte, i int) bool {
	i = Space(b, i)
	return len(b)-i >= 4 && string(b[i:i+4]) == "null"
}
