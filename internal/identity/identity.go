// Package identity holds who a caller is: organizations' roles and the
// principal a request acts as, password hashing and the random secrets
// behind sessions, user tokens and single-use links. It knows no HTTP.
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// DefaultOrg is the organization of a fresh install; it owns what existed
// before organizations (migration 0001).
const DefaultOrg = "default"

// Role is a user's role in their organization (CARTO's names; "editor" is
// CARTO's "Builder").
type Role string

const (
	// RoleAdmin manages the organization: settings, users, roles, quotas.
	RoleAdmin Role = "admin"
	// RoleEditor makes maps, connections, imports and tokens.
	RoleEditor Role = "editor"
	// RoleViewer sees what is shared with them or with the organization.
	RoleViewer Role = "viewer"
	// RoleGuest sees only what is shared with them explicitly.
	RoleGuest Role = "guest"
)

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 4
	case RoleEditor:
		return 3
	case RoleViewer:
		return 2
	case RoleGuest:
		return 1
	}
	return 0
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r grants everything min grants.
func (r Role) AtLeast(min Role) bool { return r.Valid() && r.rank() >= min.rank() }

// ParseRole parses a role name; "builder" is accepted as CARTO's name for editor.
func ParseRole(s string) (Role, error) {
	if s == "builder" {
		return RoleEditor, nil
	}
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q (admin, editor, viewer, guest)", s)
	}
	return r, nil
}

// How a principal authenticated.
const (
	ViaSession   = "session"    // browser session cookie
	ViaUserToken = "user_token" // 24-hour user OAuth token
	ViaAPIToken  = "api_token"  // API access token (grants; no role)
)

// Principal is who a request acts as.
type Principal struct {
	// OrgID scopes every list and lookup.
	OrgID string
	// UserID is the user acting, or the creator of an API access token.
	UserID string
	// Email of the user ("" for API access tokens).
	Email string
	// Role of the user; "" for API access tokens, which carry grants instead.
	Role Role
	// Via is how the caller authenticated (ViaSession, …).
	Via string
	// PlatformAdmin is set for a signed-in operator of the install, who
	// uses the admin console and manages every organization (whatever
	// Role says about their own organization).
	PlatformAdmin bool
}

// IsUser reports whether p is a signed-in user (session or user token),
// as the management APIs require.
func (p Principal) IsUser() bool {
	return (p.Via == ViaSession || p.Via == ViaUserToken) && p.UserID != "" && p.Role.Valid()
}

// NewSecret returns a random secret with the given prefix (256 bits,
// base64url) and its SHA-256, which is what is stored.
func NewSecret(prefix string) (secret string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("identity: crypto/rand failed: " + err.Error())
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashSecret(secret)
}

// HashSecret is the stored form of a secret made by NewSecret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
