package pgcluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

// TestScramVerifierRFC7677 checks the verifier against the SCRAM-SHA-256
// exchange in RFC 7677 section 3: the stored and server keys derived from
// "pencil" must reproduce the client proof and server signature given there.
func TestScramVerifierRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v := scramVerifier("pencil", salt, 4096)

	// SCRAM-SHA-256$4096:salt$StoredKey:ServerKey
	head, keys, ok := strings.Cut(v, "$")
	if !ok || head != "SCRAM-SHA-256" {
		t.Fatalf("verifier %q: want the SCRAM-SHA-256$ prefix", v)
	}
	iterSalt, storedServer, ok := strings.Cut(keys, "$")
	iter, saltB64, _ := strings.Cut(iterSalt, ":")
	storedB64, serverB64, ok2 := strings.Cut(storedServer, ":")
	if !ok || !ok2 {
		t.Fatalf("verifier %q: malformed", v)
	}
	if n, _ := strconv.Atoi(iter); n != 4096 || saltB64 != "W22ZaJ0SNY7soEsUEjb6gQ==" {
		t.Errorf("iterations:salt = %s:%s, want 4096:W22ZaJ0SNY7soEsUEjb6gQ==", iter, saltB64)
	}
	stored, _ := base64.StdEncoding.DecodeString(storedB64)
	server, _ := base64.StdEncoding.DecodeString(serverB64)

	const authMessage = "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	mac := func(key []byte) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(authMessage))
		return h.Sum(nil)
	}
	if got, want := base64.StdEncoding.EncodeToString(mac(server)), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; got != want {
		t.Errorf("server signature = %s, want %s", got, want)
	}
	// The server checks a proof by recovering ClientKey = proof XOR
	// HMAC(StoredKey, AuthMessage) and comparing SHA-256(ClientKey) to StoredKey.
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := mac(stored)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	if sum := sha256.Sum256(clientKey); !hmac.Equal(sum[:], stored) {
		t.Errorf("the RFC 7677 client proof does not verify against StoredKey %s", storedB64)
	}
}

func TestPasswordVerifier(t *testing.T) {
	tests := []struct {
		name, password string
		hashed         bool
	}{
		{"random", RandomPassword(), true},
		{"punctuation", `a'b\c$d`, true},
		{"space", "two words", false},
		{"non-ASCII", "pässwort", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := passwordVerifier(tt.password)
			if hashed := strings.HasPrefix(got, "SCRAM-SHA-256$4096:"); hashed != tt.hashed {
				t.Errorf("passwordVerifier(%q) = %q, hashed %v, want %v", tt.password, got, hashed, tt.hashed)
			}
		})
	}
}

func TestQuoteLiteral(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "'plain'"},
		{"it's", "'it''s'"},
		{`back\slash`, `E'back\\slash'`},
		{`a'\b`, `E'a''\\b'`},
	}
	for _, tt := range tests {
		if got := quoteLiteral(tt.in); got != tt.want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRoleURL(t *testing.T) {
	got, err := roleURL("postgres://postgres:su@127.0.0.1:5433/postgres?sslmode=disable", "meta", "meridian", "p/w@x")
	if err != nil {
		t.Fatal(err)
	}
	if want := "postgres://meridian:p%2Fw%40x@127.0.0.1:5433/meta?sslmode=disable"; got != want {
		t.Errorf("roleURL = %s, want %s", got, want)
	}
	if _, err := roleURL("host=localhost", "meta", "r", "p"); err == nil {
		t.Error("roleURL(keyword/value string) succeeded, want an error")
	}
}
