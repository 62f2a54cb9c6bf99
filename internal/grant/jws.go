package grant

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Alg is the only JWS algorithm Meridian signs with and accepts.
const Alg = "EdDSA"

var b64 = base64.RawURLEncoding.Strict()

// SigningKey is an Ed25519 private key with its key ID (the JWS kid).
type SigningKey struct {
	// ID is the kid written in token headers: 1 to 64 characters from
	// [A-Za-z0-9._-]. KeyID derives one from the public key.
	ID string
	// Private is the Ed25519 private key.
	Private ed25519.PrivateKey
}

// Public returns the key's public half.
func (k SigningKey) Public() ed25519.PublicKey {
	return k.Private.Public().(ed25519.PublicKey)
}

// String names the key by its ID only.
func (k SigningKey) String() string { return "grant.SigningKey(" + k.ID + ")" }

// GoString is String, so that %#v does not print the private key.
func (k SigningKey) GoString() string { return k.String() }

// NewSigningKey generates an Ed25519 key whose ID is KeyID of its public
// half.
func NewSigningKey() (SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generating ed25519 key: %w", err)
	}
	return SigningKey{ID: KeyID(pub), Private: priv}, nil
}

// KeyID derives a key ID from a public key: 12 base64url characters of
// its SHA-256, so the same key always gets the same kid.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return b64.EncodeToString(sum[:9])
}

type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ,omitempty"`
	Crit json.RawMessage `json:"crit,omitempty"`
}

// Sign returns the compact JWS for claims signed with key. It checks only
// what verification needs (a jti and a usable key); call Validate first
// for tokens issued to users. Ed25519 is deterministic: the same claims
// and key always give the same token.
func Sign(c *Claims, key SigningKey) (string, error) {
	if c.ID == "" {
		return "", fmt.Errorf("signing token: %w: missing jti", ErrInvalidClaims)
	}
	if !validKid(key.ID) {
		return "", fmt.Errorf("signing token: bad key ID %q", key.ID)
	}
	if len(key.Private) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("signing token: private key is %d bytes, want %d", len(key.Private), ed25519.PrivateKeySize)
	}
	h, err := json.Marshal(header{Alg: Alg, Kid: key.ID, Typ: "JWT"})
	if err != nil {
		return "", fmt.Errorf("signing token: encoding header: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("signing token: encoding claims: %w", err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	return SignInput(input, key.Private), nil
}

// SignInput completes a JWS signing input ("header.claims", the token up
// to its last dot) with an Ed25519 signature. Because Ed25519 signatures
// are deterministic, storing a token's signing input is enough to
// re-create the exact token later with the same private key.
func SignInput(input string, priv ed25519.PrivateKey) string {
	sig := ed25519.Sign(priv, []byte(input))
	return input + "." + b64.EncodeToString(sig)
}

// SigningInput returns the part of a token that is signed (everything
// before the last dot), or "" when token does not have three parts.
func SigningInput(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || strings.Count(token, ".") != 2 {
		return ""
	}
	return token[:i]
}

// parsed is a token split and decoded, before the signature is checked.
type parsed struct {
	kid     string
	input   string // header.claims
	sig     []byte
	payload []byte
}

// parse splits and decodes a token; errors wrap ErrMalformed.
func parse(token string, maxLen int) (parsed, error) {
	var p parsed
	if token == "" {
		return p, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(token) > maxLen {
		return p, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxLen)
	}
	i := strings.IndexByte(token, '.')
	j := strings.LastIndexByte(token, '.')
	if i < 0 || i == j || strings.IndexByte(token[i+1:j], '.') >= 0 {
		return p, fmt.Errorf("%w: want 3 dot-separated parts", ErrMalformed)
	}
	hb, err := b64.DecodeString(token[:i])
	if err != nil {
		return p, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return p, fmt.Errorf("%w: header is not JSON", ErrMalformed)
	}
	if h.Alg != Alg {
		return p, fmt.Errorf("%w: unsupported alg %q (want %s)", ErrMalformed, h.Alg, Alg)
	}
	if h.Typ != "" && !strings.EqualFold(h.Typ, "JWT") {
		return p, fmt.Errorf("%w: unsupported typ %q", ErrMalformed, h.Typ)
	}
	if len(h.Crit) > 0 {
		return p, fmt.Errorf("%w: crit header not supported", ErrMalformed)
	}
	if !validKid(h.Kid) {
		return p, fmt.Errorf("%w: missing or bad kid", ErrMalformed)
	}
	p.sig, err = b64.DecodeString(token[j+1:])
	if err != nil || len(p.sig) != ed25519.SignatureSize {
		return p, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrMalformed, ed25519.SignatureSize)
	}
	p.payload, err = b64.DecodeString(token[i+1 : j])
	if err != nil {
		return p, fmt.Errorf("%w: claims are not base64url", ErrMalformed)
	}
	p.kid = h.Kid
	p.input = token[:j]
	return p, nil
}

func validKid(kid string) bool {
	if len(kid) == 0 || len(kid) > 64 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
