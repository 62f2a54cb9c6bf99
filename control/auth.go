package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/meridian-gis/meridian/internal/grant"
)

// TokenVerifier verifies API access tokens; *tokenstore.Watcher
// implements it (reloading signing keys when a token names a new one).
type TokenVerifier interface {
	Verify(ctx context.Context, token string, now time.Time) (*grant.Claims, error)
}

// authenticate verifies the request's token and checks that it allows
// api and the request's origin. Errors are apiErrors (401 or 403).
func (s *Server) authenticate(r *http.Request, api grant.API) (*grant.Claims, error) {
	tok := grant.BearerToken(r.Header.Get("Authorization"), r.URL.Query().Get("access_token"))
	if tok == "" {
		return nil, apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Msg: "missing access token (Authorization: Bearer …)"}
	}
	claims, err := s.d.Tokens.Verify(r.Context(), tok, time.Now())
	if err != nil {
		msg := "invalid access token"
		switch {
		case errors.Is(err, grant.ErrExpired):
			msg = "access token expired"
		case errors.Is(err, grant.ErrRevoked):
			msg = "access token revoked"
		case errors.Is(err, grant.ErrNotYetValid):
			msg = "access token not valid yet"
		}
		return nil, apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Msg: msg, Err: err, quiet: true}
	}
	if !claims.HasAPI(api) {
		return nil, apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Msg: fmt.Sprintf("this token does not allow the %s API", api), quiet: true}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = r.Header.Get("Referer")
	}
	if err := claims.CheckReferer(origin); err != nil {
		return nil, apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Msg: "this token is not allowed from this origin", quiet: true}
	}
	return claims, nil
}

// noGrant is the 403 for a source the token does not cover.
func noGrant(conn, source string) apiError {
	return apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Msg: fmt.Sprintf("this token has no grant for %s on connection %s", source, conn), quiet: true}
}

// orgOf is the organization a token acts for.
func orgOf(c *grant.Claims) string {
	if c.Org == "" {
		return "default"
	}
	return c.Org
}

// handler adapts a handler returning an error: apiErrors are answered
// as JSON with their status (5xx ones logged with their cause), other
// errors as a 500 whose cause is logged, never sent.
func (s *Server) handler(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var ae apiError
		if !errors.As(err, &ae) {
			ae = apiError{Status: http.StatusInternalServerError, Code: "INTERNAL", Msg: "internal error", Err: err}
		}
		if ae.Status >= 500 {
			s.d.Log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", ae.Status), slog.Any("err", ae.Err))
		} else if !ae.quiet && ae.Err != nil {
			s.d.Log.LogAttrs(r.Context(), slog.LevelInfo, "request refused", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", ae.Status), slog.Any("err", ae.Err))
		}
		writeError(w, ae)
	}
}

// ldsAuthorize authenticates an LDS request (allowed_apis ∋ lds) and
// answers the refusal itself; it returns the token's organization.
func (s *Server) ldsAuthorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	claims, err := s.authenticate(r, grant.APILDS)
	if err != nil {
		var ae apiError
		if !errors.As(err, &ae) {
			ae = apiError{Status: http.StatusInternalServerError, Code: "INTERNAL", Msg: "internal error", Err: err}
		}
		writeError(w, ae)
		return "", false
	}
	return claims.Org, true
}
