package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/control/lds"
	"github.com/meridian-gis/meridian/control/lds/ldstest"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// ldsEnv is a control plane whose LDS API reads the shared fixture
// gazetteer, with tokens that do and do not allow lds.
func ldsEnv(t *testing.T, mod func(*lds.Config)) (e *controltest.Env, tok, noLDS string) {
	t.Helper()
	u := ldstest.URL(t)
	e = controltest.Start(t, func(c *control.Config, _ *control.Deps) {
		c.LDS.DatabaseURL = u
		if mod != nil {
			mod(&c.LDS)
		}
	})
	g := grant.Grant{Connection: "local", Source: "public.stores"}
	return e, e.Token(t, []grant.API{grant.APILDS}, g), e.Token(t, []grant.API{grant.APIMaps}, g)
}

// TestLDSReactAPIShape makes the call @carto/react-api's geocodeStreetPoint
// makes and reads the answer the way it does: data[0].value[0].
func TestLDSReactAPIShape(t *testing.T) {
	e, tok, _ := ldsEnv(t, nil)
	var data []struct {
		Error *string `json:"error"`
		Value []struct {
			Latitude, Longitude float64
			CountryCode         string `json:"countryCode"`
			City                string `json:"city"`
			Score               float64
			Provider            string
		} `json:"value"`
	}
	q := url.Values{"address": {"Vaduz"}, "country": {"LI"}, "limit": {"1"}, "access_token": {tok}}
	status, body := e.Call(t, "GET", "/api/v3/lds/geocoding/geocode?"+q.Encode(), "", "", nil, &data)
	if status != 200 || len(data) != 1 || data[0].Error != nil || len(data[0].Value) != 1 {
		t.Fatalf("geocode: %d %v %+v", status, body, data)
	}
	v := data[0].Value[0]
	if v.CountryCode != "LI" || v.City != "Vaduz" || v.Provider != "meridian" || v.Score <= 0.9 ||
		v.Latitude < 47.1 || v.Latitude > 47.2 || v.Longitude < 9.5 || v.Longitude > 9.6 {
		t.Errorf("geocode Vaduz = %+v", v)
	}
	// Structured address with the country in the text.
	status, _ = e.Call(t, "GET", "/api/v3/lds/geocoding/geocode?address="+url.QueryEscape("500 N King St, Wilmington, 19801, USA")+"&limit=3", tok, "", nil, &data)
	if status != 200 || len(data[0].Value) == 0 || data[0].Value[0].City != "Wilmington" {
		t.Errorf("structured geocode: %d %+v", status, data)
	}
}

func TestLDSAuthAndBadInput(t *testing.T) {
	e, tok, noLDS := ldsEnv(t, nil)
	for _, tt := range []struct {
		name, path, token string
		status            int
		contains          string
	}{
		{"no token", "/api/v3/lds/geocoding/geocode?address=Vaduz", "", 401, "missing access token"},
		{"no lds api", "/api/v3/lds/geocoding/geocode?address=Vaduz", noLDS, 403, "lds API"},
		{"empty address", "/api/v3/lds/geocoding/geocode?address=%20", tok, 400, "address is empty"},
		{"absurd address", "/api/v3/lds/geocoding/geocode?address=%3F%3F%3F", tok, 400, "no letters or digits"},
		{"unknown country", "/api/v3/lds/geocoding/geocode?address=Vaduz&country=XX", tok, 400, "unknown country"},
		{"bad limit", "/api/v3/lds/geocoding/geocode?address=Vaduz&limit=50", tok, 400, "limit"},
		{"lat out of range", "/api/v3/lds/geocoding/reverse?lat=91&lon=0", tok, 400, "out of range"},
		{"lon missing", "/api/v3/lds/geocoding/reverse?lat=10", tok, 400, "lon is required"},
		{"origin out of range", "/api/v3/lds/routing?origin=-200,39&destination=-75.5,39.1", tok, 400, "origin must be lon,lat"},
		{"bad waypoints", "/api/v3/lds/routing?origin=-75.5,39.7&destination=-75.5,39.1&waypoints=abc", tok, 400, "waypoints"},
		{"unsupported mode", "/api/v3/lds/routing?origin=-75.5,39.7&destination=-75.5,39.1&mode=bicycle", tok, 400, "Unsupported provider"},
		{"range over limit", "/api/v3/lds/isolines?origin=-75.5,39.7&range=300,99999", tok, 400, "range"},
		{"bad range type", "/api/v3/lds/isolines?origin=-75.5,39.7&range=300&range_type=fuel", tok, 400, "range_type"},
		{"h3 isolines resolution", "/api/v3/lds/isolines/h3?origin=-75.5,39.7&range=300&resolution=16", tok, 400, "resolution"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.Call(t, "GET", tt.path, tt.token, "", nil, nil)
			msg, _ := body["error"].(string)
			if status != tt.status || !strings.Contains(msg, tt.contains) {
				t.Errorf("GET %s = %d %v, want %d with %q", tt.path, status, body, tt.status, tt.contains)
			}
		})
	}
	// Answers the engine cannot give are the entry's error, not the request's.
	for _, path := range []string{
		"/api/v3/lds/geocoding/reverse?lat=-30&lon=-20",                          // the Atlantic
		"/api/v3/lds/routing?origin=-75.5466,39.7459&destination=9.5215,47.1415", // Delaware → Liechtenstein
		"/api/v3/lds/routing?origin=-30,30&destination=-75.5,39.1",               // at sea
	} {
		var data []map[string]any
		status, _ := e.Call(t, "GET", path, tok, "", nil, &data)
		if status != 200 || len(data) != 1 || data[0]["error"] == nil || data[0]["value"] != nil {
			t.Errorf("GET %s = %d %v, want one entry with an error", path, status, data)
		}
	}
}

func TestLDSRoutingIsolinesMatrix(t *testing.T) {
	e, tok, _ := ldsEnv(t, nil)
	var rt []struct {
		Error *string
		Value struct {
			Distance, Duration float64
			Geom               struct {
				Type        string
				Coordinates [][2]float64
			}
		}
	}
	// Wilmington → Dover via Newark (waypoints are lat,lon).
	status, body := e.Call(t, "GET", "/api/v3/lds/routing?origin=-75.5466,39.7459&destination=-75.5244,39.1582&waypoints=39.6837,-75.7497&mode=car", tok, "", nil, &rt)
	if status != 200 || rt[0].Error != nil || rt[0].Value.Geom.Type != "LineString" || rt[0].Value.Distance < 70000 {
		t.Fatalf("routing: %d %v %+v", status, body, rt)
	}
	var iso []struct {
		Error *string
		Value []struct {
			Range     float64
			RangeType string `json:"range_type"`
			Geom      struct{ Type string }
		}
	}
	status, body = e.Call(t, "GET", "/api/v3/lds/isolines?origin=-75.5466,39.7459&mode=car&range=300,600,900&range_type=time", tok, "", nil, &iso)
	if status != 200 || len(iso[0].Value) != 3 || iso[0].Value[2].Range != 900 || iso[0].Value[0].Geom.Type != "MultiPolygon" {
		t.Fatalf("isolines: %d %v %+v", status, body, iso)
	}
	var cells []struct {
		Error *string
		Value []struct {
			Range      float64
			Resolution int
			Cells      []string
		}
	}
	status, body = e.Call(t, "GET", "/api/v3/lds/isolines/h3?origin=-75.5466,39.7459&mode=car&range=300,600&resolution=8", tok, "", nil, &cells)
	if status != 200 || cells[0].Error != nil || len(cells[0].Value) != 2 || cells[0].Value[0].Resolution != 8 ||
		len(cells[0].Value[0].Cells) < 5 || len(cells[0].Value[1].Cells) <= len(cells[0].Value[0].Cells) {
		t.Fatalf("h3 isolines: %d %v %+v", status, body, cells)
	}
	status, body = e.Call(t, "GET", "/api/v3/lds/isolines/h3?origin=-75.5466,39.7459&mode=car&range=3600&resolution=12", tok, "", nil, &cells)
	if status != 200 || cells[0].Error == nil || !strings.Contains(*cells[0].Error, "coarser resolution") {
		t.Fatalf("h3 isolines with too many cells: %d %v %+v", status, body, cells)
	}
	var m []struct {
		Value struct{ Durations [][]*float64 }
	}
	status, body = e.Call(t, "GET", "/api/v3/lds/routing/matrix?origins=-75.5466,39.7459&destinations=-75.5244,39.1582%3B-75.7497,39.6837", tok, "", nil, &m)
	if status != 200 || len(m[0].Value.Durations) != 1 || len(m[0].Value.Durations[0]) != 2 || m[0].Value.Durations[0][0] == nil {
		t.Fatalf("matrix: %d %v %+v", status, body, m)
	}
}

// TestLDSBatch sends a batch with good, bad and unanswerable entries and
// wants one entry per address, in order, and the limit of 10,000 enforced.
func TestLDSBatch(t *testing.T) {
	e, tok, _ := ldsEnv(t, nil)
	addrs := []any{"Vaduz", "", map[string]any{"address": "Schaan", "country": "LI"}, "qqqxxzz", 42,
		map[string]any{"address": "Vaduz", "country": "ZZ"}, "Andorra la Vella"}
	var out []struct {
		Error *string
		Value []struct{ City, CountryCode string }
	}
	status, body := e.PostJSON(t, "/api/v3/lds/geocoding/batch", tok, map[string]any{"addresses": addrs}, &out)
	if status != 200 || len(out) != len(addrs) {
		t.Fatalf("batch: %d %v, %d entries", status, body, len(out))
	}
	check := func(i int, wantErr bool, city string) {
		t.Helper()
		got := out[i]
		if (got.Error != nil) != wantErr || (city != "" && (len(got.Value) == 0 || got.Value[0].City != city)) {
			t.Errorf("entry %d = %+v, want error %v city %q", i, got, wantErr, city)
		}
	}
	check(0, false, "Vaduz")
	check(1, true, "")
	check(2, false, "Schaan")
	check(3, false, "") // nothing found: an empty value
	check(4, true, "")
	check(5, true, "")
	check(6, false, "Andorra la Vella")

	big := make([]string, lds.MaxBatch+1)
	for i := range big {
		big[i] = "Vaduz"
	}
	status, body = e.PostJSON(t, "/api/v3/lds/geocoding/batch", tok, big, nil)
	if status != 400 || !strings.Contains(fmt.Sprint(body["error"]), "at most 10000") {
		t.Errorf("batch of 10,001: %d %v", status, body)
	}
}

// TestLDSBatchStreams geocodes a batch of 2,000 and reads the answer as a
// stream: entries arrive in input order.
func TestLDSBatchStreams(t *testing.T) {
	e, tok, _ := ldsEnv(t, nil)
	names := []string{"Vaduz", "Schaan", "Balzers", "Triesen", "Eschen"}
	addrs := make([]string, 2000)
	for i := range addrs {
		addrs[i] = names[i%len(names)]
	}
	b, _ := json.Marshal(map[string]any{"addresses": addrs, "country": "LI"})
	req, _ := http.NewRequest("POST", e.Base+"/api/v3/lds/geocoding/batch", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(res.Body))
	if tk, err := dec.Token(); err != nil || tk != json.Delim('[') {
		t.Fatalf("batch answer starts with %v, %v", tk, err)
	}
	for i := 0; dec.More(); i++ {
		var ent struct {
			Error *string
			Value []struct{ City string }
		}
		if err := dec.Decode(&ent); err != nil {
			t.Fatal(err)
		}
		if ent.Error != nil || len(ent.Value) != 1 || ent.Value[0].City != names[i%len(names)] {
			t.Fatalf("entry %d = %+v, want %s", i, ent, names[i%len(names)])
		}
	}
}

// TestLDSQuota spends a small monthly quota: calls and batch rows count,
// the call that does not fit gets 429, and stats report the use.
func TestLDSQuota(t *testing.T) {
	e, tok, _ := ldsEnv(t, func(c *lds.Config) { c.GeocodingQuota = 5; c.RoutingQuota = 1 })
	get := func(path string) (int, map[string]any) { return e.Call(t, "GET", path, tok, "", nil, nil) }
	if s, b := get("/api/v3/lds/geocoding/geocode?address=Vaduz"); s != 200 {
		t.Fatalf("first geocode: %d %v", s, b)
	}
	if s, b := e.PostJSON(t, "/api/v3/lds/geocoding/batch", tok, []string{"Vaduz", "Schaan", "Balzers", "Triesen", "Eschen"}, nil); s != 429 ||
		!strings.Contains(fmt.Sprint(b["error"]), "quota") {
		t.Errorf("batch of 5 with 4 left: %d %v, want 429", s, b)
	}
	if s, b := e.PostJSON(t, "/api/v3/lds/geocoding/batch", tok, []string{"Vaduz", "Schaan", "Balzers", "Triesen"}, nil); s != 200 {
		t.Errorf("batch of 4 with 4 left: %d %v", s, b)
	}
	s, b := get("/api/v3/lds/geocoding/reverse?lat=47.14&lon=9.52")
	if s != 429 || b["code"] != "QUOTA_EXCEEDED" || !strings.Contains(fmt.Sprint(b["error"]), "monthly geocoding quota exhausted") {
		t.Errorf("geocode over quota: %d %v", s, b)
	}
	var stats []map[string]any
	if s, _ := e.Call(t, "GET", "/api/v3/lds/stats", tok, "", nil, &stats); s != 200 || len(stats) != 3 {
		t.Fatalf("stats: %d %v", s, stats)
	}
	if stats[0]["service"] != "geocoding" || stats[0]["used_quota"] != 5.0 || stats[0]["monthly_quota"] != 5.0 || stats[0]["provider"] != "meridian" {
		t.Errorf("stats = %v", stats)
	}
	var org string
	if err := e.DB.Pool.QueryRow(context.Background(), "SELECT org_id FROM lds_usage WHERE service = 'geocoding'").Scan(&org); err != nil || org == "" {
		t.Errorf("usage row: %q, %v", org, err)
	}
}

// TestLDSQuotaPerOrg: each organization spends its own quota, counted
// under its own id (a token of the default organization under "default").
func TestLDSQuotaPerOrg(t *testing.T) {
	e, tok, _ := ldsEnv(t, func(c *lds.Config) { c.GeocodingQuota = 2 })
	ctx := context.Background()
	if _, err := e.DB.Pool.Exec(ctx, `INSERT INTO organizations (id, name) VALUES ('acme', 'Acme')`); err != nil {
		t.Fatal(err)
	}
	acme, _, err := e.Tokens.Create(ctx, tokenstore.Spec{Org: "acme", Owner: "tester", APIs: []grant.API{grant.APILDS},
		Grants: []grant.Grant{{Connection: "local", Source: "public.stores"}}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) int {
		s, _ := e.Call(t, "GET", "/api/v3/lds/geocoding/geocode?address=Vaduz", tok, "", nil, nil)
		return s
	}
	if a, b := get(tok), get(tok); a != 200 || b != 200 {
		t.Fatalf("the default org's two calls: %d %d", a, b)
	}
	if s := get(tok); s != 429 {
		t.Errorf("the default org's third call: %d, want 429", s)
	}
	if s := get(acme); s != 200 {
		t.Errorf("another org's first call after the default org spent its quota: %d, want 200", s)
	}
	rows, err := e.DB.Pool.Query(ctx, `SELECT org_id, used FROM lds_usage WHERE service = 'geocoding' ORDER BY org_id`)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]int64{}
	for rows.Next() {
		var org string
		var n int64
		rows.Scan(&org, &n)
		used[org] = n
	}
	if len(used) != 2 || used["acme"] != 1 || used["default"] != 2 {
		t.Errorf("usage per org = %v, want acme 1 and default 2", used)
	}
}

// TestLDSNoEngine: without an LDS database every operation is
// "Unsupported provider", and stats still answer.
func TestLDSNoEngine(t *testing.T) {
	e := controltest.Start(t, nil)
	tok := e.Token(t, []grant.API{grant.APILDS}, grant.Grant{Connection: "local", Source: "public.stores"})
	status, body := e.Call(t, "GET", "/api/v3/lds/geocoding/geocode?address=Vaduz", tok, "", nil, nil)
	if status != 400 || !strings.HasPrefix(fmt.Sprint(body["error"]), "Unsupported provider") {
		t.Errorf("geocode without engine: %d %v", status, body)
	}
	if status, _ := e.Call(t, "GET", "/api/v3/lds/stats", tok, "", nil, nil); status != 200 {
		t.Errorf("stats without engine: %d", status)
	}
}
