package peers

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/bench/proc"
)

func TestVarnishVCL(t *testing.T) {
	v := Varnish{Listen: "127.0.0.1:6081", Backend: "127.0.0.1:8081", WorkDir: "/tmp/b"}
	got, err := v.VCL()
	if err != nil {
		t.Fatal(err)
	}
	want := `vcl 4.1;

# Rendered by Meridian's bench. No subroutine is overridden: the built-in
# VCL caches GET/HEAD responses the backend marks cacheable
# (Cache-Control: public, max-age) and serves them as hits.
backend origin {
	.host = "127.0.0.1";
	.port = "8081";
}
`
	if got != want {
		t.Errorf("VCL() =\n%s\nwant\n%s", got, want)
	}
	args := strings.Join(v.Args("/tmp/b/bench.vcl"), " ")
	if wantArgs := "-F -a 127.0.0.1:6081 -T 127.0.0.1:0 -f /tmp/b/bench.vcl -s malloc,256m -n /tmp/b/varnish"; args != wantArgs {
		t.Errorf("Args() = %q, want %q", args, wantArgs)
	}
}

func TestVarnishInvalid(t *testing.T) {
	tests := []struct {
		name string
		v    Varnish
		want string
	}{
		{"public listener", Varnish{Listen: "0.0.0.0:6081", Backend: "127.0.0.1:1", WorkDir: "/tmp"}, "not a loopback"},
		{"no port", Varnish{Listen: "127.0.0.1", Backend: "127.0.0.1:1", WorkDir: "/tmp"}, "want 127.0.0.1:port"},
		{"port zero", Varnish{Listen: "127.0.0.1:0", Backend: "127.0.0.1:1", WorkDir: "/tmp"}, "want 127.0.0.1:port"},
		{"remote backend", Varnish{Listen: "127.0.0.1:1", Backend: "10.0.0.1:80", WorkDir: "/tmp"}, "not a loopback"},
		{"hostname backend", Varnish{Listen: "127.0.0.1:1", Backend: "localhost:80", WorkDir: "/tmp"}, "not a loopback IP"},
		{"relative dir", Varnish{Listen: "127.0.0.1:1", Backend: "127.0.0.1:2", WorkDir: "tmp"}, "absolute"},
		{"dir with space", Varnish{Listen: "127.0.0.1:1", Backend: "127.0.0.1:2", WorkDir: "/tmp/a b"}, "characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.VCL()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("VCL() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNginxConfig(t *testing.T) {
	n := Nginx{Listen: "127.0.0.1:8443", Backend: "127.0.0.1:8081", WorkDir: "/tmp/n",
		CertFile: "/tmp/n/cert.pem", KeyFile: "/tmp/n/key.pem"}
	got, err := n.Config()
	if err != nil {
		t.Fatal(err)
	}
	want := `# Rendered by Meridian's bench: nginx proxy_cache in front of the bench
# origin. Everything nginx writes is under /tmp/n.
daemon off;
master_process on;
worker_processes auto;
pid /tmp/n/nginx.pid;
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

	client_body_temp_path /tmp/n/client_body_temp;
	proxy_temp_path /tmp/n/proxy_temp;
	fastcgi_temp_path /tmp/n/fastcgi_temp;
	uwsgi_temp_path /tmp/n/uwsgi_temp;
	scgi_temp_path /tmp/n/scgi_temp;

	proxy_cache_path /tmp/n/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=1h use_temp_path=off;

	upstream origin {
		server 127.0.0.1:8081;
		keepalive 16;
	}

	server {
		listen 127.0.0.1:8443 ssl http2;
		ssl_certificate /tmp/n/cert.pem;
		ssl_certificate_key /tmp/n/key.pem;
		ssl_protocols TLSv1.2 TLSv1.3;

		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache bench;
			add_header X-Cache-Status $upstream_cache_status always;
		}
	}
}
`
	if got != want {
		t.Errorf("Config() =\n%s\nwant\n%s", got, want)
	}
	if args, want := strings.Join(n.Args("/tmp/n/nginx.conf"), " "), "-p /tmp/n/ -e stderr -c /tmp/n/nginx.conf"; args != want {
		t.Errorf("Args() = %q, want %q", args, want)
	}

	// Plain HTTP, two workers, another cache size.
	n = Nginx{Listen: "127.0.0.1:8080", Backend: "127.0.0.1:8081", WorkDir: "/tmp/n", Workers: 2, CacheSize: "1g"}
	got, err = n.Config()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"\tlisten 127.0.0.1:8080;\n", "worker_processes 2;\n", "max_size=1g "} {
		if !strings.Contains(got, line) {
			t.Errorf("plain Config() lacks %q:\n%s", line, got)
		}
	}
	if strings.Contains(got, "ssl") {
		t.Errorf("plain Config() mentions ssl:\n%s", got)
	}
}

func TestNginxInvalid(t *testing.T) {
	ok := Nginx{Listen: "127.0.0.1:1", Backend: "127.0.0.1:2", WorkDir: "/tmp/n"}
	tests := []struct {
		name string
		edit func(*Nginx)
		want string
	}{
		{"cert without key", func(n *Nginx) { n.CertFile = "/tmp/c.pem" }, "both"},
		{"relative key", func(n *Nginx) { n.CertFile, n.KeyFile = "/tmp/c.pem", "k.pem" }, "absolute"},
		{"negative workers", func(n *Nginx) { n.Workers = -1 }, "negative"},
		{"cache size injection", func(n *Nginx) { n.CacheSize = "1g; evil" }, "cache size"},
		{"public backend", func(n *Nginx) { n.Backend = "192.0.2.1:80" }, "loopback"},
		{"dir with brace", func(n *Nginx) { n.WorkDir = "/tmp/{x}" }, "characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ok
			tt.edit(&n)
			_, err := n.Config()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Config() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestEdgeCaddyfile(t *testing.T) {
	static := EdgeSite{Listen: "127.0.0.1:8080", Respond: []byte("tile+/bytes"), WorkDir: "/tmp/e"}
	got, err := static.Caddyfile()
	if err != nil {
		t.Fatal(err)
	}
	want := "# Rendered by Meridian's bench.\n{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n" +
		"\tdefault_bind 127.0.0.1\n\tgrace_period 2s\n\tservers {\n\t\tprotocols h1 h2\n\t}\n}\n\n" +
		"http://127.0.0.1:8080 {\n\tbind 127.0.0.1\n\trespond `tile+/bytes` 200\n}\n"
	if got != want {
		t.Errorf("static Caddyfile() =\n%s\nwant\n%s", got, want)
	}

	cache := EdgeSite{Listen: "127.0.0.1:8443", Upstream: "127.0.0.1:8081", WorkDir: "/tmp/e",
		CertFile: "/tmp/e/cert.pem", KeyFile: "/tmp/e/key.pem"}
	got, err = cache.Caddyfile()
	if err != nil {
		t.Fatal(err)
	}
	want = "# Rendered by Meridian's bench.\n{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n" +
		"\tdefault_bind 127.0.0.1\n\tgrace_period 2s\n\tservers {\n\t\tprotocols h1 h2\n\t}\n" +
		"\tmeridian_cache {\n\t\tmax_size 256MiB\n\t}\n}\n\n" +
		"https://127.0.0.1:8443 {\n\tbind 127.0.0.1\n\ttls /tmp/e/cert.pem /tmp/e/key.pem\n" +
		"\tmeridian_cache\n\treverse_proxy 127.0.0.1:8081\n}\n"
	if got != want {
		t.Errorf("cache Caddyfile() =\n%s\nwant\n%s", got, want)
	}
}

func TestEdgeCaddyfileInvalid(t *testing.T) {
	tests := []struct {
		name string
		site EdgeSite
		want string
	}{
		{"neither", EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp"}, "exactly one"},
		{"both", EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp", Respond: []byte("x"), Upstream: "127.0.0.1:2"}, "exactly one"},
		{"backtick", EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp", Respond: []byte("a`b")}, "backticks"},
		{"placeholder", EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp", Respond: []byte("{http.request.uri}")}, "braces"},
		{"binary", EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp", Respond: []byte{0xff, 0xfe}}, "UTF-8"},
		{"public listener", EdgeSite{Listen: ":8080", WorkDir: "/tmp", Respond: []byte("x")}, "loopback"},
		{"remote upstream", EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp", Upstream: "198.51.100.1:80"}, "loopback"},
		{"key without cert", EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp", Respond: []byte("x"), KeyFile: "/k"}, "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.site.Caddyfile()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Caddyfile() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("// x\nmodule "+ModulePath+"\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "bench", "scenarios")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := ModuleRoot(deep); err != nil || got != root {
		t.Errorf("ModuleRoot(%s) = %q, %v; want %q", deep, got, err, root)
	}

	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ModuleRoot(other); err == nil || !strings.Contains(err.Error(), "example.com/other") {
		t.Errorf("ModuleRoot(other module) error = %v, want one naming it", err)
	}
	// The real tree: this package is bench/peers of the module.
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ModuleRoot("."); err != nil || filepath.Join(got, "bench", "peers") != here {
		t.Errorf("ModuleRoot(.) = %q, %v; want the parent of bench/peers", got, err)
	}
}

func TestModulePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"module example.com/a\n", "example.com/a"},
		{"// comment\n\nmodule \"example.com/q\"\ngo 1.26\n", "example.com/q"},
		{"\tmodule\texample.com/t\n", "example.com/t"},
		{"modulex example.com/no\n", ""},
		{"go 1.26\n", ""},
	}
	for _, tt := range tests {
		if got := modulePath([]byte(tt.in)); got != tt.want {
			t.Errorf("modulePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	c, err := SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(c.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("cert.pem holds no certificate block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: c.Pool}); err != nil {
			t.Errorf("Verify(%s) = %v, want the pool to trust it", name, err)
		}
	}
	if fi, err := os.Stat(c.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
}

func TestOriginCountsRequests(t *testing.T) {
	body := []byte("a 30 KiB tile, in spirit")
	o := startOrigin(t, body)
	for i := range 3 {
		resp, err := http.Get(o.URL + "/t/" + string(rune('0'+i)))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != string(body) || resp.Header.Get("Cache-Control") != "public, max-age=3600" ||
			resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Content-Type") != "application/vnd.mapbox-vector-tile" {
			t.Errorf("GET #%d: body %q, header %v; want the body, public max-age, Last-Modified, MVT type", i, got, resp.Header)
		}
	}
	if got := o.Requests(); got != 3 {
		t.Errorf("Requests() = %d, want 3", got)
	}
	if _, err := StartOrigin(OriginConfig{}); err == nil {
		t.Error("StartOrigin(no body) = nil error, want one")
	}
}

func TestStartServerReportsEarlyExit(t *testing.T) {
	addr, err := proc.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, err = startServer(context.Background(), "sh", addr,
		proc.Command{Path: "sh", Args: []string{"-c", "echo bad config line 3 >&2; exit 1"}}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "bad config line 3") || !strings.Contains(err.Error(), "exit code 1") {
		t.Errorf("startServer(exiting command) error = %v, want its stderr and exit code", err)
	}
}

func TestLookMissing(t *testing.T) {
	if _, err := LookVarnishd("/nonexistent/varnishd"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("LookVarnishd(missing) = %v, want ErrNotInstalled", err)
	}
	if _, err := LookNginx("/nonexistent/nginx"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("LookNginx(missing) = %v, want ErrNotInstalled", err)
	}
	_, err := EdgeBuild{Root: ".", Out: "/tmp/x", Go: "/nonexistent/go"}.Build(context.Background())
	if !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Build(no go) = %v, want ErrNotInstalled", err)
	}
}

func TestEdgeStartNeedsTheCacheModule(t *testing.T) {
	e := Edge{Path: "/nonexistent/meridian", Modules: []string{"http.handlers.static_response"}}
	_, err := e.Start(context.Background(), EdgeSite{Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2", WorkDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), CacheHandlerModule) {
		t.Errorf("Start(cache site, binary without the module) error = %v, want one naming %s", err, CacheHandlerModule)
	}
}

func TestEdgeCaddyfileAdminAndMeridian(t *testing.T) {
	tests := []struct {
		name string
		app  EdgeApp
		want string // the meridian block
	}{
		{
			name: "postgres by default",
			app:  EdgeApp{DatabaseURL: "postgres://postgres@127.0.0.1:5433/meta?sslmode=disable", Node: "bench-pg"},
			want: "\tmeridian {\n\t\tdatabase_url postgres://postgres@127.0.0.1:5433/meta?sslmode=disable\n" +
				"\t\tbroker postgres\n\t\tnode bench-pg\n\t}\n",
		},
		{
			name: "pubsub",
			app: EdgeApp{DatabaseURL: "postgres://postgres@127.0.0.1:5433/meta", Broker: "pubsub",
				PubSubProject: "bench", PubSubEndpoint: "127.0.0.1:8085", Node: "bench-ps"},
			want: "\tmeridian {\n\t\tdatabase_url postgres://postgres@127.0.0.1:5433/meta\n" +
				"\t\tbroker pubsub bench\n\t\tpubsub_endpoint 127.0.0.1:8085\n\t\tpubsub_insecure\n\t\tnode bench-ps\n\t}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := tt.app
			site := EdgeSite{Listen: "127.0.0.1:8080", Upstream: "127.0.0.1:8081", WorkDir: "/tmp/e",
				CacheMaxSize: "1GiB", Admin: "127.0.0.1:2999", Meridian: &app}
			got, err := site.Caddyfile()
			if err != nil {
				t.Fatal(err)
			}
			want := "# Rendered by Meridian's bench.\n{\n\tadmin 127.0.0.1:2999\n\tpersist_config off\n\tauto_https off\n" +
				"\tdefault_bind 127.0.0.1\n\tgrace_period 2s\n\tservers {\n\t\tprotocols h1 h2\n\t}\n" +
				"\tmeridian_cache {\n\t\tmax_size 1GiB\n\t}\n" + tt.want + "}\n\n" +
				"http://127.0.0.1:8080 {\n\tbind 127.0.0.1\n\tmeridian_cache\n\treverse_proxy 127.0.0.1:8081\n}\n"
			if got != want {
				t.Errorf("Caddyfile() =\n%s\nwant\n%s", got, want)
			}
			if app != tt.app {
				t.Errorf("Caddyfile() changed the caller's EdgeApp to %+v", app)
			}
		})
	}
}

func TestEdgeAppInvalid(t *testing.T) {
	ok := EdgeApp{DatabaseURL: "postgres://postgres@127.0.0.1:5433/meta", Broker: "pubsub",
		PubSubProject: "bench", PubSubEndpoint: "127.0.0.1:8085", Node: "n1"}
	tests := []struct {
		name string
		edit func(*EdgeApp)
		want string
	}{
		{"no database", func(a *EdgeApp) { a.DatabaseURL = "" }, "database URL: empty"},
		{"remote database", func(a *EdgeApp) { a.DatabaseURL = "postgres://u@db.example.com:5432/meta" }, "not loopback"},
		{"not postgres", func(a *EdgeApp) { a.DatabaseURL = "mysql://127.0.0.1:3306/x" }, "want postgres"},
		{"placeholder", func(a *EdgeApp) { a.DatabaseURL = "{env.MERIDIAN_DATABASE_URL}" }, "cannot hold"},
		{"unknown broker", func(a *EdgeApp) { a.Broker = "kafka" }, "want postgres or pubsub"},
		{"pubsub without endpoint", func(a *EdgeApp) { a.PubSubEndpoint = "" }, "Pub/Sub endpoint"},
		{"pubsub on google", func(a *EdgeApp) { a.PubSubEndpoint = "pubsub.googleapis.com:443" }, "loopback"},
		{"pubsub without project", func(a *EdgeApp) { a.PubSubProject = "" }, "project: empty"},
		{"pubsub settings on postgres", func(a *EdgeApp) { a.Broker = "postgres" }, "Pub/Sub settings"},
		{"no node", func(a *EdgeApp) { a.Node = "" }, "node"},
		{"bad node", func(a *EdgeApp) { a.Node = "a b" }, "node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := ok
			tt.edit(&app)
			site := EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp", Upstream: "127.0.0.1:2", Meridian: &app}
			_, err := site.Caddyfile()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Caddyfile() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	site := EdgeSite{Listen: "127.0.0.1:1", WorkDir: "/tmp", Upstream: "127.0.0.1:2", Admin: "0.0.0.0:2019"}
	if _, err := site.Caddyfile(); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Errorf("Caddyfile(public admin) error = %v, want one about the admin address", err)
	}
}

func TestOriginTags(t *testing.T) {
	o, err := StartOrigin(OriginConfig{Body: []byte("tile"), Tags: func(path string) []string {
		if path == "/untagged" {
			return nil
		}
		return []string{"src:local/" + strings.TrimPrefix(path, "/"), "conn:local"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop(context.Background()) })
	for path, want := range map[string]string{"/public.roads": "src:local/public.roads conn:local", "/untagged": ""} {
		resp, err := http.Get(o.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Surrogate-Key"); got != want {
			t.Errorf("GET %s: Surrogate-Key %q, want %q", path, got, want)
		}
	}
}
