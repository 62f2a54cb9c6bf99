package tile

import (
	"errors"
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Coord
		wantErr error
	}{
		{"root", "0/0/0", Coord{0, 0, 0}, nil},
		{"z4", "4/8/5", Coord{4, 8, 5}, nil},
		{"max zoom corner", "24/16777215/16777215", Coord{24, 16777215, 16777215}, nil},
		{"leading zeros", "04/08/05", Coord{4, 8, 5}, nil},
		{"x beyond zoom", "1/2/0", Coord{}, ErrOutOfRange},
		{"y beyond zoom", "3/0/8", Coord{}, ErrOutOfRange},
		{"z above max", "25/0/0", Coord{}, ErrOutOfRange},
		{"z > 30", "31/0/0", Coord{}, ErrOutOfRange},
		{"overflow", "4/99999999999/0", Coord{}, ErrOutOfRange},
		{"uint32 overflow", "4/4294967296/0", Coord{}, ErrOutOfRange},
		{"empty", "", Coord{}, ErrSyntax},
		{"two parts", "1/0", Coord{}, ErrSyntax},
		{"four parts", "1/0/0/0", Coord{}, ErrSyntax},
		{"empty part", "1//0", Coord{}, ErrSyntax},
		{"trailing slash", "1/0/0/", Coord{}, ErrSyntax},
		{"leading slash", "/1/0/0", Coord{}, ErrSyntax},
		{"negative", "1/-1/0", Coord{}, ErrSyntax},
		{"extension", "1/0/0.pbf", Coord{}, ErrSyntax},
		{"plus sign", "+1/0/0", Coord{}, ErrSyntax},
		{"space", "1/0/ 0", Coord{}, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			gotB, errB := ParseBytes([]byte(tt.in))
			if gotB != got || !errors.Is(errB, tt.wantErr) {
				t.Errorf("ParseBytes(%q) = %+v, %v; want %+v, %v", tt.in, gotB, errB, got, err)
			}
			if err == nil && got.String() != canonical(tt.in) {
				t.Errorf("Parse(%q).String() = %q", tt.in, got.String())
			}
		})
	}
}

func canonical(s string) string {
	c, _ := Parse(s)
	return string(c.AppendText(nil))
}

func TestNew(t *testing.T) {
	if _, err := New(2, 3, 3); err != nil {
		t.Errorf("New(2,3,3) error = %v, want nil", err)
	}
	if _, err := New(2, 4, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("New(2,4,0) error = %v, want ErrOutOfRange", err)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestBounds(t *testing.T) {
	tests := []struct {
		c    Coord
		want Bounds
	}{
		{Coord{0, 0, 0}, Bounds{-OriginShift, -OriginShift, OriginShift, OriginShift}},
		{Coord{1, 0, 0}, Bounds{-OriginShift, 0, 0, OriginShift}},
		{Coord{1, 1, 1}, Bounds{0, -OriginShift, OriginShift, 0}},
		// ST_TileEnvelope(2, 1, 2) in PostGIS.
		{Coord{2, 1, 2}, Bounds{-10018754.171394622, -10018754.171394622, 0, 0}},
	}
	for _, tt := range tests {
		got := tt.c.Bounds()
		if !near(got.MinX, tt.want.MinX) || !near(got.MinY, tt.want.MinY) || !near(got.MaxX, tt.want.MaxX) || !near(got.MaxY, tt.want.MaxY) {
			t.Errorf("%v.Bounds() = %+v, want %+v", tt.c, got, tt.want)
		}
	}
}

func TestLonLatBounds(t *testing.T) {
	got := Coord{0, 0, 0}.LonLatBounds()
	want := Bounds{-180, -MaxLat, 180, MaxLat}
	if !near(got.MinX, want.MinX) || !near(got.MinY, want.MinY) || !near(got.MaxX, want.MaxX) || !near(got.MaxY, want.MaxY) {
		t.Errorf("0/0/0 LonLatBounds() = %+v, want %+v", got, want)
	}
	// z1 top-right quadrant: lon 0..180, lat 0..85.05.
	got = Coord{1, 1, 0}.LonLatBounds()
	if !near(got.MinX, 0) || !near(got.MaxX, 180) || !near(got.MinY, 0) || !near(got.MaxY, MaxLat) {
		t.Errorf("1/1/0 LonLatBounds() = %+v", got)
	}
}

func TestProjectionRoundTrip(t *testing.T) {
	for _, p := range [][2]float64{{0, 0}, {-73.9857, 40.7484}, {139.69, 35.69}, {-179.9, -84.9}, {2.35, 48.85}} {
		x, y := FromLonLat(p[0], p[1])
		lon, lat := ToLonLat(x, y)
		if !near(lon, p[0]) || !near(lat, p[1]) {
			t.Errorf("round trip of %v = %v,%v", p, lon, lat)
		}
	}
	// A point exactly on the square's edge.
	if x, _ := FromLonLat(180, 0); !near(x, OriginShift) {
		t.Errorf("FromLonLat(180,0) x = %v, want %v", x, OriginShift)
	}
	// Latitudes beyond the square are clamped.
	if _, y := FromLonLat(0, 90); !near(y, OriginShift) {
		t.Errorf("FromLonLat(0,90) y = %v, want %v", y, OriginShift)
	}
}

func TestAt(t *testing.T) {
	tests := []struct {
		name     string
		lon, lat float64
		z        uint32
		want     Coord
	}{
		{"null island z0", 0, 0, 0, Coord{0, 0, 0}},
		{"paris z4", 2.35, 48.85, 4, Coord{4, 8, 5}},
		{"new york z4", -73.99, 40.75, 4, Coord{4, 4, 6}},
		{"sydney z4", 151.2, -33.87, 4, Coord{4, 14, 9}},
		{"east edge", 180, 0, 2, Coord{2, 3, 2}},
		{"south pole clamps", 0, -90, 3, Coord{3, 4, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := At(tt.lon, tt.lat, tt.z)
			if got != tt.want {
				t.Errorf("At(%v, %v, %d) = %v, want %v", tt.lon, tt.lat, tt.z, got, tt.want)
			}
			if b := got.LonLatBounds().Expand(1e-9); !b.Contains(tt.lon, math.Max(-MaxLat, math.Min(MaxLat, tt.lat))) {
				t.Errorf("At(%v, %v) = %v whose bounds %+v do not contain the point", tt.lon, tt.lat, got, b)
			}
		})
	}
}

func TestParentChildren(t *testing.T) {
	c := Coord{3, 5, 2}
	for _, ch := range c.Children() {
		if ch.Parent() != c {
			t.Errorf("%v.Parent() = %v, want %v", ch, ch.Parent(), c)
		}
		if !c.Bounds().Expand(1e-6).Contains(ch.Bounds().MinX, ch.Bounds().MinY) {
			t.Errorf("child %v not inside %v", ch, c)
		}
	}
	if (Coord{}).Parent() != (Coord{}) {
		t.Errorf("root parent is not root")
	}
}

func TestBoundsHelpers(t *testing.T) {
	b := Bounds{0, 0, 10, 10}
	if got := b.Expand(1); got != (Bounds{-1, -1, 11, 11}) {
		t.Errorf("Expand(1) = %+v", got)
	}
	if !b.Intersects(Bounds{10, 10, 20, 20}) || b.Intersects(Bounds{11, 0, 20, 10}) {
		t.Errorf("Intersects wrong")
	}
}

func BenchmarkParseBytes(b *testing.B) {
	in := []byte("14/8185/5449")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes(in); err != nil {
			b.Fatal(err)
		}
	}
}
