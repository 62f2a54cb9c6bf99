package secret

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func mustParse(t *testing.T, s string) *Keyring {
	t.Helper()
	kr, err := ParseKeyring(s)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return kr
}

func TestRoundTrip(t *testing.T) {
	kr := mustParse(t, "k1:"+GenerateKey())
	tests := []struct {
		name   string
		pt, ad []byte
	}{
		{"empty", nil, nil},
		{"text", []byte(`{"url":"postgres://u:pw@h/db"}`), []byte("conn-a")},
		{"binary", bytes.Repeat([]byte{0, 1, 2, 255}, 1000), []byte{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, id, err := kr.Seal(tt.pt, tt.ad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if id != "k1" {
				t.Errorf("Seal key ID = %q, want k1", id)
			}
			if len(tt.pt) > 4 && bytes.Contains(ct, tt.pt[:len(tt.pt)/2]) {
				t.Errorf("ciphertext contains plaintext")
			}
			got, err := kr.Open(ct, id, tt.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.pt) {
				t.Errorf("Open = %q, want %q", got, tt.pt)
			}
			ct2, _, _ := kr.Seal(tt.pt, tt.ad)
			if bytes.Equal(ct, ct2) {
				t.Errorf("two Seals of the same plaintext are equal: nonce reuse")
			}
		})
	}
}

func TestTamperAndWrongAD(t *testing.T) {
	kr := mustParse(t, "k1:"+GenerateKey())
	pt, ad := []byte("postgres://user:hunter2@db/x"), []byte("conn-a")
	ct, id, err := kr.Seal(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		if _, err := kr.Open(bad, id, ad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Open with byte %d flipped: err = %v, want ErrDecrypt", i, err)
		}
	}
	if _, err := kr.Open(ct[:len(ct)-1], id, ad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open truncated: err = %v, want ErrDecrypt", err)
	}
	if _, err := kr.Open(ct[:5], id, ad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open very short: err = %v, want ErrDecrypt", err)
	}
	if _, err := kr.Open(ct, id, []byte("conn-b")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open with other AD: err = %v, want ErrDecrypt", err)
	}
	if _, err := kr.Open(ct, id, nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open with nil AD: err = %v, want ErrDecrypt", err)
	}
	if _, err := kr.Open(ct, "k9", ad); !errors.Is(err, ErrUnknownKeyID) {
		t.Errorf("Open with unknown key ID: err = %v, want ErrUnknownKeyID", err)
	}
	// Same ID, different key material.
	other := mustParse(t, "k1:"+GenerateKey())
	if _, err := other.Open(ct, id, ad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open with another key under the same ID: err = %v, want ErrDecrypt", err)
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := GenerateKey(), GenerateKey()
	old := mustParse(t, "k1:"+k1)
	ad := []byte("row-7")
	ct1, id1, err := old.Seal([]byte("secret one"), ad)
	if err != nil {
		t.Fatal(err)
	}

	rotated := mustParse(t, "k2:"+k2+", k1:"+k1)
	if got := rotated.ActiveID(); got != "k2" {
		t.Errorf("ActiveID = %q, want k2", got)
	}
	got, err := rotated.Open(ct1, id1, ad)
	if err != nil || string(got) != "secret one" {
		t.Errorf("Open old ciphertext after rotation = %q, %v; want %q", got, err, "secret one")
	}
	ct2, id2, err := rotated.Seal([]byte("secret two"), ad)
	if err != nil || id2 != "k2" {
		t.Fatalf("Seal after rotation: id %q, err %v; want k2", id2, err)
	}
	if _, err := old.Open(ct2, id2, ad); !errors.Is(err, ErrUnknownKeyID) {
		t.Errorf("old keyring opening new ciphertext: err = %v, want ErrUnknownKeyID", err)
	}

	// Reseal moves the old ciphertext to the active key.
	ct3, id3, err := rotated.Reseal(ct1, id1, ad)
	if err != nil || id3 != "k2" {
		t.Fatalf("Reseal: id %q, err %v; want k2", id3, err)
	}
	onlyNew := mustParse(t, "k2:"+k2)
	if got, err := onlyNew.Open(ct3, id3, ad); err != nil || string(got) != "secret one" {
		t.Errorf("Open resealed with new key only = %q, %v", got, err)
	}
}

func TestParseKeyring(t *testing.T) {
	raw := bytes.Repeat([]byte{0xfb, 0xff, 0xbe}, 11)[:32] // has + and / in std base64
	std := base64.StdEncoding.EncodeToString(raw)
	url := base64.URLEncoding.EncodeToString(raw)
	rawURL := base64.RawURLEncoding.EncodeToString(raw)
	if !strings.ContainsAny(std, "+/") || !strings.ContainsAny(url, "-_") {
		t.Fatalf("test key does not exercise both alphabets: %s %s", std, url)
	}
	short := base64.StdEncoding.EncodeToString(raw[:16])

	tests := []struct {
		name     string
		in       string
		wantIDs  []string
		wantErr  error
		errMatch string
	}{
		{name: "bare std", in: std, wantIDs: []string{DeriveID(raw)}},
		{name: "bare url", in: url, wantIDs: []string{DeriveID(raw)}},
		{name: "bare raw url", in: rawURL, wantIDs: []string{DeriveID(raw)}},
		{name: "with ids", in: "new:" + GenerateKey() + ",old:" + std, wantIDs: []string{"new", "old"}},
		{name: "spaces and trailing comma", in: "  a:" + std + " , ", wantIDs: []string{"a"}},
		{name: "empty", in: "", wantErr: ErrNoKey},
		{name: "only commas", in: " , ,", wantErr: ErrNoKey},
		{name: "wrong length", in: "k1:" + short, wantErr: ErrBadKey, errMatch: "16 bytes, want 32"},
		{name: "bad base64", in: "k1:not*base64!!", wantErr: ErrBadKey, errMatch: "not valid base64"},
		{name: "empty key", in: "k1:", wantErr: ErrBadKey, errMatch: "empty key"},
		{name: "bad id", in: "k 1:" + std, wantErr: ErrBadKey, errMatch: "ID must be"},
		{name: "duplicate id", in: "k1:" + std + ",k1:" + GenerateKey(), wantErr: ErrBadKey, errMatch: "used twice"},
		{name: "duplicate bare key", in: std + "," + url, wantErr: ErrBadKey, errMatch: "used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := ParseKeyring(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseKeyring(%q) err = %v, want %v", tt.in, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errMatch) {
					t.Errorf("error %q does not mention %q", err, tt.errMatch)
				}
				for _, part := range strings.Split(tt.in, ",") {
					_, mat, _ := strings.Cut(strings.TrimSpace(part), ":")
					if len(mat) >= 8 && strings.Contains(err.Error(), mat) {
						t.Errorf("error %q echoes key material", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyring(%q): %v", tt.in, err)
			}
			if got := kr.IDs(); fmt.Sprint(got) != fmt.Sprint(tt.wantIDs) {
				t.Errorf("IDs = %v, want %v", got, tt.wantIDs)
			}
			if got := kr.ActiveID(); got != tt.wantIDs[0] {
				t.Errorf("ActiveID = %q, want %q", got, tt.wantIDs[0])
			}
		})
	}
}

func TestNoKeyMaterialInOutput(t *testing.T) {
	k := GenerateKey()
	kr := mustParse(t, "k1:"+k)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("loaded", "keyring", kr)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", kr),
		"%+v":  fmt.Sprintf("%+v", kr),
		"%#v":  fmt.Sprintf("%#v", kr),
		"%s":   fmt.Sprintf("%s", kr),
		"slog": logs.String(),
	}
	raw, _ := base64.StdEncoding.DecodeString(k)
	for verb, out := range outputs {
		if strings.Contains(out, k) || strings.Contains(out, string(raw)) || strings.Contains(out, fmt.Sprintf("%x", raw[:8])) {
			t.Errorf("%s output %q contains key material", verb, out)
		}
		if !strings.Contains(out, "k1") {
			t.Errorf("%s output %q does not name the key ID", verb, out)
		}
	}
}

func TestEmptyKeyring(t *testing.T) {
	var kr *Keyring
	if _, _, err := kr.Seal([]byte("x"), nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil Keyring Seal err = %v, want ErrNoKey", err)
	}
	if _, _, err := (&Keyring{}).Seal([]byte("x"), nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("zero Keyring Seal err = %v, want ErrNoKey", err)
	}
	if _, err := NewKeyring(); !errors.Is(err, ErrNoKey) {
		t.Errorf("NewKeyring() err = %v, want ErrNoKey", err)
	}
}

func TestGenerateKey(t *testing.T) {
	a, b := GenerateKey(), GenerateKey()
	if a == b {
		t.Fatalf("GenerateKey returned the same key twice")
	}
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) != KeySize {
		t.Errorf("GenerateKey = %q: decodes to %d bytes, err %v; want %d", a, len(raw), err, KeySize)
	}
}
