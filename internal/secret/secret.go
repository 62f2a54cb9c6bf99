// Package secret seals secrets at rest (data-connection credentials,
// token signing keys) with AES-256-GCM under a master Keyring.
//
// A Keyring holds one or more 32-byte master keys, each with an ID. The
// first key is the active one: Seal always uses it and returns its ID,
// which the caller stores next to the ciphertext. Open picks the key by
// that stored ID, so rotating the master key is: put the new key first,
// keep the old ones after it until everything was re-sealed (Reseal), then
// drop them.
//
// Configuration is one string (ParseKeyring):
//
//	k2:BASE64KEY,k1:BASE64KEY   # IDs given; k2 is active
//	BASE64KEY                   # one key; its ID is derived from a hash of it
//
// Keys are 32 random bytes in standard or URL-safe base64, padded or not
// (GenerateKey makes one). Key material never appears in errors, String,
// GoString or slog output: only IDs do.
//
// Ciphertext layout: version byte (1) | 12-byte random nonce | GCM output.
// The additional data passed to Seal must be passed again to Open; use it
// to bind a ciphertext to its row (e.g. the connection name) so that it
// cannot be copied to another row.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the length of a master key in bytes (AES-256).
const KeySize = 32

// version is the first byte of every ciphertext.
const version byte = 1

const nonceSize = 12

// Errors returned by this package. Messages never contain key material.
var (
	// ErrNoKey: the configuration holds no key at all.
	ErrNoKey = errors.New("secret: no encryption key configured")
	// ErrBadKey: a configured key is not valid (bad base64, wrong length,
	// bad or duplicate ID).
	ErrBadKey = errors.New("secret: bad encryption key")
	// ErrUnknownKeyID: a ciphertext was sealed with a key ID this keyring
	// does not hold (the key was removed from the configuration).
	ErrUnknownKeyID = errors.New("secret: key ID not in keyring")
	// ErrDecrypt: the ciphertext failed authentication: it was altered,
	// the additional data differs, or a different key carries the same ID.
	ErrDecrypt = errors.New("secret: decryption failed (wrong key, wrong additional data or tampered ciphertext)")
)

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring is an immutable set of master keys. Its zero value holds no key
// (Seal fails with ErrNoKey). It is safe for concurrent use.
type Keyring struct {
	active *key
	byID   map[string]*key
	ids    []string // in configuration order; ids[0] is active
}

// Key is one master key for NewKeyring.
type Key struct {
	// ID names the key in stored rows: 1 to 64 characters from
	// [A-Za-z0-9._-]. Empty: derived from a hash of Material.
	ID string
	// Material is the 32-byte key.
	Material []byte
}

// NewKeyring builds a keyring from keys; keys[0] is the active key.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	kr := &Keyring{byID: make(map[string]*key, len(keys))}
	for i, k := range keys {
		if len(k.Material) != KeySize {
			return nil, fmt.Errorf("%w: key %d%s is %d bytes, want %d", ErrBadKey, i+1, idNote(k.ID), len(k.Material), KeySize)
		}
		id := k.ID
		if id == "" {
			id = DeriveID(k.Material)
		}
		if !validID(id) {
			return nil, fmt.Errorf("%w: key %d: ID %q must be 1-64 characters from [A-Za-z0-9._-]", ErrBadKey, i+1, id)
		}
		if _, dup := kr.byID[id]; dup {
			return nil, fmt.Errorf("%w: key %d: ID %q is used twice", ErrBadKey, i+1, id)
		}
		block, err := aes.NewCipher(k.Material)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d%s: creating cipher", ErrBadKey, i+1, idNote(id))
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d%s: creating GCM", ErrBadKey, i+1, idNote(id))
		}
		kk := &key{id: id, aead: aead}
		kr.byID[id] = kk
		kr.ids = append(kr.ids, id)
		if i == 0 {
			kr.active = kk
		}
	}
	return kr, nil
}

// ParseKeyring parses a keyring configuration: comma-separated entries,
// each "ID:BASE64" or a bare "BASE64" (ID derived from the key's hash).
// The first entry is the active key. Surrounding whitespace and empty
// entries are ignored. Errors name the entry by position and ID, never by
// its key material.
func ParseKeyring(s string) (*Keyring, error) {
	var keys []Key
	n := 0
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n++
		id, b64, found := strings.Cut(entry, ":")
		if !found {
			id, b64 = "", entry
		}
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		if found && !validID(id) {
			return nil, fmt.Errorf("%w: entry %d: ID must be 1-64 characters from [A-Za-z0-9._-] before the ':'", ErrBadKey, n)
		}
		if b64 == "" {
			return nil, fmt.Errorf("%w: entry %d%s: empty key", ErrBadKey, n, idNote(id))
		}
		mat, ok := decodeBase64(b64)
		if !ok {
			return nil, fmt.Errorf("%w: entry %d%s: not valid base64", ErrBadKey, n, idNote(id))
		}
		if len(mat) != KeySize {
			return nil, fmt.Errorf("%w: entry %d%s: key decodes to %d bytes, want %d (generate one with secret.GenerateKey or `openssl rand -base64 32`)", ErrBadKey, n, idNote(id), len(mat), KeySize)
		}
		keys = append(keys, Key{ID: id, Material: mat})
	}
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	return NewKeyring(keys...)
}

// GenerateKey returns a new random 32-byte key in standard base64, ready
// for the keyring configuration.
func GenerateKey() string {
	var b [KeySize]byte
	rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	return base64.StdEncoding.EncodeToString(b[:])
}

// DeriveID returns the ID given to a key configured without one: "k"
// followed by 8 hex digits of the SHA-256 of a domain-separated copy of
// the key. It reveals nothing usable about the key.
func DeriveID(material []byte) string {
	h := sha256.New()
	h.Write([]byte("meridian secret key id\x00"))
	h.Write(material)
	return "k" + hex.EncodeToString(h.Sum(nil)[:4])
}

// ActiveID returns the ID of the key Seal uses ("" for an empty keyring).
func (kr *Keyring) ActiveID() string {
	if kr == nil || kr.active == nil {
		return ""
	}
	return kr.active.id
}

// IDs returns the key IDs in configuration order (the active one first).
func (kr *Keyring) IDs() []string {
	if kr == nil {
		return nil
	}
	return append([]string(nil), kr.ids...)
}

// Has reports whether the keyring holds a key with this ID.
func (kr *Keyring) Has(id string) bool {
	if kr == nil {
		return false
	}
	_, ok := kr.byID[id]
	return ok
}

// Seal encrypts plaintext with the active key, authenticating
// additionalData too, and returns the ciphertext and the ID of the key to
// store next to it.
func (kr *Keyring) Seal(plaintext, additionalData []byte) (ciphertext []byte, keyID string, err error) {
	if kr == nil || kr.active == nil {
		return nil, "", ErrNoKey
	}
	k := kr.active
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+k.aead.Overhead())
	out[0] = version
	rand.Read(out[1 : 1+nonceSize])
	out = k.aead.Seal(out, out[1:1+nonceSize], plaintext, additionalData)
	return out, k.id, nil
}

// Open decrypts a ciphertext made by Seal with the key named keyID and the
// same additionalData.
func (kr *Keyring) Open(ciphertext []byte, keyID string, additionalData []byte) ([]byte, error) {
	if kr == nil {
		return nil, ErrNoKey
	}
	k, ok := kr.byID[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: sealed with key %q, keyring has %s", ErrUnknownKeyID, keyID, strings.Join(kr.ids, ", "))
	}
	if len(ciphertext) < 1+nonceSize+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: ciphertext too short", ErrDecrypt)
	}
	if ciphertext[0] != version {
		return nil, fmt.Errorf("%w: unknown ciphertext version %d", ErrDecrypt, ciphertext[0])
	}
	pt, err := k.aead.Open(nil, ciphertext[1:1+nonceSize], ciphertext[1+nonceSize:], additionalData)
	if err != nil {
		return nil, fmt.Errorf("%w (key %q)", ErrDecrypt, keyID)
	}
	return pt, nil
}

// Reseal opens a ciphertext and seals it again with the active key, for
// re-encrypting rows after a master key rotation. When keyID already is
// the active key it returns the input unchanged.
func (kr *Keyring) Reseal(ciphertext []byte, keyID string, additionalData []byte) ([]byte, string, error) {
	if keyID == kr.ActiveID() {
		return ciphertext, keyID, nil
	}
	pt, err := kr.Open(ciphertext, keyID, additionalData)
	if err != nil {
		return nil, "", err
	}
	return kr.Seal(pt, additionalData)
}

// String describes the keyring by its key IDs only.
func (kr *Keyring) String() string {
	if kr == nil || kr.active == nil {
		return "secret.Keyring(empty)"
	}
	return fmt.Sprintf("secret.Keyring(active=%s, ids=%s)", kr.active.id, strings.Join(kr.ids, ","))
}

// GoString is String, so that %#v does not dump internals either.
func (kr *Keyring) GoString() string { return kr.String() }

// LogValue logs the keyring as its key IDs only.
func (kr *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("active", kr.ActiveID()), slog.Any("ids", kr.IDs()))
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func idNote(id string) string {
	if id == "" {
		return ""
	}
	return fmt.Sprintf(" (ID %q)", id)
}

// decodeBase64 accepts standard or URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	return b, err == nil
}

var _ slog.LogValuer = (*Keyring)(nil)
