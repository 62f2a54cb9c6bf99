package tokenauth

import (
	"crypto/ed25519"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/grant"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
	}{
		{"/api/v3/maps/local/table", route{api: grant.APIMaps, conn: "local", nameParam: true}},
		{"/api/v3/maps/local/query", route{api: grant.APIMaps, conn: "local", sqlParam: true}},
		{"/api/v3/maps/local/table/3/4/2", route{api: grant.APIMaps, conn: "local", nameParam: true}},
		{"/api/v3/maps/local/tilejson", route{api: grant.APIMaps, conn: "local"}},
		{"/api/v3/maps/public/abc", route{}},
		{"/api/v3/sql/local/query", route{api: grant.APISQL, conn: "local", sqlParam: true}},
		{"/api/v3/sql/local/model/category", route{api: apiStats, conn: "local"}},
		{"/api/v3/sql/local/job", route{}},
		{"/api/v3/stats/local/public.countries/pop", route{api: apiStats, conn: "local", table: "public.countries"}},
		{"/api/v3/stats/local/pop", route{api: apiStats, conn: "local"}},
		{"/api/v3/tokens", route{}},
		{"/healthz", route{}},
		{"/apix/v3/maps/local/table", route{}},
	}
	for _, tt := range tests {
		if got := parseRoute(tt.path, "/api"); got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
	}
}

func TestToken(t *testing.T) {
	tests := []struct {
		name, auth, url, want string
	}{
		{"bearer", "Bearer abc", "/x", "abc"},
		{"bearer lower case", "bearer abc", "/x", "abc"},
		{"bearer undefined is none", "Bearer undefined", "/x", ""},
		{"query", "", "/x?access_token=qq&v=3", "qq"},
		{"header wins", "Bearer hh", "/x?access_token=qq", "hh"},
		{"basic is not a token", "Basic dXNlcjpwYXNz", "/x", ""},
		{"none", "", "/x?v=3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.url, nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			if got := token(r); got != tt.want {
				t.Errorf("token = %q, want %q", got, tt.want)
			}
		})
	}
}

// Checking a hit costs no allocation: the authorizer is a pointer
// conversion of the verified (cached, precompiled) claims.
func TestAllowTagsDoesNotAllocate(t *testing.T) {
	key, err := grant.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := grant.Sign(&grant.Claims{ID: "t1", Subject: "test", Org: "default", IssuedAt: time.Now().Unix(),
		Grants: []grant.Grant{{Connection: "local", Source: "public.countries"}}, APIs: []grant.API{grant.APIMaps}}, key)
	if err != nil {
		t.Fatal(err)
	}
	v := grant.NewVerifier(grant.NewKeySet(map[string]ed25519.PublicKey{key.ID: key.Public()}), nil, grant.VerifierConfig{})
	c, err := v.Verify(tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tags := []string{"src:local/public.countries", "conn:local"}
	a := authorizer(c, grant.APIMaps)
	if !a.AllowTags(tags) {
		t.Fatal("granted source refused")
	}
	if a.AllowTags([]string{"src:local/public.rivers"}) {
		t.Error("ungranted source allowed")
	}
	if a.AllowTags([]string{"conn:local"}) {
		t.Error("entry without a source tag allowed")
	}
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	if n := testing.AllocsPerRun(100, func() { _ = authorizer(c, grant.APIMaps).AllowTags(tags) }); n != 0 {
		t.Errorf("AllowTags allocates %v times per run, want 0", n)
	}
}

// A cached response computed from a client's query is served only to a
// whole-connection grant, even when the token grants every table it shows.
func TestQueryResponsesNeedWholeConnection(t *testing.T) {
	key, _ := grant.NewSigningKey()
	v := grant.NewVerifier(grant.NewKeySet(map[string]ed25519.PublicKey{key.ID: key.Public()}), nil, grant.VerifierConfig{})
	claims := func(src string) *grant.Claims {
		tok, err := grant.Sign(&grant.Claims{ID: "t-" + src, Subject: "test", IssuedAt: time.Now().Unix(),
			Grants: []grant.Grant{{Connection: "local", Source: src}}, APIs: []grant.API{grant.APIMaps}}, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(tok, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tags := []string{"src:local/public.countries", "conn:local", "query:local"}
	if authorizer(claims("public.countries"), grant.APIMaps).AllowTags(tags) {
		t.Error("table grant served a query response from cache")
	}
	if authorizer(claims("SELECT * FROM public.countries"), grant.APIMaps).AllowTags(tags) {
		t.Error("query grant served a cached query response (the origin must check the exact text)")
	}
	if !authorizer(claims("*"), grant.APIMaps).AllowTags(tags) {
		t.Error("whole-connection grant refused")
	}
}
