package cachetag

import (
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
