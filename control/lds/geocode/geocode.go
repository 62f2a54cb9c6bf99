// Package geocode answers forward and reverse geocoding from the
// meridian_lds gazetteer (built by package ldsload) in a data database.
//
// Forward geocoding parses "number street, city, postal code, country"
// (any part optional, the country also from the request), then looks up
// addresses (house number + fuzzy street), streets, places (countries,
// states, GeoNames cities, by any of their names) and postal codes, all
// accent- and case-insensitive through meridian_lds.norm and pg_trgm.
// Candidates are ranked by a score in [0, 1]: the trigram similarity of
// the matched name, raised by agreeing city/postal code/country and by
// place rank and population.
package geocode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Provider is the name reported in results.
const Provider = "meridian"

// MaxAddressLen bounds an address's length in bytes.
const MaxAddressLen = 512

// Errors for bad input; the HTTP layer maps them to 400s or per-entry errors.
var (
	ErrEmptyAddress   = errors.New("address is empty")
	ErrAddressTooLong = fmt.Errorf("address is longer than %d bytes", MaxAddressLen)
	ErrAbsurdAddress  = errors.New("address has no letters or digits")
	ErrUnknownCountry = errors.New("unknown country code (want ISO 3166-1 alpha-2, e.g. US)")
	ErrBadCoordinates = errors.New("coordinates out of range (latitude -90..90, longitude -180..180)")
	ErrNothingNear    = errors.New("no address, street or place near this point (at sea?)")
)

// Result is one geocoding answer, in CARTO's field names.
type Result struct {
	Latitude     float64 `json:"latitude"`
	Longitude    float64 `json:"longitude"`
	Country      string  `json:"country,omitempty"`
	CountryCode  string  `json:"countryCode,omitempty"`
	State        string  `json:"state,omitempty"`
	City         string  `json:"city,omitempty"`
	PostalCode   string  `json:"postalCode,omitempty"`
	StreetName   string  `json:"streetName,omitempty"`
	StreetNumber string  `json:"streetNumber,omitempty"`
	// Kind is what matched: address, street, postcode, city, state, country.
	Kind  string  `json:"kind"`
	Score float64 `json:"score"`
	// Distance is the distance in metres from the asked point (reverse).
	Distance *float64 `json:"distance,omitempty"`
	Provider string   `json:"provider"`
}

// Geocoder runs queries on the data database holding meridian_lds.
type Geocoder struct {
	db *pgxpool.Pool
	// codes caches the loaded country codes for a minute (every request
	// naming a country checks it; a load may add countries).
	codes atomic.Pointer[countryCodes]
}

type countryCodes struct {
	set    map[string]bool
	loaded time.Time
}

// New returns a Geocoder on db.
func New(db *pgxpool.Pool) *Geocoder { return &Geocoder{db: db} }

// Query is one forward geocoding request.
type Query struct {
	Address string
	// Country restricts results to an ISO-2 country; empty: anywhere.
	Country string
	// Limit caps the results (1..10). Default 1.
	Limit int
}

// Parsed is an address split into parts.
type Parsed struct {
	Number, Street, City, Postal, Country, Free string
}

var postalRe = regexp.MustCompile(`^[A-Za-z]{0,2}[0-9][A-Za-z0-9 -]{1,9}$`)

// Parse splits "number street, city, postal code, country". Free is the
// whole text when it is one part without a house number.
func Parse(address string) Parsed {
	var p Parsed
	var parts []string
	for _, s := range strings.Split(address, ",") {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return p
	}
	first := parts[0]
	words := strings.Fields(first)
	switch {
	case len(words) > 1 && startsWithDigit(words[0]):
		p.Number, p.Street = words[0], strings.Join(words[1:], " ")
	case len(words) > 1 && startsWithDigit(words[len(words)-1]) && len(parts) > 1:
		p.Number, p.Street = words[len(words)-1], strings.Join(words[:len(words)-1], " ")
	case len(parts) > 1 && postalRe.MatchString(first) && hasDigit(first):
		p.Postal = first
	default:
		p.Free = first
	}
	for _, s := range parts[1:] {
		w := strings.Fields(s)
		switch {
		case p.Postal == "" && postalRe.MatchString(s) && hasDigit(s):
			p.Postal = s
		case p.Postal == "" && len(w) > 1 && hasDigit(w[len(w)-1]) && postalRe.MatchString(w[len(w)-1]):
			// "DE 19801": state then postal code
			p.Postal = w[len(w)-1]
			if p.City == "" && p.Free == "" && p.Street == "" {
				p.City = strings.Join(w[:len(w)-1], " ")
			}
		case p.City == "" && (p.Street != "" || p.Postal != ""):
			p.City = s
		case p.Country == "":
			p.Country = s
		}
	}
	// "19801, US": a postal code then a country (or a city: Geocode
	// turns an unknown country back into a city).
	if p.Postal != "" && p.Street == "" && p.Free == "" && p.City != "" && p.Country == "" {
		p.Country, p.City = p.City, ""
	}
	// "Vaduz, Liechtenstein": the second part was taken as the city of
	// a free text; it is rather a country (or state) qualifier.
	if p.Free != "" && p.City != "" && p.Country == "" {
		p.Country, p.City = p.City, ""
	}
	return p
}

func startsWithDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }
func hasDigit(s string) bool        { return strings.IndexFunc(s, unicode.IsDigit) >= 0 }

// Validate checks an address and returns it trimmed.
func Validate(address string) (string, error) {
	a := strings.TrimSpace(address)
	switch {
	case a == "":
		return "", ErrEmptyAddress
	case len(a) > MaxAddressLen:
		return "", ErrAddressTooLong
	case strings.IndexFunc(a, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) < 0:
		return "", ErrAbsurdAddress
	}
	return a, nil
}

// CountryCode checks an ISO-2 code against the loaded countries.
func (g *Geocoder) CountryCode(ctx context.Context, code string) (string, error) {
	code = strings.ToUpper(strings.TrimSpace(code))
	if len(code) != 2 {
		return "", ErrUnknownCountry
	}
	cc := g.codes.Load()
	if cc == nil || time.Since(cc.loaded) > time.Minute {
		rows, err := g.db.Query(ctx, `SELECT DISTINCT country_code FROM meridian_lds.places WHERE kind IN ('country', 'city')`)
		if err != nil {
			return "", fmt.Errorf("checking country %s: %w", code, err)
		}
		codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return "", fmt.Errorf("checking country %s: %w", code, err)
		}
		cc = &countryCodes{set: make(map[string]bool, len(codes)), loaded: time.Now()}
		for _, c := range codes {
			cc.set[c] = true
		}
		g.codes.Store(cc)
	}
	if !cc.set[code] {
		return "", ErrUnknownCountry
	}
	return code, nil
}

// countryByName resolves a country written in an address ("Liechtenstein",
// "USA", "us"); "" when it is none.
func (g *Geocoder) countryByName(ctx context.Context, s string) (string, error) {
	var cc string
	err := g.db.QueryRow(ctx, `SELECT p.country_code FROM meridian_lds.place_names n JOIN meridian_lds.places p ON p.id = n.place_id
		WHERE p.kind = 'country' AND n.norm = meridian_lds.norm($1) LIMIT 1`, s).Scan(&cc)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("resolving country %q: %w", s, err)
	}
	return cc, nil
}

// Geocode answers q: up to q.Limit results, best first; none is not an error.
func (g *Geocoder) Geocode(ctx context.Context, q Query) ([]Result, error) {
	addr, err := Validate(q.Address)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1
	}
	limit = min(limit, 10)
	cc := ""
	if q.Country != "" {
		if cc, err = g.CountryCode(ctx, q.Country); err != nil {
			return nil, err
		}
	}
	p := Parse(addr)
	asked := cc
	if p.Country != "" {
		c, err := g.countryByName(ctx, p.Country)
		if err != nil {
			return nil, err
		}
		switch {
		case c != "" && cc == "":
			cc = c
		case c == "" && p.City == "" && (p.Street != "" || p.Postal != ""):
			p.City, p.Country = p.Country, ""
		case c == "":
			// A state or other qualifier: matched against the result's city.
			p.City = p.Country
		}
	}
	out, err := g.search(ctx, p, cc, limit)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 && cc != asked && p.City == "" {
		// "Springfield, MA": the country the address seemed to name
		// (Morocco) has no such place; read it as a state instead.
		p.City = p.Country
		if out, err = g.search(ctx, p, asked, limit); err != nil {
			return nil, err
		}
	}
	if err := g.complete(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// search runs the lookups p calls for, in country cc ("": anywhere), and
// returns the best limit results.
func (g *Geocoder) search(ctx context.Context, p Parsed, cc string, limit int) ([]Result, error) {
	var ccArg any
	if cc != "" {
		ccArg = cc
	}
	var out []Result
	if p.Street != "" {
		rs, err := g.addresses(ctx, p, ccArg)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
		if len(out) < limit {
			rs, err := g.streets(ctx, p, ccArg, limit)
			if err != nil {
				return nil, err
			}
			out = append(out, rs...)
		}
	}
	if p.Postal != "" && (p.Street == "" || len(out) < limit) {
		rs, err := g.postcodes(ctx, p, ccArg, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	if name := firstNonEmpty(p.Free, cityWhenAlone(p)); name != "" {
		rs, err := g.places(ctx, name, p, ccArg, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// cityWhenAlone: "Newark, 19711" has no street: find the city too.
func cityWhenAlone(p Parsed) string {
	if p.Street == "" {
		return p.City
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func same(a, b string) bool {
	return a != "" && b != "" && strings.EqualFold(foldSpaces(a), foldSpaces(b))
}

func foldSpaces(s string) string { return strings.Join(strings.Fields(s), " ") }

func (g *Geocoder) addresses(ctx context.Context, p Parsed, cc any) ([]Result, error) {
	// The street is normalized once (q), not per candidate row.
	rows, err := g.db.Query(ctx, `WITH q AS MATERIALIZED (SELECT meridian_lds.norm($2) AS norm)
		SELECT housenumber, street, coalesce(city, ''), coalesce(postal_code, ''), country_code,
			similarity(street_norm, q.norm) AS sim, ST_X(geom), ST_Y(geom)
		FROM meridian_lds.addresses, q
		WHERE street_norm % q.norm AND lower(housenumber) = lower($1) AND ($3::text IS NULL OR country_code = $3)
		ORDER BY sim DESC LIMIT 50`, p.Number, p.Street, cc)
	if err != nil {
		return nil, fmt.Errorf("finding addresses: %w", err)
	}
	var out []Result
	for rows.Next() {
		var r Result
		var sim float32
		if err := rows.Scan(&r.StreetNumber, &r.StreetName, &r.City, &r.PostalCode, &r.CountryCode, &sim, &r.Longitude, &r.Latitude); err != nil {
			return nil, fmt.Errorf("reading addresses: %w", err)
		}
		r.Kind = "address"
		r.Score = qualify(float64(sim), p, r)
		out = append(out, r)
	}
	return out, rows.Err()
}

// qualify turns a name similarity into a score: agreeing city and postal
// code count, disagreeing ones cost.
func qualify(sim float64, p Parsed, r Result) float64 {
	s := sim
	parts := 1.0
	if p.City != "" {
		parts++
		if same(p.City, r.City) {
			s++
		} else if strings.Contains(strings.ToLower(r.City), strings.ToLower(p.City)) {
			s += 0.5
		}
	}
	if p.Postal != "" {
		parts++
		if same(strings.ReplaceAll(p.Postal, " ", ""), strings.ReplaceAll(r.PostalCode, " ", "")) {
			s++
		}
	}
	return s / parts
}

func (g *Geocoder) streets(ctx context.Context, p Parsed, cc any, limit int) ([]Result, error) {
	rows, err := g.db.Query(ctx, `WITH q AS MATERIALIZED (SELECT meridian_lds.norm($1) AS norm)
		SELECT DISTINCT ON (sim, s.norm, s.city) s.name, coalesce(s.city, ''), coalesce(s.postal_code, ''),
			s.country_code, similarity(s.norm, q.norm) AS sim, ST_X(c), ST_Y(c)
		FROM meridian_lds.streets s CROSS JOIN q, ST_LineInterpolatePoint(s.geom, 0.5) c
		WHERE s.norm % q.norm AND similarity(s.norm, q.norm) >= 0.35
			AND ($2::text IS NULL OR s.country_code = $2)
		ORDER BY sim DESC, s.norm, s.city LIMIT 50`, p.Street, cc)
	if err != nil {
		return nil, fmt.Errorf("finding streets: %w", err)
	}
	var out []Result
	for rows.Next() {
		var r Result
		var sim float32
		if err := rows.Scan(&r.StreetName, &r.City, &r.PostalCode, &r.CountryCode, &sim, &r.Longitude, &r.Latitude); err != nil {
			return nil, fmt.Errorf("reading streets: %w", err)
		}
		r.Kind = "street"
		// A street without the house number asked for ranks below addresses.
		r.Score = 0.8 * qualify(float64(sim), p, r)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (g *Geocoder) postcodes(ctx context.Context, p Parsed, cc any, limit int) ([]Result, error) {
	rows, err := g.db.Query(ctx, `SELECT code, coalesce(place, ''), coalesce(state, ''), country_code, ST_X(geom), ST_Y(geom)
		FROM meridian_lds.postcodes WHERE code_norm = upper(replace(replace($1, ' ', ''), '-', '')) AND ($2::text IS NULL OR country_code = $2)
		LIMIT $3`, p.Postal, cc, limit)
	if err != nil {
		return nil, fmt.Errorf("finding postal codes: %w", err)
	}
	var out []Result
	for rows.Next() {
		var r Result
		if err := rows.Scan(&r.PostalCode, &r.City, &r.State, &r.CountryCode, &r.Longitude, &r.Latitude); err != nil {
			return nil, fmt.Errorf("reading postal codes: %w", err)
		}
		r.Kind = "postcode"
		r.Score = 0.7
		if p.City != "" {
			r.Score = 0.5 + 0.4*boolf(same(p.City, r.City))
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (g *Geocoder) places(ctx context.Context, name string, p Parsed, cc any, limit int) ([]Result, error) {
	// Candidates: the places of that exact (normalized) name when there
	// are at least as many as asked for (a b-tree lookup: a misspelt
	// name can never outscore an exact one, see the score below), else
	// by trigram similarity (GIN index); in the country when one is
	// given. A qualifier that names a state ("Wilmington, Delaware")
	// ranks the places inside that state's polygon first, among
	// candidates and in the score.
	var qualifier any
	if p.City != "" && p.Street == "" && p.Postal == "" && p.Free != "" {
		qualifier = p.City
	}
	// With a country, the fuzzy candidates are read from the (country,
	// trigram) index: a generic "$2 IS NULL OR …" would let the trigram
	// index alone serve it and filter every country's matches after.
	fuzzyCountry := "true"
	if cc != nil {
		fuzzyCountry = "n.country_code = $2"
	}
	rows, err := g.db.Query(ctx, `WITH q AS (SELECT meridian_lds.norm($1) AS norm),
		st AS MATERIALIZED (SELECT a.geom FROM meridian_lds.place_names sn
			JOIN meridian_lds.places sp ON sp.id = sn.place_id AND sp.kind = 'state'
			JOIN meridian_lds.area_parts a ON a.kind = 'state' AND a.name = sp.name AND a.country_code = sp.country_code
			WHERE $4::text IS NOT NULL AND sn.norm = meridian_lds.norm($4) AND ($2::text IS NULL OR sn.country_code = $2)),
		exact AS MATERIALIZED (SELECT DISTINCT n.place_id, 1::real AS sim, n.norm AS matched
			FROM meridian_lds.place_names n, q WHERE n.norm = q.norm AND ($2::text IS NULL OR n.country_code = $2)),
		fuzzy AS MATERIALIZED (SELECT n.place_id, max(similarity(n.norm, q.norm)) AS sim,
				(array_agg(n.norm ORDER BY similarity(n.norm, q.norm) DESC))[1] AS matched
			FROM meridian_lds.place_names n, q
			WHERE (SELECT count(*) FROM exact) < $5 AND n.norm % q.norm AND `+fuzzyCountry+`
			GROUP BY n.place_id),
		m AS (SELECT * FROM exact UNION ALL SELECT * FROM fuzzy WHERE place_id NOT IN (SELECT place_id FROM exact))
		SELECT p.kind, p.name, p.country_code, p.population, m.sim, m.matched, q.norm, ST_X(p.geom), ST_Y(p.geom), x.in_state
		FROM m CROSS JOIN q
		CROSS JOIN LATERAL (SELECT * FROM meridian_lds.places WHERE id = m.place_id) p
		CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM st WHERE ST_Intersects(st.geom, p.geom)) AS in_state) x
		ORDER BY x.in_state DESC, m.sim DESC, p.population DESC LIMIT $3`, name, cc, max(limit, 30), qualifier, limit)
	if err != nil {
		return nil, fmt.Errorf("finding places: %w", err)
	}
	var out []Result
	for rows.Next() {
		var r Result
		var pop int64
		var sim float32
		var matched, q string
		var inState bool
		if err := rows.Scan(&r.Kind, &r.City, &r.CountryCode, &pop, &sim, &matched, &q, &r.Longitude, &r.Latitude, &inState); err != nil {
			return nil, fmt.Errorf("reading places: %w", err)
		}
		// Match quality first: trigram similarity and edit distance
		// (typing errors: one swapped, dropped, doubled or wrong letter
		// costs one edit); then the kind (a country, then a city, then a
		// state of one name: "Puno" is the city more often than the
		// region) and population break near-ties; a place in the state
		// the address names beats one of the same name elsewhere.
		r.Score = 0.45*float64(sim) + 0.45*editSimilarity(q, matched) + kindBonus[r.Kind] +
			0.04*math.Min(1, math.Log10(float64(pop)+1)/9)
		if inState {
			r.Score += 0.1
		}
		switch r.Kind {
		case "country":
			r.Country, r.City = r.City, ""
		case "state":
			r.State, r.City = r.City, ""
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

var kindBonus = map[string]float64{"country": 0.06, "city": 0.04, "state": 0.02}

// complete fills country names and states of results (admin-1 polygon
// containing the point), and rounds scores.
func (g *Geocoder) complete(ctx context.Context, rs []Result) error {
	if len(rs) == 0 {
		return nil
	}
	lons, lats, ccs := make([]float64, len(rs)), make([]float64, len(rs)), make([]string, len(rs))
	for i, r := range rs {
		lons[i], lats[i], ccs[i] = r.Longitude, r.Latitude, r.CountryCode
	}
	rows, err := g.db.Query(ctx, `SELECT coalesce(c.name, ''), coalesce(s.name, '')
		FROM unnest($1::float8[], $2::float8[], $3::text[]) WITH ORDINALITY AS t(lon, lat, cc, i)
		LEFT JOIN LATERAL (SELECT name FROM meridian_lds.places WHERE kind = 'country' AND country_code = t.cc LIMIT 1) c ON true
		LEFT JOIN LATERAL (SELECT name FROM meridian_lds.area_parts WHERE kind = 'state' AND country_code = t.cc
			AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)) LIMIT 1) s ON true
		ORDER BY t.i`, lons, lats, ccs)
	if err != nil {
		return fmt.Errorf("completing results: %w", err)
	}
	defer rows.Close()
	for i := 0; rows.Next(); i++ {
		var country, state string
		if err := rows.Scan(&country, &state); err != nil {
			return fmt.Errorf("completing results: %w", err)
		}
		if rs[i].Country == "" {
			rs[i].Country = country
		}
		if rs[i].State == "" {
			rs[i].State = state
		}
		rs[i].Score = math.Round(math.Min(1, rs[i].Score)*1000) / 1000
		rs[i].Provider = Provider
	}
	return rows.Err()
}

// Reverse finds what is at lat, lon: the nearest address within 100 m,
// else the nearest street within 200 m, else the nearest place within
// 30 km, else the country/state containing the point; ErrNothingNear
// when none (the sea).
func (g *Geocoder) Reverse(ctx context.Context, lat, lon float64) (Result, error) {
	if math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return Result{}, ErrBadCoordinates
	}
	var (
		aNum, aStreet, aCity, aPC, aCC *string
		aLon, aLat, aDist              *float64
		sName, sCity, sPC, sCC         *string
		sLon, sLat, sDist              *float64
		pName, pCC                     *string
		pLon, pLat, pDist              *float64
		state, country, areaCC         *string
	)
	err := g.db.QueryRow(ctx, `WITH pt AS (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326) AS g)
		SELECT a.housenumber, a.street, a.city, a.postal_code, a.country_code, a.lon, a.lat, a.dist,
		       s.name, s.city, s.postal_code, s.country_code, s.lon, s.lat, s.dist,
		       p.name, p.country_code, p.lon, p.lat, p.dist,
		       st.name, co.name, co.country_code
		FROM pt
		LEFT JOIN LATERAL (SELECT housenumber, street, city, postal_code, country_code, ST_X(geom) lon, ST_Y(geom) lat,
			ST_Distance(geom::geography, pt.g::geography) dist FROM meridian_lds.addresses ORDER BY geom <-> pt.g LIMIT 1) a ON true
		LEFT JOIN LATERAL (SELECT name, city, postal_code, country_code, ST_X(c) lon, ST_Y(c) lat,
			ST_Distance(c::geography, pt.g::geography) dist
			FROM (SELECT *, ST_ClosestPoint(geom, pt.g) c FROM meridian_lds.streets ORDER BY geom <-> pt.g LIMIT 5) x
			ORDER BY ST_Distance(c::geography, pt.g::geography) LIMIT 1) s ON true
		LEFT JOIN LATERAL (SELECT name, country_code, ST_X(geom) lon, ST_Y(geom) lat,
			ST_Distance(geom::geography, pt.g::geography) dist FROM meridian_lds.places WHERE kind = 'city'
			ORDER BY geom <-> pt.g LIMIT 1) p ON true
		LEFT JOIN LATERAL (SELECT name FROM meridian_lds.area_parts WHERE kind = 'state' AND ST_Intersects(geom, pt.g) LIMIT 1) st ON true
		LEFT JOIN LATERAL (SELECT name, country_code FROM meridian_lds.area_parts WHERE kind = 'country' AND ST_Intersects(geom, pt.g) LIMIT 1) co ON true`,
		lon, lat).Scan(&aNum, &aStreet, &aCity, &aPC, &aCC, &aLon, &aLat, &aDist,
		&sName, &sCity, &sPC, &sCC, &sLon, &sLat, &sDist,
		&pName, &pCC, &pLon, &pLat, &pDist, &state, &country, &areaCC)
	if err != nil {
		return Result{}, fmt.Errorf("reverse geocoding: %w", err)
	}
	r := Result{Provider: Provider, Score: 1}
	switch {
	case aDist != nil && *aDist <= 100:
		r = Result{Kind: "address", StreetNumber: *aNum, StreetName: *aStreet, City: str(aCity), PostalCode: str(aPC),
			CountryCode: *aCC, Latitude: *aLat, Longitude: *aLon, Distance: round1(*aDist)}
	case sDist != nil && *sDist <= 200:
		r = Result{Kind: "street", StreetName: *sName, City: str(sCity), PostalCode: str(sPC), CountryCode: *sCC,
			Latitude: *sLat, Longitude: *sLon, Distance: round1(*sDist)}
	case pDist != nil && *pDist <= 30000:
		r = Result{Kind: "city", City: *pName, CountryCode: *pCC, Latitude: *pLat, Longitude: *pLon, Distance: round1(*pDist)}
	case areaCC != nil:
		r = Result{Kind: "country", CountryCode: *areaCC, Latitude: lat, Longitude: lon, Distance: round1(0)}
		if state != nil {
			r.Kind = "state"
		}
	default:
		return Result{}, ErrNothingNear
	}
	r.State, r.Provider = str(state), Provider
	if country != nil && areaCC != nil && *areaCC == r.CountryCode {
		r.Country = *country
	}
	// Closer is surer: 1 at the point, 0.5 at the kind's limit.
	limit := map[string]float64{"address": 100, "street": 200, "city": 30000}[r.Kind]
	r.Score = 1
	if limit > 0 {
		r.Score = math.Round((1-0.5*(*r.Distance)/limit)*1000) / 1000
	}
	if r.Country == "" {
		rs := []Result{r}
		if err := g.complete(ctx, rs); err != nil {
			return Result{}, err
		}
		r = rs[0]
	}
	return r, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func round1(f float64) *float64 {
	v := math.Round(f*10) / 10
	return &v
}

// editSimilarity is 1 - OSA distance / longer length: 1 for equal
// strings, falling by one step per edit (insert, delete, substitute, or
// swap of two adjacent letters).
func editSimilarity(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	n := max(len(ra), len(rb))
	if n == 0 {
		return 1
	}
	return 1 - float64(osa(ra, rb))/float64(n)
}

// osa is the optimal string alignment distance (Damerau–Levenshtein
// without repeated edits of one substring).
func osa(a, b []rune) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// AfterConnect prepares a connection of the pool the geocoder and router
// use: a trigram threshold low enough for misspelt short names (0.25;
// stricter matches are filtered per query) and no parallel workers (one
// lookup is small; workers only add latency on a busy machine).
func AfterConnect(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, "SET pg_trgm.similarity_threshold = 0.25; SET max_parallel_workers_per_gather = 0")
	return err
}
