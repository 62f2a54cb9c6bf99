// Package basemaps serves the offline basemap's MapLibre styles and glyphs
// (/basemap/styles/{name}.json, /basemap/fonts/{fontstack}/{range}.pbf).
// The tiles come from the tiles engine like any table's; the styles carry
// a read-only token that grants the basemap schema only (minted once,
// kept in the tokens table as kind 'map'), since MapLibre sends no
// Authorization header.
package basemaps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/basemap"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Config configures the basemap.
type Config struct {
	// Connection is the data connection whose database holds the basemap
	// (schema meridian_basemap, loaded by meridian basemap load).
	// Default: local.
	Connection string `json:"connection,omitempty" env:"MERIDIAN_BASEMAP_CONNECTION"`
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.Connection == "" {
		c.Connection = "local"
	}
}

// Deps are the basemap routes' collaborators.
type Deps struct {
	Log    *slog.Logger
	Meta   *pgxpool.Pool
	Tokens *tokenstore.Store
}

// tokenName names the basemap's token in the tokens table.
const tokenName = "meridian basemap"

type api struct {
	cfg Config
	d   Deps

	mu    sync.Mutex
	token string // the basemap token, once known
}

// Routes registers the basemap routes on mux.
func Routes(mux *http.ServeMux, cfg Config, d Deps) {
	cfg.SetDefaults()
	a := &api{cfg: cfg, d: d}
	mux.HandleFunc("GET /basemap/styles/{name}", httpapi.Handler(d.Log, a.style))
	mux.HandleFunc("GET /basemap/fonts/{fontstack}/{range}", httpapi.Handler(d.Log, a.glyphs))
}

func (a *api) style(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimSuffix(r.PathValue("name"), ".json")
	tok, err := a.basemapToken(r.Context())
	if err != nil {
		return err
	}
	scheme := "http"
	if authn.IsHTTPS(r) {
		scheme = "https"
	}
	body, err := basemap.Style(name, basemap.StyleOptions{Base: scheme + "://" + r.Host, Connection: a.cfg.Connection, Token: tok})
	if err != nil {
		return httpapi.NotFound("style (have " + strings.Join(basemap.Styles, ", ") + ")")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Vary", "X-Forwarded-Proto")
	w.Write(body)
	return nil
}

func (a *api) glyphs(w http.ResponseWriter, r *http.Request) error {
	rng := strings.TrimSuffix(r.PathValue("range"), ".pbf")
	b, err := basemap.Glyphs(r.PathValue("fontstack"), rng)
	if errors.Is(err, basemap.ErrNoFont) {
		return httpapi.NotFound("font")
	}
	if err != nil {
		return httpapi.BadRequest("%v", err)
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Header().Set("Cache-Control", "public, max-age=604800")
	w.Write(b)
	return nil
}

// basemapToken returns the live basemap token, minting it the first time:
// maps API only, granting schema meridian_basemap of the connection.
func (a *api) basemapToken(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" {
		return a.token, nil
	}
	var id string
	err := a.d.Meta.QueryRow(ctx, `SELECT id FROM tokens WHERE kind = 'map' AND name = $1 AND revoked_at IS NULL
		AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at LIMIT 1`, tokenName).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		tok, _, err := a.d.Tokens.Create(ctx, tokenstore.Spec{Org: identity.DefaultOrg, Owner: "meridian", Name: tokenName, Kind: tokenstore.KindMap,
			Grants: []grant.Grant{{Connection: a.cfg.Connection, Source: basemap.Schema + ".*"}}, APIs: []grant.API{grant.APIMaps}})
		if err != nil {
			return "", fmt.Errorf("basemaps: minting the basemap token: %w", err)
		}
		a.token = tok
	case err != nil:
		return "", fmt.Errorf("basemaps: the basemap token: %w", err)
	default:
		if a.token, err = a.d.Tokens.TokenString(ctx, id); err != nil {
			return "", fmt.Errorf("basemaps: the basemap token: %w", err)
		}
	}
	return a.token, nil
}
