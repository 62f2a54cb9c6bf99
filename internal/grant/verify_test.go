package grant

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB) SigningKey {
	t.Helper()
	k, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testClaims(jti string) *Claims {
	return &Claims{
		ID:        jti,
		Subject:   "user-1",
		Org:       "default",
		IssuedAt:  t0.Unix(),
		ExpiresAt: t0.Add(time.Hour).Unix(),
		Grants:    []Grant{{Connection: "pg", Source: "public.countries"}},
		APIs:      []API{APIMaps, APISQL},
	}
}

func sign(t testing.TB, c *Claims, k SigningKey) string {
	t.Helper()
	tok, err := Sign(c, k)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return tok
}

func keySet(keys ...SigningKey) *KeySet {
	m := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		m[k.ID] = k.Public()
	}
	return NewKeySet(m)
}

func enc(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// rawToken signs arbitrary header and payload bytes with k.
func rawToken(header, payload string, k SigningKey) string {
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return SignInput(input, k.Private)
}

func TestVerify(t *testing.T) {
	key, other := newKey(t), newKey(t)
	good := sign(t, testClaims("tok-good"), key)
	parts := strings.Split(good, ".")

	tamperedClaims := testClaims("tok-good")
	tamperedClaims.Grants[0].Source = "*"
	tamperedPayload := parts[0] + "." + enc(tamperedClaims) + "." + parts[2]

	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[10] ^= 0x40
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	expired := testClaims("tok-expired")
	expired.ExpiresAt = t0.Unix()
	notYet := testClaims("tok-nbf")
	notYet.NotBefore = t0.Add(time.Minute).Unix()
	never := testClaims("tok-never")
	never.ExpiresAt = 0

	// Signed by a key not in the set, with its own kid and with the kid of
	// a trusted key.
	byOther := sign(t, testClaims("tok-other"), other)
	impostor := SigningKey{ID: key.ID, Private: other.Private}
	byImpostor := sign(t, testClaims("tok-impostor"), impostor)

	hdr := func(alg, kid string) string {
		return fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":"JWT"}`, alg, kid)
	}
	claimsJSON, _ := json.Marshal(testClaims("tok-raw"))
	algNone := base64.RawURLEncoding.EncodeToString([]byte(hdr("none", key.ID))) + "." + base64.RawURLEncoding.EncodeToString(claimsJSON) + "."
	hsInput := base64.RawURLEncoding.EncodeToString([]byte(hdr("HS256", key.ID))) + "." + base64.RawURLEncoding.EncodeToString(claimsJSON)
	mac := hmac.New(sha256.New, key.Public())
	mac.Write([]byte(hsInput))
	algHS256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"valid", good, nil},
		{"never expires", sign(t, never, key), nil},
		{"tampered payload", tamperedPayload, ErrBadSignature},
		{"tampered signature", tamperedSig, ErrBadSignature},
		{"expired", sign(t, expired, key), ErrExpired},
		{"not yet valid", sign(t, notYet, key), ErrNotYetValid},
		{"signed by unknown key", byOther, ErrUnknownKey},
		{"signed by other key with trusted kid", byImpostor, ErrBadSignature},
		{"empty", "", ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"four parts", good + ".x", ErrMalformed},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], ErrMalformed},
		{"header padded", parts[0] + "=." + parts[1] + "." + parts[2], ErrMalformed},
		{"payload not base64", parts[0] + ".@@." + parts[2], ErrMalformed},
		{"signature not base64", parts[0] + "." + parts[1] + ".***", ErrMalformed},
		{"signature too short", parts[0] + "." + parts[1] + "." + parts[2][:40], ErrMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"alg none", algNone, ErrMalformed},
		{"alg HS256 keyed with the public key", algHS256, ErrMalformed},
		{"alg RS256", rawToken(hdr("RS256", key.ID), string(claimsJSON), key), ErrMalformed},
		{"missing kid", rawToken(`{"alg":"EdDSA"}`, string(claimsJSON), key), ErrMalformed},
		{"crit header", rawToken(`{"alg":"EdDSA","kid":"`+key.ID+`","crit":["exp"]}`, string(claimsJSON), key), ErrMalformed},
		{"claims not JSON", rawToken(hdr(Alg, key.ID), "not json", key), ErrMalformed},
		{"claims wrong types", rawToken(hdr(Alg, key.ID), `{"jti":"x","exp":"tomorrow"}`, key), ErrMalformed},
		{"missing jti", rawToken(hdr(Alg, key.ID), `{"grants":[],"allowed_apis":["maps"]}`, key), ErrMalformed},
		{"too long", good + strings.Repeat("A", 17<<10), ErrMalformed},
	}
	for _, cacheBytes := range []int{-1, 0} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("cache=%d/%s", cacheBytes, tt.name), func(t *testing.T) {
				v := NewVerifier(keySet(key), nil, VerifierConfig{CacheBytes: cacheBytes})
				// Twice: the second call may be answered from the cache.
				for i := range 2 {
					c, err := v.Verify(tt.token, t0)
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("call %d: Verify err = %v, want %v", i+1, err, tt.wantErr)
					}
					if tt.wantErr == nil && (c == nil || c.ID == "") {
						t.Fatalf("call %d: Verify returned claims %+v", i+1, c)
					}
					cb, errb := v.VerifyBytes([]byte(tt.token), t0)
					if !errors.Is(errb, tt.wantErr) || (tt.wantErr == nil && cb.ID != c.ID) {
						t.Fatalf("call %d: VerifyBytes = %v, %v; want %v", i+1, cb, errb, tt.wantErr)
					}
				}
			})
		}
	}
}

func TestVerifyClaimsRoundTrip(t *testing.T) {
	key := newKey(t)
	want := testClaims("tok-1")
	want.NotBefore = t0.Add(-time.Minute).Unix()
	want.Referers = []string{"https://app.example.com"}
	want.Grants = append(want.Grants, Grant{Connection: "wh", Source: "SELECT * FROM t"})
	tok := sign(t, want, key)
	if !strings.HasPrefix(tok, "eyJ") {
		t.Errorf("token %q does not look like a JWT", tok)
	}
	got, err := NewVerifier(keySet(key), nil, VerifierConfig{}).Verify(tok, t0)
	if err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("claims = %s, want %s", gj, wj)
	}
	for _, name := range []string{`"jti"`, `"connection_name"`, `"source"`, `"allowed_apis"`, `"referers"`, `"exp"`, `"iat"`, `"nbf"`} {
		if !strings.Contains(string(wj), name) {
			t.Errorf("claims JSON %s lacks %s", wj, name)
		}
	}
}

func TestSignDeterministic(t *testing.T) {
	key := newKey(t)
	a, b := sign(t, testClaims("x"), key), sign(t, testClaims("x"), key)
	if a != b {
		t.Errorf("Sign twice = %q and %q, want equal", a, b)
	}
	if got := SignInput(SigningInput(a), key.Private); got != a {
		t.Errorf("SignInput(SigningInput(tok)) = %q, want %q", got, a)
	}
	if got := SigningInput("a.b"); got != "" {
		t.Errorf("SigningInput(two parts) = %q, want empty", got)
	}
	if _, err := Sign(&Claims{}, key); !errors.Is(err, ErrInvalidClaims) {
		t.Errorf("Sign without jti: err = %v, want ErrInvalidClaims", err)
	}
	if s := fmt.Sprintf("%v %+v %#v", key, key, key); strings.Contains(s, fmt.Sprint([]byte(key.Private[:8]))) || !strings.Contains(s, key.ID) {
		t.Errorf("SigningKey formats as %q", s)
	}
}

func TestVerifyCachedStateChanges(t *testing.T) {
	key, key2 := newKey(t), newKey(t)
	keys := keySet(key, key2)
	revoked := NewRevocationList()
	v := NewVerifier(keys, revoked, VerifierConfig{})
	c := testClaims("tok-1")
	tok := sign(t, c, key)
	tok2 := sign(t, testClaims("tok-2"), key2)

	mustVerify := func(step, token string, now time.Time, want error) {
		t.Helper()
		if _, err := v.Verify(token, now); !errors.Is(err, want) {
			t.Fatalf("%s: Verify err = %v, want %v", step, err, want)
		}
		if _, err := v.VerifyBytes([]byte(token), now); !errors.Is(err, want) {
			t.Fatalf("%s: VerifyBytes err = %v, want %v", step, err, want)
		}
	}
	mustVerify("fresh", tok, t0, nil)
	mustVerify("fresh 2", tok2, t0, nil)
	if n := v.cache.len(); n != 2 {
		t.Fatalf("cache holds %d tokens, want 2", n)
	}
	// Expiry is checked on cache hits.
	mustVerify("one second before exp", tok, time.Unix(c.ExpiresAt-1, 0), nil)
	mustVerify("at exp", tok, time.Unix(c.ExpiresAt, 0), ErrExpired)
	mustVerify("after exp", tok, t0.Add(2*time.Hour), ErrExpired)

	// Revocation of a cached token.
	revoked.Revoke("tok-1", c.Expiry())
	mustVerify("revoked", tok, t0, ErrRevoked)
	mustVerify("other token unaffected", tok2, t0, nil)
	revoked.Replace(nil)
	mustVerify("revocation list replaced", tok, t0, nil)
	revoked.Replace(map[string]time.Time{"tok-1": {}})
	mustVerify("revoked by Replace", tok, t0, ErrRevoked)
	revoked.Replace(nil)

	// Reloading the same keys keeps the cache.
	keys.SetKeys(map[string]ed25519.PublicKey{key.ID: key.Public(), key2.ID: key2.Public()})
	mustVerify("same keys reloaded", tok, t0, nil)
	if n := v.cache.len(); n != 2 {
		t.Errorf("cache holds %d tokens after reloading the same keys, want 2", n)
	}

	// Removing a key refuses its cached tokens.
	keys.SetKeys(map[string]ed25519.PublicKey{key2.ID: key2.Public()})
	mustVerify("key removed", tok, t0, ErrUnknownKey)
	mustVerify("other key kept", tok2, t0, nil)

	// Same kid, other key material: the cached token is re-checked.
	keys.SetKeys(map[string]ed25519.PublicKey{key.ID: key2.Public(), key2.ID: key2.Public()})
	mustVerify("key replaced", tok, t0, ErrBadSignature)

	keys.SetKeys(map[string]ed25519.PublicKey{key.ID: key.Public()})
	mustVerify("key restored", tok, t0, nil)
}

func TestRevocationListPrune(t *testing.T) {
	rl := NewRevocationList()
	rl.Revoke("a", t0)
	rl.Revoke("b", time.Time{})
	rl.Revoke("c", t0.Add(time.Hour))
	rl.Revoke("c", t0.Add(time.Hour))
	rl.Prune(t0)
	for jti, want := range map[string]bool{"a": false, "b": true, "c": true, "d": false} {
		if got := rl.Revoked(jti); got != want {
			t.Errorf("Revoked(%q) after Prune = %v, want %v", jti, got, want)
		}
	}
	if rl.Len() != 2 {
		t.Errorf("Len = %d, want 2", rl.Len())
	}
}

func TestCacheBounded(t *testing.T) {
	key := newKey(t)
	v := NewVerifier(keySet(key), nil, VerifierConfig{CacheBytes: 64 << 10})
	tokens := make([]string, 400)
	for i := range tokens {
		tokens[i] = sign(t, testClaims(fmt.Sprintf("tok-%d", i)), key)
		if _, err := v.Verify(tokens[i], t0); err != nil {
			t.Fatal(err)
		}
	}
	maxEntries := 64 << 10 / (2*len(tokens[0]) + 512)
	if n := v.cache.len(); n == 0 || n > maxEntries {
		t.Errorf("cache holds %d tokens, want 1..%d", n, maxEntries)
	}
	total := 0
	for i := range v.cache.shards {
		total += v.cache.shards[i].bytes
	}
	if total > 64<<10 {
		t.Errorf("cache accounts %d bytes, want <= %d", total, 64<<10)
	}
	// Evicted tokens still verify (from scratch).
	for _, tok := range tokens {
		if _, err := v.Verify(tok, t0); err != nil {
			t.Fatalf("Verify after eviction: %v", err)
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	key := newKey(t)
	keys := keySet(key)
	revoked := NewRevocationList()
	v := NewVerifier(keys, revoked, VerifierConfig{CacheBytes: 16 << 10})
	tokens := make([]string, 20)
	for i := range tokens {
		tokens[i] = sign(t, testClaims(fmt.Sprintf("tok-%d", i)), key)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				tok := tokens[(g+i)%len(tokens)]
				c, err := v.Verify(tok, t0)
				if err != nil && !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrUnknownKey) {
					t.Errorf("Verify: %v", err)
					return
				}
				if err == nil {
					_ = c.Allow(APIMaps, "pg", "countries")
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			revoked.Revoke(fmt.Sprintf("tok-%d", i%len(tokens)), time.Time{})
			if i%10 == 0 {
				keys.SetKeys(map[string]ed25519.PublicKey{key.ID: key.Public()})
				revoked.Replace(nil)
			}
		}
	}()
	wg.Wait()
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	key := newKey(t)
	c := testClaims("tok-1")
	c.Grants = append(c.Grants,
		Grant{Connection: "pg", Source: "SELECT name, geom FROM public.stores WHERE kind = 'shop'"},
		Grant{Connection: "pg", Source: "other.*"})
	c.Referers = []string{"https://app.example.com"}
	tok := sign(t, c, key)
	btok := []byte(tok)
	v := NewVerifier(keySet(key), NewRevocationList(), VerifierConfig{})
	claims, err := v.Verify(tok, t0)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]func(){
		"Verify cached": func() {
			if _, err := v.Verify(tok, t0); err != nil {
				t.Fatal(err)
			}
		},
		"VerifyBytes cached": func() {
			if _, err := v.VerifyBytes(btok, t0); err != nil {
				t.Fatal(err)
			}
		},
		"Verify cached expired": func() {
			if _, err := v.Verify(tok, t0.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
				t.Fatal(err)
			}
		},
		"Allow": func() {
			if err := claims.Allow(APIMaps, "pg", "Public.Countries"); err != nil {
				t.Fatal(err)
			}
		},
		"Allow denied": func() {
			if err := claims.Allow(APIMaps, "pg", "secret"); !errors.Is(err, ErrNoGrant) {
				t.Fatal(err)
			}
		},
		"AllowQuery": func() {
			if err := claims.AllowQuery(APISQL, "pg", "select name, geom\n  FROM public.stores WHERE kind = 'shop';"); err == nil {
				t.Fatal("case must matter outside names")
			}
			if err := claims.AllowQuery(APISQL, "pg", "SELECT name, geom\n  FROM public.stores WHERE kind = 'shop';"); err != nil {
				t.Fatal(err)
			}
		},
		"CheckReferer": func() {
			if err := claims.CheckReferer("https://app.example.com/map"); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, f := range checks {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	key := newKey(b)
	tok := sign(b, testClaims("tok-bench"), key)
	btok := []byte(tok)
	b.Run("cold", func(b *testing.B) {
		v := NewVerifier(keySet(key), NewRevocationList(), VerifierConfig{CacheBytes: -1})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tok, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
	v := NewVerifier(keySet(key), NewRevocationList(), VerifierConfig{})
	v.Verify(tok, t0)
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tok, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-bytes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.VerifyBytes(btok, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.VerifyBytes(btok, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkAllow(b *testing.B) {
	key := newKey(b)
	c := testClaims("tok-bench")
	c.Grants = append(c.Grants, Grant{Connection: "pg", Source: "SELECT * FROM stores WHERE kind = 'shop'"})
	claims, err := NewVerifier(keySet(key), nil, VerifierConfig{}).Verify(sign(b, c, key), t0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("table", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := claims.Allow(APIMaps, "pg", "public.countries"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := claims.AllowQuery(APIMaps, "pg", "SELECT *\n  FROM stores\n WHERE kind = 'shop'"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
