package cachetag

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	if got, want := Source("Local", "Public.Countries"), "src:local/public.countries"; got != want {
		t.Errorf("Source = %q, want %q", got, want)
	}
	if got, want := Conn("local"), "conn:local"; got != want {
		t.Errorf("Conn = %q, want %q", got, want)
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"empty", "", 0, nil},
		{"spaces", "a  b c", 0, []string{"a", "b", "c"}},
		{"commas", "a,b, c", 0, []string{"a", "b", "c"}},
		{"dups", "a b a", 0, []string{"a", "b"}},
		{"max", "a b c d", 2, []string{"a", "b"}},
		{"control char dropped", "a b\x01x c", 0, []string{"a", "c"}},
		{"too long dropped", "a " + strings.Repeat("x", MaxTagLen+1), 0, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Split(tt.in, tt.max); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Split(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestJoinSplitRoundTrip(t *testing.T) {
	tags := []string{Source("c", "public.t"), Conn("c")}
	if got := Split(Join(tags...), 0); !reflect.DeepEqual(got, tags) {
		t.Errorf("round trip = %q, want %q", got, tags)
	}
}

func TestValidURL(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"/api/v3/maps/x", true},
		{"/api/v3/maps/x?a=1&b=2", true},
		{"/", true},
		{"https://tiles.example/api/", true},
		{"http://tiles.example:8080/a?b=c", true},
		{"HTTPS://Tiles.Example/a", true},
		{"", false},
		{"api/v3", false},
		{"//host/path", false},
		{"ftp://host/x", false},
		{"mailto:a@b", false},
		{"/a b", false},
		{"/a\n", false},
		{"/bad%zz", false},
		{"/" + strings.Repeat("a", MaxURLLen), false},
	}
	for _, tt := range tests {
		if got := ValidURL(tt.in); got != tt.want {
			t.Errorf("ValidURL(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestInvalidationValidate(t *testing.T) {
	tests := []struct {
		name    string
		inv     Invalidation
		wantErr error
	}{
		{"tags", Invalidation{Tags: []string{"src:c/public.t"}}, nil},
		{"urls", Invalidation{URLs: []string{"/a"}}, nil},
		{"prefixes", Invalidation{Prefixes: []string{"https://h/a/"}}, nil},
		{"empty", Invalidation{Reason: "x"}, ErrEmpty},
		{"bad tag", Invalidation{Tags: []string{"a b"}}, ErrInvalid},
		{"bad url", Invalidation{Tags: []string{"t"}, URLs: []string{"a"}}, ErrInvalidURL},
		{"bad prefix", Invalidation{Prefixes: []string{"ftp://h/"}}, ErrInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.inv.Validate(); !errors.Is(err, tt.wantErr) {
				t.Errorf("Validate() = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if err := (Invalidation{URLs: make([]string, MaxInvalidationItems+1)}).Validate(); err == nil {
		t.Errorf("Validate() of %d urls: no error", MaxInvalidationItems+1)
	}
}
