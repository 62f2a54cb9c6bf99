package tilemetrics

import "testing"

func TestZoom(t *testing.T) {
	tests := []struct {
		path string
		want int
		ok   bool
	}{
		{"/api/v3/maps/pg/table/3/4/5", 3, true},
		{"/api/v3/maps/pg/table/14/8190/5456.mvt", 14, true},
		{"/api/v3/maps/pg/table/0/0/0", 0, true},
		{"/api/v3/maps/pg/table", 0, false},
		{"/api/v3/maps/pg/table/3/9/5", 0, false}, // x beyond zoom 3
		{"/api/v3/maps/pg/table/a/1/1", 0, false},
		{"/api/v3/stats/pg/x", 0, false},
		{"1/1", 0, false},
	}
	for _, tt := range tests {
		got, ok := zoom(tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("zoom(%q) = %d, %v; want %d, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCacheResult(t *testing.T) {
	tests := map[string]string{
		"":                                    "none",
		"meridian; hit; ttl=3600":             "hit",
		"meridian; hit; ttl=-3; detail=stale": "stale",
		"meridian; fwd=miss; stored":          "miss",
		"meridian; fwd=bypass":                "miss",
		"meridian; detail=only-if-cached":     "none",
		"meridian; fwd=stale; collapsed":      "miss",
	}
	for in, want := range tests {
		if got := CacheResult(in); got != want {
			t.Errorf("CacheResult(%q) = %q, want %q", in, got, want)
		}
	}
}
