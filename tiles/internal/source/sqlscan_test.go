package source

import (
	"errors"
	"testing"
)

func TestNormalizeQuery(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  error
	}{
		{"SELECT 1", "SELECT 1", nil},
		{"  SELECT 1 ;  ", "SELECT 1", nil},
		{"SELECT 1;;", "SELECT 1", nil},
		{"SELECT ';' AS s", "SELECT ';' AS s", nil},
		{"SELECT 1 -- trailing; comment", "SELECT 1 -- trailing; comment", nil},
		{"SELECT 1; -- done", "SELECT 1", nil},
		{"SELECT $$a;b$$, $x$;$x$", "SELECT $$a;b$$, $x$;$x$", nil},
		{`SELECT "a;b" FROM t`, `SELECT "a;b" FROM t`, nil},
		{"SELECT /* ; /* nested ; */ */ 1", "SELECT /* ; /* nested ; */ */ 1", nil},
		{"SELECT 1; DELETE FROM t", "", ErrMultipleStatements},
		{"SELECT 1; SELECT 2;", "", ErrMultipleStatements},
		{"", "", ErrEmptyQuery},
		{" ; ", "", ErrEmptyQuery},
		{"-- only a comment", "", ErrEmptyQuery},
		{"SELECT 'unterminated", "", ErrUnterminated},
		{`SELECT "unterminated`, "", ErrUnterminated},
		{"SELECT /* unterminated", "", ErrUnterminated},
		{"SELECT $q$ unterminated", "", ErrUnterminated},
		{`SELECT E'it\'s;' AS s`, `SELECT E'it\'s;' AS s`, nil},
	}
	for _, tt := range tests {
		got, err := NormalizeQuery(tt.in)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("NormalizeQuery(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("NormalizeQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMaxPlaceholder(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"SELECT 1", 0},
		{"SELECT * FROM t WHERE a = $1 AND b = $12", 12},
		{"SELECT '$5', \"$6\", $$ $7 $$, $tag$ $8 $tag$ -- $9\n, $2 /* $10 */", 2},
		{"SELECT a$1 FROM t", 0},
		{"SELECT $1::int+$3", 3},
	}
	for _, tt := range tests {
		got, err := MaxPlaceholder(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("MaxPlaceholder(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}
