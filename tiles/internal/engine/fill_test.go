package engine

import (
	"testing"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

func TestGroupKeyIsSelfContained(t *testing.T) {
	src := &Source{Source: &source.Source{ID: "0123456789abcdef", Key: "eJyrVkrOz0nNzVOyUlAqyk"}}
	k := groupKey(src, tileKey{id: src.ID, gen: 42, c: tile.Coord{Z: 14, X: 8185, Y: 5449}})
	if want := "mvt/42/14/8185/5449/eJyrVkrOz0nNzVOyUlAqyk"; k != want {
		t.Errorf("groupKey = %q, want %q", k, want)
	}
}

// BenchmarkGroupKey builds a groupcache key (cold path, once per miss).
func BenchmarkGroupKey(b *testing.B) {
	src := &Source{Source: &source.Source{ID: "0123456789abcdef", Key: "eJyrVkrOz0nNzVOyUlAqyk0tLk5MT1WyUkrOzylNSy0uTszPS88"}}
	k := tileKey{id: src.ID, gen: 1234567890123, c: tile.Coord{Z: 14, X: 8185, Y: 5449}}
	b.ReportAllocs()
	for b.Loop() {
		_ = groupKey(src, k)
	}
}
