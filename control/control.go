// Package control is Meridian's control plane: the management REST API
// (workspace, imports, tokens, accounts) on net/http. It reaches the
// other components only through the metadata database, the broker and
// HTTP.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/control/accounts"
	"github.com/meridian-gis/meridian/control/admin"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/basemaps"
	"github.com/meridian-gis/meridian/control/catalog"
	"github.com/meridian-gis/meridian/control/connections"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/control/imports"
	"github.com/meridian-gis/meridian/control/jobs"
	"github.com/meridian-gis/meridian/control/lds"
	"github.com/meridian-gis/meridian/control/maps"
	"github.com/meridian-gis/meridian/control/openapi"
	"github.com/meridian-gis/meridian/control/platform"
	"github.com/meridian-gis/meridian/control/sso"
	"github.com/meridian-gis/meridian/control/tokens"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/httpserver"
	"github.com/meridian-gis/meridian/internal/invalidate"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/internal/obs"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Config configures the control plane.
type Config struct {
	// Addr to listen on. Default: 127.0.0.1:8082.
	Addr string `json:"addr,omitempty" env:"MERIDIAN_CONTROL_ADDR"`
	// RequestTimeout bounds one API request's database work. Default: 30s.
	RequestTimeout config.Duration `json:"request_timeout,omitempty" env:"MERIDIAN_CONTROL_REQUEST_TIMEOUT"`
	// ShutdownTimeout bounds the graceful drain. Default: 20s.
	ShutdownTimeout config.Duration `json:"shutdown_timeout,omitempty" env:"MERIDIAN_CONTROL_SHUTDOWN_TIMEOUT"`
	// Jobs configures the imports and batch SQL APIs.
	Jobs JobsConfig `json:"jobs"`
	// AdminToken is the bearer secret of the admin API (/api/admin/)
	// until administrators sign in with the admin role; empty turns the
	// admin API off. Never logged.
	AdminToken string `json:"admin_token,omitempty" env:"MERIDIAN_CONTROL_ADMIN_TOKEN"`
	// Auth configures sessions and user tokens.
	Auth authn.Config `json:"auth"`
	// Accounts configures sign-up, sign-in, invites, resets and mail.
	Accounts accounts.Config `json:"accounts"`
	// SSO configures sign-in through an OpenID Connect provider.
	SSO sso.Config `json:"sso"`
	// LDS configures the Location Data Services API (/api/v3/lds/).
	LDS lds.Config `json:"lds"`
	// Basemap configures the offline basemap's styles (/basemap/).
	Basemap basemaps.Config `json:"basemap"`
}

// JobsConfig configures the imports and batch SQL APIs: the settings the
// workers read too (internal/jobspec: import folder, size cap, private
// addresses, SQL timeout cap) and the uploads' own.
type JobsConfig struct {
	jobspec.Config
	// UploadIdleTimeout abandons an upload when no byte arrived for this
	// long (the server's ReadTimeout does not apply to uploads). Default: 2m.
	UploadIdleTimeout config.Duration `json:"upload_idle_timeout,omitempty" env:"MERIDIAN_IMPORT_UPLOAD_IDLE_TIMEOUT"`
	// MaxUploadBytes is the former name of max_import_bytes, still read
	// from configuration files. Deprecated: use max_import_bytes.
	MaxUploadBytes int64 `json:"max_upload_bytes,omitempty"`
}

// SetDefaults fills zero fields.
func (c *JobsConfig) SetDefaults() {
	if c.MaxImportBytes == 0 && c.MaxUploadBytes > 0 {
		c.MaxImportBytes = c.MaxUploadBytes
	}
	c.Config.SetDefaults()
	if c.UploadIdleTimeout == 0 {
		c.UploadIdleTimeout = config.Duration(2 * time.Minute)
	}
}

// Validate reports every problem in c.
func (c JobsConfig) Validate() error {
	errs := []error{c.Config.Validate("control")}
	if c.UploadIdleTimeout < 0 {
		errs = append(errs, errors.New("control upload_idle_timeout: must not be negative (MERIDIAN_IMPORT_UPLOAD_IDLE_TIMEOUT)"))
	}
	return errors.Join(errs...)
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8082"
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = config.Duration(30 * time.Second)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = config.Duration(20 * time.Second)
	}
	c.Jobs.SetDefaults()
	c.Auth.SetDefaults()
	c.Accounts.SetDefaults()
	c.LDS.SetDefaults()
	c.Basemap.SetDefaults()
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.RequestTimeout < 0 {
		errs = append(errs, errors.New("control request_timeout: must not be negative (MERIDIAN_CONTROL_REQUEST_TIMEOUT)"))
	}
	if err := c.SSO.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Jobs.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.LDS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TokenVerifier verifies API access tokens; *tokenstore.Watcher
// implements it (reloading signing keys when a token names a new one).
type TokenVerifier = authn.TokenVerifier

// Deps are the control plane's collaborators, built by main.
type Deps struct {
	// Log receives logs. Required.
	Log *slog.Logger
	// Meta is the metadata database. Required.
	Meta *pgxpool.Pool
	// Broker publishes jobs and events. Optional until a route needs it.
	Broker broker.Broker
	// Tokens verifies API access tokens. The imports and batch SQL APIs
	// are served only when it is set.
	Tokens TokenVerifier
	// TokenStore mints API access tokens (a session's data token). Optional.
	TokenStore *tokenstore.Store
	// Connections stores data connections (the Connections API is served
	// only when it is set).
	Connections *dataconn.Store
	// Mailer overrides the SMTP mailer of Config.Accounts.Mail (tests). Optional.
	Mailer accounts.Mailer
	// Metrics registry. Optional.
	Metrics *prometheus.Registry
	// Version is reported by /api/version.
	Version string
	// Config is the process's effective configuration, shown (secrets
	// redacted) by the admin API. Optional.
	Config any
}

// Server is the control plane's HTTP server.
type Server struct {
	cfg    Config
	d      Deps
	health *obs.Health
	mux    *http.ServeMux
	auth   *authn.Authenticator
	pools  *dataconn.Pools // data connections of the Catalog API
	lds    *lds.Service    // nil without the imports/jobs APIs
}

// New builds the server and its routes.
func New(cfg Config, d Deps) (*Server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Log == nil || d.Meta == nil {
		return nil, errors.New("control: Log and Meta are required")
	}
	s := &Server{cfg: cfg, d: d, health: obs.NewHealth(), mux: http.NewServeMux()}
	s.health.Add("metadata_db", func(ctx context.Context) error { return d.Meta.Ping(ctx) })
	s.health.Mount(s.mux, d.Metrics)
	s.mux.HandleFunc("GET /api/version", s.version)
	openapi.Routes(s.mux, d.Version)
	var verifier authn.TokenVerifier
	if d.Tokens != nil {
		verifier = d.Tokens
	}
	s.auth = authn.New(cfg.Auth, d.Meta, verifier, d.Log.With("api", "authn"))
	single, err := sso.Routes(s.mux, cfg.SSO, sso.Deps{Log: d.Log.With("api", "sso"), Meta: d.Meta, Auth: s.auth, PublicURL: cfg.Accounts.PublicURL})
	if err != nil {
		return nil, err
	}
	ssoName := ""
	if single != nil {
		ssoName = single.Name()
	}
	accts := accounts.Routes(s.mux, cfg.Accounts, accounts.Deps{Log: d.Log.With("api", "accounts"), Meta: d.Meta, Auth: s.auth, Tokens: d.TokenStore, Mailer: d.Mailer, SSOName: ssoName})
	if d.TokenStore != nil {
		tokens.Routes(s.mux, tokens.Deps{Log: d.Log.With("api", "tokens"), Meta: d.Meta, Tokens: d.TokenStore, ClientIP: s.auth.ClientIP})
	}
	if d.Connections != nil {
		s.pools = dataconn.NewPools(d.Connections, dataconn.PoolsConfig{MaxConns: 4, ApplicationName: "meridian-catalog"}, d.Log.With("component", "dataconn"))
		var notifier *invalidate.Notifier
		if d.Broker != nil {
			notifier = invalidate.New(d.Meta, d.Broker)
		}
		catalog.Routes(s.mux, catalog.Deps{Log: d.Log.With("api", "catalog"), Meta: d.Meta, Pools: s.pools, Notifier: notifier, ClientIP: s.auth.ClientIP})
		connections.Routes(s.mux, connections.Deps{Log: d.Log.With("api", "connections"), Meta: d.Meta, Store: d.Connections, ClientIP: s.auth.ClientIP})
		if d.TokenStore != nil {
			basemaps.Routes(s.mux, cfg.Basemap, basemaps.Deps{Log: d.Log.With("api", "basemap"), Meta: d.Meta, Tokens: d.TokenStore})
			maps.Routes(s.mux, maps.Deps{Log: d.Log.With("api", "maps"), Meta: d.Meta, Tokens: d.TokenStore, Pools: s.pools, Notifier: notifier, ClientIP: s.auth.ClientIP})
		}
	}
	if d.Tokens != nil {
		imports.Routes(s.mux, imports.Deps{Log: d.Log.With("api", "imports"), Meta: d.Meta, Broker: d.Broker,
			Jobs: cfg.Jobs.Config, UploadIdleTimeout: cfg.Jobs.UploadIdleTimeout.D(), RequestTimeout: cfg.RequestTimeout.D()})
		jobs.Routes(s.mux, jobs.Deps{Log: d.Log.With("api", "jobs"), Meta: d.Meta, Broker: d.Broker,
			MaxSQLTimeout: cfg.Jobs.MaxSQLTimeout.D(), RequestTimeout: cfg.RequestTimeout.D()})
		ldsSvc, err := lds.New(cfg.LDS, lds.Deps{Log: d.Log, Meta: d.Meta, Authorize: ldsAuthorize})
		if err != nil {
			return nil, err
		}
		ldsSvc.Register(s.mux)
		s.lds = ldsSvc
	}
	pd := platform.Deps{Log: d.Log.With("api", "platform"), Meta: d.Meta, Require: adminOnly(cfg.AdminToken),
		Invites: accts, ClientIP: s.auth.ClientIP, Timeout: cfg.RequestTimeout.D()}
	if s.lds != nil {
		pd.Quotas = s.lds
	}
	if err := platform.Routes(s.mux, pd); err != nil {
		return nil, err
	}
	if d.Broker != nil {
		if err := admin.Mount(s.mux, admin.Deps{Log: d.Log.With("api", "admin"), Meta: d.Meta, Broker: d.Broker,
			Config: d.Config, Require: adminOnly(cfg.AdminToken), Timeout: cfg.RequestTimeout.D(), ClientIP: s.auth.ClientIP}); err != nil {
			return nil, err
		}
	}
	s.mux.HandleFunc("/api/", s.notFound)
	s.mux.HandleFunc("/accounts-api/", s.notFound)
	s.mux.HandleFunc("/workspace-api/", s.notFound)
	return s, nil
}

// Handler returns the server's routes (for tests).
func (s *Server) Handler() http.Handler { return s.auth.Middleware(s.mux) }

// Run listens on Config.Addr and serves until ctx ends, then drains.
func (s *Server) Run(ctx context.Context) error {
	srv, err := httpserver.Listen(httpserver.Config{Addr: s.cfg.Addr, ShutdownTimeout: s.cfg.ShutdownTimeout.D()}, s.Handler(), s.d.Log)
	if err != nil {
		return err
	}
	if s.pools != nil {
		go s.pools.Run(ctx) // re-opens pools of connections changed on other nodes
	}
	err = srv.Run(ctx, s.health.SetDraining)
	if s.pools != nil {
		s.pools.Close()
	}
	if s.lds != nil {
		s.lds.Close() // its own pool on the LDS database, if it opened one
	}
	return err
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"version": s.d.Version})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteError(w, &httpapi.Error{Status: http.StatusNotFound, Code: "NOT_FOUND", Msg: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
}

// ldsAuthorize authenticates an LDS request (an API access token allowing
// lds, control/authn) and answers the refusal itself; it returns the
// token's organization.
func ldsAuthorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, err := authn.APIToken(r, grant.APILDS)
	if err != nil {
		var e *httpapi.Error
		if !errors.As(err, &e) {
			e = &httpapi.Error{Status: http.StatusInternalServerError, Code: "INTERNAL", Msg: "internal error", Err: err}
		}
		httpapi.WriteError(w, e)
		return "", false
	}
	return tok.OrgID, true
}

// adminOnly lets through signed-in platform administrators (session or
// user token) and, for operators' scripts, callers presenting the admin
// bearer secret. An organization's admin manages their organization
// through the workspace API, not the install: the console's purges,
// broker and configuration span every organization.
func adminOnly(secret string) func(http.Handler) http.Handler {
	bySecret := admin.BearerSecret(secret)
	return func(next http.Handler) http.Handler {
		fallback := bySecret(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p, ok := authn.Caller(r); ok && p.IsUser() && p.PlatformAdmin {
				next.ServeHTTP(w, r)
				return
			}
			fallback.ServeHTTP(w, r)
		})
	}
}
