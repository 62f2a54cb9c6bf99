// Package grant defines Meridian's API access tokens: their format, how
// they are signed and verified, and what they allow. It is the contract
// between control (which issues tokens) and edge and tiles (which verify
// them offline on every request), so it imports only the standard library:
// never pgx, fasthttp or Caddy.
//
// # Token format
//
// A token is a compact JWS (a JWT) signed with Ed25519, so it looks like
// CARTO's "eyJ…" tokens:
//
//	base64url(header) "." base64url(claims) "." base64url(signature)
//
// The header is {"alg":"EdDSA","kid":"<key ID>","typ":"JWT"}; any other alg
// (none, HS256, RS256…) is refused, whatever the claims say. The claims
// use the registered JWT names for identity and time and the CARTO Tokens
// API names (CARTO_API.md §6) for what the token allows:
//
//	{
//	  "jti": "Yb3…",                  // token ID: revocation and metadata key
//	  "sub": "user-id",               // owner
//	  "org": "default",               // organization
//	  "iat": 1732096800,              // issued at, Unix seconds
//	  "nbf": 1732096800,              // optional: not valid before
//	  "exp": 1767139200,              // optional: absent = never expires
//	  "grants": [{"connection_name": "pg", "source": "public.stores"}],
//	  "allowed_apis": ["maps", "sql"],
//	  "referers": ["https://app.example.com"]   // optional
//	}
//
// # Verification
//
// A Verifier checks the signature against a KeySet (public keys by kid,
// swapped atomically when keys rotate), then expiry, not-before and a
// RevocationList (revoked token IDs pushed to every node). Verified
// tokens are kept in a bounded cache keyed by the token string, so a
// repeated Verify is a map lookup plus the time, key and revocation
// checks, without allocating.
//
// # Authorization
//
// Claims.Allow, AllowQuery and CheckReferer decide whether verified
// claims cover a request; see their docs for the matching rules.
package grant

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors returned by verification and authorization. Hot-path checks
// return them unwrapped (no allocation); the cold path wraps them with
// detail, so compare with errors.Is.
var (
	// ErrMalformed: not a well-formed Meridian token (wrong shape, bad
	// base64 or JSON, unsupported alg, missing kid or jti, too long).
	ErrMalformed = errors.New("grant: malformed token")
	// ErrBadSignature: the signature does not match the header and claims.
	ErrBadSignature = errors.New("grant: bad token signature")
	// ErrUnknownKey: the token's kid is not in the KeySet (unknown, or
	// removed since the token was last verified).
	ErrUnknownKey = errors.New("grant: unknown signing key")
	// ErrExpired: the token's exp has passed.
	ErrExpired = errors.New("grant: token expired")
	// ErrNotYetValid: the token's nbf is in the future.
	ErrNotYetValid = errors.New("grant: token not yet valid")
	// ErrRevoked: the token's jti is in the RevocationList.
	ErrRevoked = errors.New("grant: token revoked")
	// ErrNoGrant: no grant of the token covers the requested source.
	ErrNoGrant = errors.New("grant: source not granted")
	// ErrAPINotAllowed: the requested API is not in allowed_apis.
	ErrAPINotAllowed = errors.New("grant: API not allowed for this token")
	// ErrReferer: the token is restricted to referers and the request's
	// Origin/Referer is missing or not among them.
	ErrReferer = errors.New("grant: referer not allowed")
	// ErrInvalidClaims: Validate found claims that must not be issued.
	ErrInvalidClaims = errors.New("grant: invalid claims")
)

// API names one of the APIs a token may be used for (allowed_apis).
type API string

// The APIs of CARTO_API.md §6.2.
const (
	// APIMaps covers /v3/maps/** and the tiles (and, by the edge's
	// routing, the widget and stats calls made with a map's token).
	APIMaps API = "maps"
	// APISQL covers /v3/sql/{conn}/query and /model.
	APISQL API = "sql"
	// APIImports covers /v3/imports/**.
	APIImports API = "imports"
	// APILDS covers /v3/lds/** (geocoding, routing, isolines).
	APILDS API = "lds"
)

// KnownAPIs lists every API in the order of the bits used internally.
func KnownAPIs() []API { return []API{APIMaps, APISQL, APIImports, APILDS} }

// Valid reports whether a is a known API.
func (a API) Valid() bool { return apiBit(a) != 0 }

func apiBit(a API) uint8 {
	switch a {
	case APIMaps:
		return 1
	case APISQL:
		return 2
	case APIImports:
		return 4
	case APILDS:
		return 8
	}
	return 0
}

// Grant gives access to one source of one data connection.
type Grant struct {
	// Connection is the data connection's name.
	Connection string `json:"connection_name"`
	// Source is what the grant covers on that connection:
	//   - "*": everything, tables and any query;
	//   - "schema.*" (or "db.schema.*"): every table of that schema;
	//   - "schema.table", "table" or "db.schema.table": one table;
	//   - anything else is SQL query text, matched after whitespace
	//     normalization (see Claims.AllowQuery).
	Source string `json:"source"`
}

// Claims is a token's payload. Claims returned by a Verifier are shared
// with its cache: treat them as read-only.
type Claims struct {
	// ID is the token ID (jti): unique, used for revocation. Required.
	ID string `json:"jti"`
	// Subject is the owner (a user ID).
	Subject string `json:"sub,omitempty"`
	// Org is the owner's organization ID.
	Org string `json:"org,omitempty"`
	// IssuedAt is the issue time in Unix seconds (informational).
	IssuedAt int64 `json:"iat,omitempty"`
	// NotBefore, in Unix seconds, if set: the token is refused before it.
	NotBefore int64 `json:"nbf,omitempty"`
	// ExpiresAt, in Unix seconds: refused from that second on. Zero: the
	// token never expires.
	ExpiresAt int64 `json:"exp,omitempty"`
	// Grants list the sources the token may read.
	Grants []Grant `json:"grants"`
	// APIs the token may be used with.
	APIs []API `json:"allowed_apis"`
	// Referers, if not empty, restrict browser use to these origins (see
	// CheckReferer).
	Referers []string `json:"referers,omitempty"`

	prep *prepared // set by the Verifier before the claims are shared
}

// Expiry returns ExpiresAt as a time, or the zero time for "never".
func (c *Claims) Expiry() time.Time {
	if c.ExpiresAt == 0 {
		return time.Time{}
	}
	return time.Unix(c.ExpiresAt, 0)
}

// Validate reports every reason these claims must not be issued (all
// joined, each wrapping ErrInvalidClaims): a missing or too long ID, no
// grant, a malformed connection name, an empty or unclassifiable source,
// no or unknown APIs, an unparseable referer, exp not after nbf/iat.
func (c *Claims) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidClaims}, args...)...))
	}
	if c.ID == "" {
		bad("missing token ID (jti)")
	} else if len(c.ID) > 128 {
		bad("token ID longer than 128 bytes")
	}
	if len(c.Grants) == 0 {
		bad("at least one grant is required")
	}
	for i, g := range c.Grants {
		if !ValidConnectionName(g.Connection) {
			bad("grant %d: connection name %q must match [A-Za-z0-9][A-Za-z0-9_-]{0,62}", i+1, g.Connection)
		}
		src := strings.TrimSpace(g.Source)
		if src == "" {
			bad("grant %d: empty source", i+1)
			continue
		}
		if k, _ := classify(src); k == kindQuery && !strings.ContainsAny(src, " \t\n\r\f\v") {
			bad("grant %d: source %q is neither a table (schema.table), a pattern (schema.*, *) nor a SQL query", i+1, g.Source)
		}
	}
	if len(c.APIs) == 0 {
		bad("at least one API is required in allowed_apis")
	}
	for _, a := range c.APIs {
		if !a.Valid() {
			bad("unknown API %q (want one of maps, sql, imports, lds)", a)
		}
	}
	for _, r := range c.Referers {
		if _, ok := parseRefererPattern(r); !ok {
			bad("referer %q is not an origin such as https://app.example.com or *.example.com", r)
		}
	}
	if c.ExpiresAt < 0 || c.NotBefore < 0 || c.IssuedAt < 0 {
		bad("negative time")
	}
	if c.ExpiresAt != 0 && (c.ExpiresAt <= c.NotBefore || c.ExpiresAt <= c.IssuedAt) {
		bad("exp must be after iat and nbf")
	}
	return errors.Join(errs...)
}

// ValidConnectionName reports whether name is a well-formed data
// connection name: [A-Za-z0-9][A-Za-z0-9_-]{0,62}, as the connections
// table enforces.
func ValidConnectionName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// BearerToken returns a request's access token (CARTO_API.md §1.4): the
// Authorization header's token when its scheme is Bearer
// (case-insensitive), else the access_token query parameter. The literals
// "undefined" and "null" (what deck.gl and other clients send in session
// mode) mean none, in either place. It does not allocate; the result is
// a substring of one of its arguments. Every component that reads tokens
// (edge, tiles, control) uses it, so they agree on what a request carries.
func BearerToken(authorization, accessTokenParam string) string {
	if len(authorization) > 7 && strings.EqualFold(authorization[:7], "bearer ") {
		if tok := strings.TrimSpace(authorization[7:]); usableToken(tok) {
			return tok
		}
	}
	if usableToken(accessTokenParam) {
		return accessTokenParam
	}
	return ""
}

func usableToken(tok string) bool { return tok != "" && tok != "undefined" && tok != "null" }
