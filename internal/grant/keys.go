package grant

import (
	"bytes"
	"crypto/ed25519"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// pubKey is one entry of a KeySet. Cache entries remember the *pubKey
// that verified them: a hit is valid only while the KeySet still maps the
// kid to that same pointer.
type pubKey struct {
	kid string
	key ed25519.PublicKey
}

// KeySet holds the public keys tokens may be signed with, by kid. Reads
// are lock-free; SetKeys swaps the whole set atomically. The zero value
// is an empty set.
type KeySet struct {
	m  atomic.Pointer[map[string]*pubKey]
	mu sync.Mutex // serializes SetKeys
}

// NewKeySet returns a KeySet holding keys (kid → public key).
func NewKeySet(keys map[string]ed25519.PublicKey) *KeySet {
	ks := &KeySet{}
	ks.SetKeys(keys)
	return ks
}

// SetKeys replaces the set with keys. Keys that are unchanged keep their
// identity, so tokens they verified stay cached; tokens of removed or
// changed keys are refused from now on, even when cached. Keys with a
// malformed kid or length are skipped.
func (ks *KeySet) SetKeys(keys map[string]ed25519.PublicKey) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	var old map[string]*pubKey
	if p := ks.m.Load(); p != nil {
		old = *p
	}
	m := make(map[string]*pubKey, len(keys))
	for kid, k := range keys {
		if !validKid(kid) || len(k) != ed25519.PublicKeySize {
			continue
		}
		if o, ok := old[kid]; ok && bytes.Equal(o.key, k) {
			m[kid] = o
			continue
		}
		m[kid] = &pubKey{kid: kid, key: bytes.Clone(k)}
	}
	ks.m.Store(&m)
}

// Key returns the public key with this kid.
func (ks *KeySet) Key(kid string) (ed25519.PublicKey, bool) {
	if p := ks.lookup(kid); p != nil {
		return p.key, true
	}
	return nil, false
}

// IDs returns the kids in the set, sorted.
func (ks *KeySet) IDs() []string {
	p := ks.m.Load()
	if p == nil {
		return nil
	}
	ids := make([]string, 0, len(*p))
	for kid := range *p {
		ids = append(ids, kid)
	}
	sort.Strings(ids)
	return ids
}

func (ks *KeySet) lookup(kid string) *pubKey {
	p := ks.m.Load()
	if p == nil {
		return nil
	}
	return (*p)[kid]
}

// RevocationList is the set of revoked token IDs, each with the token's
// expiry (so entries can be dropped once the token would be refused as
// expired anyway). Reads are lock-free (copy on write: revocations are
// rare, reads happen on every request). The zero value is empty.
type RevocationList struct {
	m  atomic.Pointer[map[string]int64] // jti → exp in Unix seconds, 0 = never
	mu sync.Mutex                       // serializes writers
}

// NewRevocationList returns an empty list.
func NewRevocationList() *RevocationList { return &RevocationList{} }

// Revoke adds a token ID. exp is the token's expiry (zero: never).
func (rl *RevocationList) Revoke(jti string, exp time.Time) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	var old map[string]int64
	if p := rl.m.Load(); p != nil {
		if e, ok := (*p)[jti]; ok && e == unix(exp) {
			return
		}
		old = *p
	}
	m := make(map[string]int64, len(old)+1)
	maps.Copy(m, old)
	m[jti] = unix(exp)
	rl.m.Store(&m)
}

// Replace swaps the whole list for revoked (jti → expiry, zero: never).
func (rl *RevocationList) Replace(revoked map[string]time.Time) {
	m := make(map[string]int64, len(revoked))
	for jti, exp := range revoked {
		m[jti] = unix(exp)
	}
	rl.mu.Lock()
	rl.m.Store(&m)
	rl.mu.Unlock()
}

// Prune drops entries of tokens expired at now.
func (rl *RevocationList) Prune(now time.Time) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	p := rl.m.Load()
	if p == nil {
		return
	}
	t := now.Unix()
	m := make(map[string]int64, len(*p))
	for jti, exp := range *p {
		if exp == 0 || exp > t {
			m[jti] = exp
		}
	}
	rl.m.Store(&m)
}

// Revoked reports whether jti is in the list.
func (rl *RevocationList) Revoked(jti string) bool {
	p := rl.m.Load()
	if p == nil {
		return false
	}
	_, ok := (*p)[jti]
	return ok
}

// Len returns the number of entries.
func (rl *RevocationList) Len() int {
	p := rl.m.Load()
	if p == nil {
		return 0
	}
	return len(*p)
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
