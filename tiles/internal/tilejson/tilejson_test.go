package tilejson

import (
	"math"
	"testing"
)

func TestCenter(t *testing.T) {
	tests := []struct {
		name                     string
		west, south, east, north float64
		want                     [3]float64
	}{
		{"world", -180, -85.0511, 180, 85.0511, [3]float64{0, 0, 0}},
		{"France", -5, 42, 8, 51, [3]float64{1.5, 46.5, 5}},
		// The United States with the Aleutians: west of east across 180.
		{"across the antimeridian", 172.4, 18.9, -66.9, 71.4, [3]float64{-127.25, 45.15, 2}},
		{"Fiji", 177, -19, -178, -16, [3]float64{179.5, -17.5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Center(tt.west, tt.south, tt.east, tt.north, 20)
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-9 {
					t.Fatalf("Center(%v, %v, %v, %v) = %v, want %v", tt.west, tt.south, tt.east, tt.north, got, tt.want)
				}
			}
		})
	}
}
