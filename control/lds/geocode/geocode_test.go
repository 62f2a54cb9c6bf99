package geocode_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"

	"github.com/meridian-gis/meridian/control/lds/geocode"
	"github.com/meridian-gis/meridian/control/lds/ldstest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want geocode.Parsed
	}{
		{"500 North King Street, Wilmington, 19801, US", geocode.Parsed{Number: "500", Street: "North King Street", City: "Wilmington", Postal: "19801", Country: "US"}},
		{"Vaduz", geocode.Parsed{Free: "Vaduz"}},
		{"Vaduz, Liechtenstein", geocode.Parsed{Free: "Vaduz", Country: "Liechtenstein"}},
		{"Städtle 12, Vaduz", geocode.Parsed{Number: "12", Street: "Städtle", City: "Vaduz"}},
		{"19801", geocode.Parsed{Free: "19801"}},
		{"19801, US", geocode.Parsed{Postal: "19801", Country: "US"}},
		{"30 Spruce Ave, Wilmington, DE 19805", geocode.Parsed{Number: "30", Street: "Spruce Ave", City: "Wilmington", Postal: "19805"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := geocode.Parse(tt.in); got != tt.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// metres is the distance between two lon/lat points (equirectangular; fine below a few km).
func metres(lon1, lat1, lon2, lat2 float64) float64 {
	x := (lon2 - lon1) * math.Cos((lat1+lat2)/2*math.Pi/180)
	y := lat2 - lat1
	return math.Sqrt(x*x+y*y) * 111195
}

// TestDelawareAddresses geocodes addresses of the Delaware extract
// ("number street, city") and wants the first answer within 50 m.
func TestDelawareAddresses(t *testing.T) {
	db := ldstest.Pool(t)
	g := geocode.New(db)
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT housenumber, street, city, ST_X(geom), ST_Y(geom) FROM meridian_lds.addresses
		WHERE region = 'delaware' AND city IS NOT NULL ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type addr struct {
		num, street, city string
		lon, lat          float64
	}
	var all []addr
	for rows.Next() {
		var a addr
		if err := rows.Scan(&a.num, &a.street, &a.city, &a.lon, &a.lat); err != nil {
			t.Fatal(err)
		}
		all = append(all, a)
	}
	if len(all) < 500 {
		t.Fatalf("only %d Delaware addresses loaded", len(all))
	}
	good := 0
	var misses []string
	for _, a := range all {
		q := a.num + " " + a.street + ", " + a.city
		rs, err := g.Geocode(ctx, geocode.Query{Address: q, Country: "US"})
		if err != nil {
			t.Fatalf("Geocode(%q): %v", q, err)
		}
		if len(rs) > 0 && metres(rs[0].Longitude, rs[0].Latitude, a.lon, a.lat) <= 50 {
			good++
		} else if len(misses) < 10 {
			misses = append(misses, q)
		}
	}
	rate := float64(good) / float64(len(all))
	t.Logf("Delaware addresses within 50 m: %d of %d (%.1f%%)", good, len(all), 100*rate)
	if rate < 0.95 {
		t.Errorf("only %.1f%% of Delaware addresses within 50 m, want ≥ 95%%; misses: %q", 100*rate, misses)
	}
}

// misspell makes one typing error in a name (swap, drop, double or
// replace a letter away from the first), strips accents and scrambles the case.
func misspell(r *rand.Rand, name string) string {
	rs := []rune(strings.Map(func(c rune) rune {
		switch c {
		case 'á', 'à', 'â', 'ä', 'ã', 'å':
			return 'a'
		case 'é', 'è', 'ê', 'ë':
			return 'e'
		case 'í', 'ì', 'î', 'ï':
			return 'i'
		case 'ó', 'ò', 'ô', 'ö', 'õ':
			return 'o'
		case 'ú', 'ù', 'û', 'ü':
			return 'u'
		case 'ñ':
			return 'n'
		case 'ç':
			return 'c'
		}
		return c
	}, name))
	if len(rs) >= 5 {
		i := 1 + r.IntN(len(rs)-2)
		switch r.IntN(4) {
		case 0:
			rs[i], rs[i+1] = rs[i+1], rs[i]
		case 1:
			rs = append(rs[:i], rs[i+1:]...)
		case 2:
			rs = append(rs[:i+1], rs[i:]...)
		default:
			rs[i] = rune('a' + r.IntN(26))
		}
	}
	for i, c := range rs {
		if r.IntN(3) == 0 {
			rs[i] = unicode.ToUpper(c)
		} else {
			rs[i] = unicode.ToLower(c)
		}
	}
	return string(rs)
}

// TestGeoNamesMisspelt geocodes 1,000 GeoNames places by a misspelt,
// unaccented name and their country, and wants the place itself first
// (within 1 km) for at least 95% of them. The sample is drawn from names
// that are unique in their country, where "the right place" is defined.
func TestGeoNamesMisspelt(t *testing.T) {
	db := ldstest.Pool(t)
	g := geocode.New(db)
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT name, country_code, ST_X(geom), ST_Y(geom) FROM (
			SELECT p.*, count(*) OVER (PARTITION BY meridian_lds.norm(p.name), p.country_code) n
			FROM meridian_lds.places p WHERE kind = 'city') x
		WHERE n = 1 AND name ~ '^[[:alpha:] ]+$' ORDER BY md5(name || country_code) LIMIT 1000`)
	if err != nil {
		t.Fatal(err)
	}
	type place struct {
		name, cc string
		lon, lat float64
	}
	var sample []place
	for rows.Next() {
		var p place
		if err := rows.Scan(&p.name, &p.cc, &p.lon, &p.lat); err != nil {
			t.Fatal(err)
		}
		sample = append(sample, p)
	}
	if len(sample) != 1000 {
		t.Fatalf("sample has %d places", len(sample))
	}
	r := rand.New(rand.NewPCG(1, 2))
	good := 0
	var misses []string
	for _, p := range sample {
		q := misspell(r, p.name)
		rs, err := g.Geocode(ctx, geocode.Query{Address: q, Country: p.cc})
		if err != nil {
			t.Fatalf("Geocode(%q, %s): %v", q, p.cc, err)
		}
		if len(rs) > 0 && metres(rs[0].Longitude, rs[0].Latitude, p.lon, p.lat) <= 1000 {
			good++
		} else if len(misses) < 15 {
			got := "nothing"
			if len(rs) > 0 {
				got = rs[0].City + rs[0].State + rs[0].StreetName
			}
			misses = append(misses, q+" ("+p.name+", "+p.cc+") → "+got)
		}
	}
	t.Logf("misspelt GeoNames places found first: %d of 1000", good)
	if good < 950 {
		t.Errorf("right place first for %d of 1000, want ≥ 950; some misses: %q", good, misses)
	}
}

// TestReverseDelawareStreets reverse geocodes the middle of named
// Delaware street segments and wants that street's name back.
func TestReverseDelawareStreets(t *testing.T) {
	db := ldstest.Pool(t)
	g := geocode.New(db)
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT name, ST_X(c), ST_Y(c) FROM meridian_lds.edges e, ST_LineInterpolatePoint(e.geom, 0.5) c
		WHERE region = 'delaware' AND name IS NOT NULL AND length_m > 150 AND highway IN ('residential', 'tertiary', 'secondary', 'primary')
		ORDER BY md5(id::text) LIMIT 200`)
	if err != nil {
		t.Fatal(err)
	}
	type pt struct {
		name     string
		lon, lat float64
	}
	var pts []pt
	for rows.Next() {
		var p pt
		if err := rows.Scan(&p.name, &p.lon, &p.lat); err != nil {
			t.Fatal(err)
		}
		pts = append(pts, p)
	}
	good := 0
	var misses []string
	for _, p := range pts {
		res, err := g.Reverse(ctx, p.lat, p.lon)
		if err != nil {
			t.Fatalf("Reverse(%v, %v): %v", p.lat, p.lon, err)
		}
		if res.StreetName == p.name {
			good++
		} else if len(misses) < 10 {
			misses = append(misses, p.name+" → "+res.Kind+" "+res.StreetName)
		}
		if res.Distance == nil || res.CountryCode != "US" {
			t.Errorf("Reverse(%v, %v) = %+v: want a distance and country US", p.lat, p.lon, res)
		}
	}
	t.Logf("reverse geocoded to the right street: %d of %d", good, len(pts))
	if float64(good) < 0.95*float64(len(pts)) {
		t.Errorf("right street for %d of %d, want ≥ 95%%; misses: %q", good, len(pts), misses)
	}
}

func TestBadInput(t *testing.T) {
	db := ldstest.Pool(t)
	g := geocode.New(db)
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		q       geocode.Query
		wantErr error
	}{
		{"empty", geocode.Query{Address: "  "}, geocode.ErrEmptyAddress},
		{"absurd", geocode.Query{Address: "!!! ??? ..."}, geocode.ErrAbsurdAddress},
		{"too long", geocode.Query{Address: strings.Repeat("a", 600)}, geocode.ErrAddressTooLong},
		{"unknown country", geocode.Query{Address: "Vaduz", Country: "ZZ"}, geocode.ErrUnknownCountry},
		{"bad country", geocode.Query{Address: "Vaduz", Country: "Liechtenstein"}, geocode.ErrUnknownCountry},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Geocode(ctx, tt.q)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Geocode(%+v) error = %v, want %v", tt.q, err, tt.wantErr)
			}
		})
	}
	rs, err := g.Geocode(ctx, geocode.Query{Address: "qxzvwq jjjkkk", Country: "LI"})
	if err != nil || len(rs) != 0 {
		t.Errorf("nonsense address: got %v, %v; want no result, no error", rs, err)
	}
	if _, err := g.Reverse(ctx, 95, 0); !errors.Is(err, geocode.ErrBadCoordinates) {
		t.Errorf("Reverse(95, 0) error = %v, want ErrBadCoordinates", err)
	}
	if _, err := g.Reverse(ctx, -30, -20); !errors.Is(err, geocode.ErrNothingNear) {
		t.Errorf("Reverse at sea error = %v, want ErrNothingNear", err)
	}
	// Accent- and case-insensitive, with the country in the text.
	rs, err = g.Geocode(ctx, geocode.Query{Address: "SCHAAN, liechtenstein", Limit: 3})
	if err != nil || len(rs) == 0 || rs[0].City != "Schaan" || rs[0].CountryCode != "LI" || rs[0].Country != "Liechtenstein" {
		t.Errorf("Geocode(SCHAAN, liechtenstein) = %+v, %v", rs, err)
	}
	rs, err = g.Geocode(ctx, geocode.Query{Address: "Escaldes-Engordany", Country: "AD"})
	if err != nil || len(rs) == 0 || rs[0].Score <= 0.8 {
		t.Errorf("Geocode(Escaldes-Engordany) = %+v, %v", rs, err)
	}
}

// TestQualifiers: a second part naming a state picks the place of that
// name in that state; a two-letter one that is also a country code
// falls back to a state when the country has no such place.
func TestQualifiers(t *testing.T) {
	g := geocode.New(ldstest.Pool(t))
	ctx := context.Background()
	for _, c := range []struct{ address, state, cc string }{
		{"Wilmington, Delaware", "Delaware", "US"},
		{"Wilmington, DE", "Delaware", "US"},
		{"Springfield, Illinois", "Illinois", "US"},
		{"Springfield, MA", "Massachusetts", "US"},
		{"Springfield, Massachusetts", "Massachusetts", "US"},
		{"Vaduz, Liechtenstein", "", "LI"},
	} {
		rs, err := g.Geocode(ctx, geocode.Query{Address: c.address})
		if err != nil {
			t.Fatalf("%s: %v", c.address, err)
		}
		if len(rs) == 0 || rs[0].CountryCode != c.cc || (c.state != "" && rs[0].State != c.state) {
			t.Errorf("%s: got %+v, want a place in %s %s", c.address, rs, c.state, c.cc)
		}
	}
}
