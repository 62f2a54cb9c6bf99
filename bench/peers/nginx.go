package peers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/meridian-gis/meridian/bench/proc"
)

// Nginx is an nginx with proxy_cache in front of one backend, over TLS
// with HTTP/2 when CertFile and KeyFile are set. Every path nginx writes
// (pid, cache, temp files) is under WorkDir; the error log goes to stderr.
// When run as root the workers run as nobody: WorkDir and its parents
// must be searchable (mode 0755).
type Nginx struct {
	// Path of nginx. Default: "nginx" on PATH.
	Path string
	// Listen is the "127.0.0.1:port" to serve on. Required.
	Listen string
	// Backend is the "127.0.0.1:port" of the origin. Required.
	Backend string
	// CertFile and KeyFile (PEM) turn on TLS and HTTP/2. Optional, both
	// or neither, absolute.
	CertFile string
	KeyFile  string
	// WorkDir holds nginx.conf, the pid file, the cache and temp files.
	// Required, absolute.
	WorkDir string
	// Workers is worker_processes. Default: 0, "auto" (one per core).
	Workers int
	// CacheSize is the max_size of the cache on disk. Default: "256m".
	CacheSize string
	// Lifetime bounds the process's life. Default: DefaultLifetime.
	Lifetime time.Duration
}

// LookNginx returns the path of nginx, or an error wrapping
// ErrNotInstalled (apt-get install nginx).
func LookNginx(path string) (string, error) { return look("nginx", path) }

// NginxVersion returns "nginx/1.22.1", or "".
func NginxVersion(ctx context.Context, path string) string {
	v := version(ctx, path, "-v")
	return strings.TrimPrefix(v, "nginx version: ")
}

func (n *Nginx) setDefaults() {
	if n.Path == "" {
		n.Path = "nginx"
	}
	if n.CacheSize == "" {
		n.CacheSize = "256m"
	}
}

func (n Nginx) validate() error {
	if err := checkLoopbackAddr("nginx listen address", n.Listen); err != nil {
		return err
	}
	if err := checkLoopbackAddr("nginx backend", n.Backend); err != nil {
		return err
	}
	if err := checkPath("nginx work dir", n.WorkDir); err != nil {
		return err
	}
	if (n.CertFile == "") != (n.KeyFile == "") {
		return fmt.Errorf("nginx: set both CertFile and KeyFile, or neither")
	}
	if n.CertFile != "" {
		if err := checkPath("nginx cert file", n.CertFile); err != nil {
			return err
		}
		if err := checkPath("nginx key file", n.KeyFile); err != nil {
			return err
		}
	}
	if n.Workers < 0 {
		return fmt.Errorf("nginx: negative worker count %d", n.Workers)
	}
	if strings.ContainsAny(n.CacheSize, " \t\n;{}") {
		return fmt.Errorf("nginx: bad cache size %q", n.CacheSize)
	}
	return nil
}

var nginxConf = template.Must(template.New("nginx.conf").Parse(`# Rendered by Meridian's bench: nginx proxy_cache in front of the bench
# origin. Everything nginx writes is under {{.WorkDir}}.
daemon off;
master_process on;
worker_processes {{.Workers}};
pid {{.WorkDir}}/nginx.pid;
error_log stderr warn;

events {
	worker_connections 4096;
}

http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_timeout 75s;
	# The default (1000) would close every connection, HTTP/2 ones
	# included, after 1000 requests; the other servers never do.
	keepalive_requests 100000000;

	client_body_temp_path {{.WorkDir}}/client_body_temp;
	proxy_temp_path {{.WorkDir}}/proxy_temp;
	fastcgi_temp_path {{.WorkDir}}/fastcgi_temp;
	uwsgi_temp_path {{.WorkDir}}/uwsgi_temp;
	scgi_temp_path {{.WorkDir}}/scgi_temp;

	proxy_cache_path {{.WorkDir}}/cache levels=1:2 keys_zone=bench:10m max_size={{.CacheSize}} inactive=1h use_temp_path=off;

	upstream origin {
		server {{.Backend}};
		keepalive 16;
	}

	server {
		listen {{.Listen}}{{if .CertFile}} ssl http2{{end}};
{{- if .CertFile}}
		ssl_certificate {{.CertFile}};
		ssl_certificate_key {{.KeyFile}};
		ssl_protocols TLSv1.2 TLSv1.3;
{{- end}}

		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache bench;
			add_header X-Cache-Status $upstream_cache_status always;
		}
	}
}
`))

// Config renders nginx.conf.
func (n Nginx) Config() (string, error) {
	n.setDefaults()
	if err := n.validate(); err != nil {
		return "", fmt.Errorf("rendering nginx.conf: %w", err)
	}
	workers := "auto"
	if n.Workers > 0 {
		workers = strconv.Itoa(n.Workers)
	}
	var b strings.Builder
	err := nginxConf.Execute(&b, map[string]string{
		"WorkDir": n.WorkDir, "Workers": workers, "Listen": n.Listen, "Backend": n.Backend,
		"CertFile": n.CertFile, "KeyFile": n.KeyFile, "CacheSize": n.CacheSize,
	})
	if err != nil {
		return "", fmt.Errorf("rendering nginx.conf: %w", err)
	}
	return b.String(), nil
}

// Args returns nginx's arguments for the configuration at confPath: the
// prefix is WorkDir and the startup error log is stderr, so nothing under
// /etc/nginx or /var/log/nginx is read or written.
func (n Nginx) Args(confPath string) []string {
	return []string{"-p", n.WorkDir + "/", "-e", "stderr", "-c", confPath}
}

// Start writes nginx.conf into WorkDir, starts nginx and waits until it
// listens.
func (n Nginx) Start(ctx context.Context) (*Server, error) {
	n.setDefaults()
	conf, err := n.Config()
	if err != nil {
		return nil, err
	}
	path, err := LookNginx(n.Path)
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(n.WorkDir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("writing nginx.conf: %w", err)
	}
	return startServer(ctx, "nginx", n.Listen, proc.Command{Path: path, Args: n.Args(confPath)}, n.Lifetime)
}
