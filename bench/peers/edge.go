package peers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/proc"
)

// Import paths the edge build refers to.
const (
	// ModulePath is Meridian's Go module.
	ModulePath = "github.com/meridian-gis/meridian"
	// CacheHandlerModule is the Caddy ID of the meridian_cache handler.
	CacheHandlerModule = "http.handlers.meridian_cache"
)

// ModuleRoot returns the directory of Meridian's go.mod, searched from dir
// upwards.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("finding module root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if modulePath(b) != ModulePath {
				return "", fmt.Errorf("finding module root: %s/go.mod is module %q, not %s", d, modulePath(b), ModulePath)
			}
			return d, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("finding module root: %w", err)
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("finding module root: no go.mod above %s", dir)
		}
	}
}

// modulePath returns the path of the module line of a go.mod.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// EdgeBuild builds Meridian's edge binary (./edge: Caddy with the standard
// modules and Meridian's own) for a bench run.
type EdgeBuild struct {
	// Root is the module root (see ModuleRoot). Required.
	Root string
	// Out is the path of the binary to write. Required, absolute.
	Out string
	// Go is the go command. Default: "go" on PATH.
	Go string
}

// Edge is a built edge binary.
type Edge struct {
	// Path of the binary.
	Path string
	// Modules are the Caddy module IDs compiled in (`list-modules`).
	Modules []string
}

// HasModule reports whether the Caddy module id is compiled in.
func (e Edge) HasModule(id string) bool { return slices.Contains(e.Modules, id) }

// Build builds the binary and lists its modules. It takes a few seconds
// when the build cache is warm (the link dominates).
func (b EdgeBuild) Build(ctx context.Context) (Edge, error) {
	if b.Go == "" {
		b.Go = "go"
	}
	gobin, err := exec.LookPath(b.Go)
	if err != nil {
		return Edge{}, fmt.Errorf("building edge: %w (%w)", ErrNotInstalled, err)
	}
	if !filepath.IsAbs(b.Out) {
		return Edge{}, fmt.Errorf("building edge: output %q is not absolute", b.Out)
	}
	if _, err := runIn(ctx, b.Root, gobin, "build", "-o", b.Out, "./edge"); err != nil {
		return Edge{}, fmt.Errorf("building edge: %w", err)
	}
	mods, err := runIn(ctx, b.Root, b.Out, "list-modules")
	if err != nil {
		return Edge{}, fmt.Errorf("listing edge modules: %w", err)
	}
	return Edge{Path: b.Out, Modules: strings.Fields(mods)}, nil
}

// runIn runs a command in dir under a timeout and returns its stdout; a
// failure carries the tail of its stderr.
func runIn(ctx context.Context, dir, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("running %s %s: %w: %s", filepath.Base(path), strings.Join(args, " "), err, tail(stderr.String(), 1500))
	}
	return stdout.String(), nil
}

// EdgeSite is the one site of an edge Caddyfile: either a static_response
// of Respond (Caddy's ceiling for any handler), or meridian_cache in front
// of reverse_proxy to Upstream.
type EdgeSite struct {
	// Listen is the "127.0.0.1:port" to serve on. Required.
	Listen string
	// CertFile and KeyFile (PEM) serve HTTPS with HTTP/1.1 and HTTP/2
	// instead of plain HTTP/1.1. Optional, both or neither.
	CertFile string
	KeyFile  string
	// Respond is the body of a `respond` directive: text without
	// backticks or braces (braces would be placeholders). Exclusive with
	// Upstream.
	Respond []byte
	// Upstream is the "127.0.0.1:port" that `reverse_proxy` reaches behind
	// `meridian_cache`. Exclusive with Respond.
	Upstream string
	// CacheMaxSize is the meridian_cache store's max_size. Default:
	// "256MiB", the size Varnish gets.
	CacheMaxSize string
	// Admin is the "127.0.0.1:port" of Caddy's admin API, which also
	// serves meridian_cache's purge and stats endpoints
	// (/meridian/cache/purge, /meridian/cache/stats). Default: "", admin
	// off.
	Admin string
	// Meridian adds the `meridian` global option (the edge app: metadata
	// database and broker), through which meridian_cache subscribes to
	// the invalidations topic. Optional.
	Meridian *EdgeApp
	// WorkDir holds the Caddyfile and Caddy's data and config folders
	// (HOME and XDG_* point there). Required, absolute.
	WorkDir string
	// Lifetime bounds the process's life. Default: DefaultLifetime.
	Lifetime time.Duration
}

// EdgeApp is the `meridian` global option of an edge Caddyfile: the
// metadata database and the broker the node receives invalidations (and
// token revocations) from. Values are written literally into the
// Caddyfile, which lives in the scenario's scratch folder; all of them
// must be Caddyfile tokens (no whitespace, quotes, braces or '#').
type EdgeApp struct {
	// DatabaseURL is the migrated metadata database, a postgres:// URL on
	// a loopback host. Required.
	DatabaseURL string
	// Broker is "postgres" (messages in DatabaseURL) or "pubsub".
	// Default: postgres.
	Broker string
	// PubSubProject is the Pub/Sub project. Required with pubsub.
	PubSubProject string
	// PubSubEndpoint is the "127.0.0.1:port" of a Pub/Sub emulator or
	// pstest, spoken to in plain text (pubsub_insecure). Required with
	// pubsub: the bench never reaches Google.
	PubSubEndpoint string
	// Node names the node in its subscriptions ("edge-<node>-
	// invalidations"): letters, digits, '.', '_' and '-'. Required, since
	// the edge's default (the host name) would be shared by every edge of
	// a run.
	Node string
}

func (a *EdgeApp) setDefaults() {
	if a.Broker == "" {
		a.Broker = "postgres"
	}
}

func (a EdgeApp) validate() error {
	var errs []error
	if err := checkToken("edge database URL", a.DatabaseURL); err != nil {
		errs = append(errs, err)
	} else if u, err := url.Parse(a.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		errs = append(errs, fmt.Errorf("edge database URL: want postgres://…"))
	} else if err := load.CheckLoopback(u.Host); err != nil || u.Hostname() == "" {
		errs = append(errs, fmt.Errorf("edge database URL: host %q is not loopback", u.Host))
	}
	switch a.Broker {
	case "postgres":
		if a.PubSubProject != "" || a.PubSubEndpoint != "" {
			errs = append(errs, errors.New("edge: Pub/Sub settings with the postgres broker"))
		}
	case "pubsub":
		if err := checkToken("edge Pub/Sub project", a.PubSubProject); err != nil {
			errs = append(errs, err)
		}
		if err := checkLoopbackAddr("edge Pub/Sub endpoint", a.PubSubEndpoint); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("edge broker %q: want postgres or pubsub", a.Broker))
	}
	if !validNode(a.Node) {
		errs = append(errs, fmt.Errorf("edge node %q: want letters, digits, '.', '_' and '-'", a.Node))
	}
	return errors.Join(errs...)
}

// checkToken rejects values a Caddyfile cannot hold as one bare token.
func checkToken(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s: empty", what)
	}
	if strings.ContainsAny(v, " \t\n\r\"'`{}#\\") {
		return fmt.Errorf("%s %q: contains characters a Caddyfile token cannot hold", what, v)
	}
	return nil
}

// validNode reports whether node fits a broker subscription name.
func validNode(node string) bool {
	if node == "" || len(node) > 40 {
		return false
	}
	for _, c := range node {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func (s *EdgeSite) setDefaults() {
	if s.CacheMaxSize == "" {
		s.CacheMaxSize = "256MiB"
	}
	if s.Meridian != nil {
		app := *s.Meridian // the caller's value stays as it was
		app.setDefaults()
		s.Meridian = &app
	}
}

func (s EdgeSite) validate() error {
	var errs []error
	if err := checkLoopbackAddr("edge listen address", s.Listen); err != nil {
		errs = append(errs, err)
	}
	if err := checkPath("edge work dir", s.WorkDir); err != nil {
		errs = append(errs, err)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, errors.New("edge: set both CertFile and KeyFile, or neither"))
	}
	for _, f := range []string{s.CertFile, s.KeyFile} {
		if f != "" {
			errs = append(errs, checkPath("edge TLS file", f))
		}
	}
	switch {
	case (len(s.Respond) == 0) == (s.Upstream == ""):
		errs = append(errs, errors.New("edge: set exactly one of Respond and Upstream"))
	case s.Upstream != "":
		errs = append(errs, checkLoopbackAddr("edge upstream", s.Upstream))
	case bytes.ContainsAny(s.Respond, "`{}") || !utf8.Valid(s.Respond):
		errs = append(errs, errors.New("edge: the respond body must be UTF-8 text without backticks or braces"))
	}
	if strings.ContainsAny(s.CacheMaxSize, " \t\n{}") {
		errs = append(errs, fmt.Errorf("edge: bad cache size %q", s.CacheMaxSize))
	}
	if s.Admin != "" {
		errs = append(errs, checkLoopbackAddr("edge admin address", s.Admin))
	}
	if s.Meridian != nil {
		errs = append(errs, s.Meridian.validate())
	}
	return errors.Join(errs...)
}

var caddyfile = template.Must(template.New("Caddyfile").Parse(`# Rendered by Meridian's bench.
{
{{- if .Admin}}
	admin {{.Admin}}
{{- else}}
	admin off
{{- end}}
	persist_config off
	auto_https off
	default_bind 127.0.0.1
	grace_period 2s
	servers {
		protocols h1 h2
	}
{{- if .Upstream}}
	meridian_cache {
		max_size {{.CacheMaxSize}}
	}
{{- end}}
{{- with .Meridian}}
	meridian {
		database_url {{.DatabaseURL}}
		broker {{.Broker}}{{if .PubSubProject}} {{.PubSubProject}}{{end}}
{{- if .PubSubEndpoint}}
		pubsub_endpoint {{.PubSubEndpoint}}
		pubsub_insecure
{{- end}}
		node {{.Node}}
	}
{{- end}}
}

{{if .CertFile}}https{{else}}http{{end}}://{{.Listen}} {
	bind 127.0.0.1
{{- if .CertFile}}
	tls {{.CertFile}} {{.KeyFile}}
{{- end}}
{{- if .Upstream}}
	meridian_cache
	reverse_proxy {{.Upstream}}
{{- else}}
	respond ` + "`{{.Respond}}`" + ` 200
{{- end}}
}
`))

// Caddyfile renders the edge's configuration: config persistence and
// automatic HTTPS off, the admin API off unless Admin is set, every
// listener on 127.0.0.1, HTTP/1.1 and HTTP/2 (no HTTP/3), the meridian
// app when Meridian is set, and the one site.
func (s EdgeSite) Caddyfile() (string, error) {
	s.setDefaults()
	if err := s.validate(); err != nil {
		return "", fmt.Errorf("rendering Caddyfile: %w", err)
	}
	var b strings.Builder
	err := caddyfile.Execute(&b, map[string]any{
		"Listen": s.Listen, "CertFile": s.CertFile, "KeyFile": s.KeyFile,
		"Upstream": s.Upstream, "Respond": string(s.Respond), "CacheMaxSize": s.CacheMaxSize,
		"Admin": s.Admin, "Meridian": s.Meridian,
	})
	if err != nil {
		return "", fmt.Errorf("rendering Caddyfile: %w", err)
	}
	return b.String(), nil
}

// Start writes the site's Caddyfile into site.WorkDir and runs
// `<binary> run --config <Caddyfile> --adapter caddyfile` until Stop.
func (e Edge) Start(ctx context.Context, site EdgeSite) (*Server, error) {
	if site.Upstream != "" && !e.HasModule(CacheHandlerModule) {
		return nil, fmt.Errorf("starting edge: %s is not compiled in", CacheHandlerModule)
	}
	conf, err := site.Caddyfile()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(site.WorkDir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("writing Caddyfile: %w", err)
	}
	home := filepath.Join(site.WorkDir, "home")
	cmd := proc.Command{
		Path: e.Path,
		Args: []string{"run", "--config", path, "--adapter", "caddyfile"},
		Dir:  site.WorkDir,
		Env: []string{
			"HOME=" + home,
			"XDG_DATA_HOME=" + filepath.Join(home, "data"),
			"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		},
	}
	return startServer(ctx, "meridian", site.Listen, cmd, site.Lifetime)
}
