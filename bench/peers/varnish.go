package peers

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/bench/proc"
)

// Varnish is a varnishd in front of one backend, with the built-in VCL
// deciding what to cache (it stores what the backend marks cacheable).
// When run as root, varnishd drops to its own users (jail "unix"), so
// WorkDir and its parents must be searchable by them (mode 0755).
type Varnish struct {
	// Path of varnishd. Default: "varnishd" on PATH.
	Path string
	// Listen is the "127.0.0.1:port" of the client side (-a). Required.
	Listen string
	// Backend is the "127.0.0.1:port" of the origin. Required.
	Backend string
	// Storage is the -s argument. Default: "malloc,256m".
	Storage string
	// WorkDir holds the VCL file and the instance directory (-n).
	// Required, absolute.
	WorkDir string
	// Lifetime bounds the process's life. Default: DefaultLifetime.
	Lifetime time.Duration
}

// LookVarnishd returns the path of varnishd, or an error wrapping
// ErrNotInstalled (apt-get install varnish).
func LookVarnishd(path string) (string, error) { return look("varnishd", path) }

// VarnishVersion returns "varnish-7.1.1 revision …", or "".
func VarnishVersion(ctx context.Context, path string) string {
	v := version(ctx, path, "-V")
	if _, after, ok := strings.Cut(v, "("); ok {
		v = strings.TrimSuffix(after, ")")
	}
	return v
}

func (v *Varnish) setDefaults() {
	if v.Path == "" {
		v.Path = "varnishd"
	}
	if v.Storage == "" {
		v.Storage = "malloc,256m"
	}
}

func (v Varnish) validate() error {
	if err := checkLoopbackAddr("varnish listen address", v.Listen); err != nil {
		return err
	}
	if err := checkLoopbackAddr("varnish backend", v.Backend); err != nil {
		return err
	}
	return checkPath("varnish work dir", v.WorkDir)
}

// VCL renders the VCL: the backend only, so the built-in VCL (vcl_recv,
// vcl_backend_response …) caches the origin's responses as their
// Cache-Control allows.
func (v Varnish) VCL() (string, error) {
	v.setDefaults()
	if err := v.validate(); err != nil {
		return "", fmt.Errorf("rendering vcl: %w", err)
	}
	host, port, _ := net.SplitHostPort(v.Backend)
	return fmt.Sprintf(`vcl 4.1;

# Rendered by Meridian's bench. No subroutine is overridden: the built-in
# VCL caches GET/HEAD responses the backend marks cacheable
# (Cache-Control: public, max-age) and serves them as hits.
backend origin {
	.host = %q;
	.port = %q;
}
`, host, port), nil
}

// Args returns varnishd's arguments for the VCL at vclPath: foreground
// (-F), client listener, management listener on a random loopback port,
// storage, and the instance directory under WorkDir.
func (v Varnish) Args(vclPath string) []string {
	v.setDefaults()
	return []string{
		"-F",
		"-a", v.Listen,
		"-T", "127.0.0.1:0",
		"-f", vclPath,
		"-s", v.Storage,
		"-n", filepath.Join(v.WorkDir, "varnish"),
	}
}

// Start writes the VCL into WorkDir, starts varnishd and waits until it
// listens. varnishd compiles the VCL with the C compiler first, which
// takes a second or two.
func (v Varnish) Start(ctx context.Context) (*Server, error) {
	v.setDefaults()
	vcl, err := v.VCL()
	if err != nil {
		return nil, err
	}
	path, err := LookVarnishd(v.Path)
	if err != nil {
		return nil, err
	}
	vclPath := filepath.Join(v.WorkDir, "bench.vcl")
	if err := os.WriteFile(vclPath, []byte(vcl), 0o644); err != nil {
		return nil, fmt.Errorf("writing vcl: %w", err)
	}
	return startServer(ctx, "varnishd", v.Listen, proc.Command{Path: path, Args: v.Args(vclPath)}, v.Lifetime)
}
