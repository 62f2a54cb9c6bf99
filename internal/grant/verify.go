package grant

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// VerifierConfig tunes a Verifier. Zero fields take the defaults given.
type VerifierConfig struct {
	// CacheBytes bounds the memory of the verified-token cache (estimated
	// as twice the token length plus 512 bytes per entry). When a shard is
	// full a random entry is evicted. Default: 32 MiB; negative disables
	// the cache (every Verify checks the signature).
	CacheBytes int `json:"cache_bytes,omitempty"`
	// MaxTokenBytes refuses longer tokens as malformed before any work.
	// Default: 16 KiB.
	MaxTokenBytes int `json:"max_token_bytes,omitempty"`
	// Leeway tolerates clock skew between the issuing and the verifying
	// node on nbf only; exp is strict. Default: 0.
	Leeway time.Duration `json:"-"`
}

const cacheShards = 32 // power of two

// Verifier verifies tokens against a KeySet and a RevocationList and
// caches verified tokens. It is safe for concurrent use.
type Verifier struct {
	keys    *KeySet
	revoked *RevocationList
	maxLen  int
	leeway  int64
	cache   *cache // nil: disabled
}

// NewVerifier returns a Verifier using keys and revoked, which the caller
// keeps updating (SetKeys, Revoke, Replace). Nil arguments get empty sets.
func NewVerifier(keys *KeySet, revoked *RevocationList, cfg VerifierConfig) *Verifier {
	if keys == nil {
		keys = &KeySet{}
	}
	if revoked == nil {
		revoked = &RevocationList{}
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = 32 << 20
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = 16 << 10
	}
	v := &Verifier{keys: keys, revoked: revoked, maxLen: cfg.MaxTokenBytes, leeway: int64(cfg.Leeway / time.Second)}
	if cfg.CacheBytes > 0 {
		v.cache = newCache(cfg.CacheBytes)
	}
	return v
}

// Keys returns the Verifier's KeySet.
func (v *Verifier) Keys() *KeySet { return v.keys }

// Revocations returns the Verifier's RevocationList.
func (v *Verifier) Revocations() *RevocationList { return v.revoked }

// Verify checks token at time now and returns its claims (shared and
// read-only). The error wraps one of ErrMalformed, ErrUnknownKey,
// ErrBadSignature, ErrExpired, ErrNotYetValid or ErrRevoked. A cached
// token costs a map lookup and no allocation.
func (v *Verifier) Verify(token string, now time.Time) (*Claims, error) {
	if v.cache != nil {
		h := maphash.String(v.cache.seed, token)
		if e := v.cache.get(h, token); e != nil {
			if !v.stale(e) {
				return e.claims, v.checkTimes(e.claims, now)
			}
			v.cache.remove(h, token, e)
		}
	}
	return v.verifySlow(token, now)
}

// VerifyBytes is Verify for a token held in a byte slice (a fasthttp
// header). It does not allocate on a cache hit and does not keep b.
func (v *Verifier) VerifyBytes(b []byte, now time.Time) (*Claims, error) {
	if v.cache != nil {
		h := maphash.Bytes(v.cache.seed, b)
		if e := v.cache.getBytes(h, b); e != nil {
			if !v.stale(e) {
				return e.claims, v.checkTimes(e.claims, now)
			}
			v.cache.remove(h, string(b), e)
		}
	}
	return v.verifySlow(string(b), now)
}

// stale reports whether a cached entry's key left the KeySet or changed:
// the caller drops the entry and verifies from scratch, which gives the
// precise error (ErrUnknownKey or ErrBadSignature).
func (v *Verifier) stale(e *entry) bool {
	return v.keys.lookup(e.key.kid) != e.key
}

func (v *Verifier) checkTimes(c *Claims, now time.Time) error {
	t := now.Unix()
	if c.ExpiresAt != 0 && t >= c.ExpiresAt {
		return ErrExpired
	}
	if c.NotBefore != 0 && t+v.leeway < c.NotBefore {
		return ErrNotYetValid
	}
	if v.revoked.Revoked(c.ID) {
		return ErrRevoked
	}
	return nil
}

func (v *Verifier) verifySlow(token string, now time.Time) (*Claims, error) {
	p, err := parse(token, v.maxLen)
	if err != nil {
		return nil, err
	}
	key := v.keys.lookup(p.kid)
	if key == nil {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, p.kid)
	}
	if !ed25519.Verify(key.key, []byte(p.input), p.sig) {
		return nil, fmt.Errorf("%w (kid %q)", ErrBadSignature, p.kid)
	}
	c := new(Claims)
	if err := json.Unmarshal(p.payload, c); err != nil {
		return nil, fmt.Errorf("%w: claims are not valid JSON: %v", ErrMalformed, err)
	}
	if c.ID == "" {
		return nil, fmt.Errorf("%w: missing jti", ErrMalformed)
	}
	c.prep = compile(c)
	if v.cache != nil {
		v.cache.put(maphash.String(v.cache.seed, token), token, &entry{claims: c, key: key})
	}
	if err := v.checkTimes(c, now); err != nil {
		return nil, err
	}
	return c, nil
}

// entry is one verified token. Entries are immutable once cached.
type entry struct {
	claims *Claims
	key    *pubKey // the KeySet entry that verified the signature
	cost   int
}

type cacheShard struct {
	mu    sync.RWMutex
	m     map[string]*entry
	bytes int
	_     [24]byte // keep shards on separate cache lines
}

// cache is a sharded map of verified tokens bounded in estimated bytes,
// with random eviction (Go map iteration order).
type cache struct {
	seed     maphash.Seed
	maxShard int
	shards   [cacheShards]cacheShard
}

func newCache(maxBytes int) *cache {
	c := &cache{seed: maphash.MakeSeed(), maxShard: max(maxBytes/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	return c
}

func (c *cache) get(h uint64, token string) *entry {
	s := &c.shards[h&(cacheShards-1)]
	s.mu.RLock()
	e := s.m[token]
	s.mu.RUnlock()
	return e
}

func (c *cache) getBytes(h uint64, token []byte) *entry {
	s := &c.shards[h&(cacheShards-1)]
	s.mu.RLock()
	e := s.m[string(token)]
	s.mu.RUnlock()
	return e
}

func (c *cache) put(h uint64, token string, e *entry) {
	e.cost = 2*len(token) + 512
	if e.cost > c.maxShard {
		return
	}
	s := &c.shards[h&(cacheShards-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[token]; ok {
		s.bytes -= old.cost
		delete(s.m, token)
	}
	for k, old := range s.m {
		if s.bytes+e.cost <= c.maxShard {
			break
		}
		s.bytes -= old.cost
		delete(s.m, k)
	}
	s.m[token] = e
	s.bytes += e.cost
}

// remove drops token if it still maps to e.
func (c *cache) remove(h uint64, token string, e *entry) {
	s := &c.shards[h&(cacheShards-1)]
	s.mu.Lock()
	if s.m[token] == e {
		delete(s.m, token)
		s.bytes -= e.cost
	}
	s.mu.Unlock()
}

// cacheLen returns the number of cached tokens (for tests).
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
