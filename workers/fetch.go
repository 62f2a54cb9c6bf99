package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/meridian-gis/meridian/internal/netguard"
)

// FetchConfig configures a Fetcher.
type FetchConfig struct {
	// AllowPrivate allows loopback, private, link-local and other
	// non-public addresses. Default: false.
	AllowPrivate bool
	// MaxBytes refuses a body larger than this. Default: 10 GiB.
	MaxBytes int64
	// Timeout bounds one download. Default: 1h.
	Timeout time.Duration
}

// Fetcher downloads import URLs. Unless AllowPrivate, every address it
// connects to is checked after DNS resolution, in the dialer (so DNS
// rebinding and redirects to internal hosts are refused as well as
// literal addresses), and no proxy is used (a proxy would hide the
// target's address from that check).
type Fetcher struct {
	cfg    FetchConfig
	client *http.Client
}

// FetchError is a failed download. Permanent errors (refused address,
// HTTP 4xx, too large, bad URL) fail the import at once; others are
// retried.
type FetchError struct {
	// URL fetched (without credentials).
	URL string
	// Msg explains the failure to the user.
	Msg string
	// Permanent is true when retrying cannot help.
	Permanent bool
	// Err is the cause, if any.
	Err error
}

func (e *FetchError) Error() string { return "fetching " + e.URL + ": " + e.Msg }
func (e *FetchError) Unwrap() error { return e.Err }

// BlockedAddrError is returned by the dialer for an address that is not
// public (the one guard, internal/netguard).
type BlockedAddrError = netguard.BlockedAddrError

// NewFetcher returns a Fetcher.
func NewFetcher(cfg FetchConfig) *Fetcher {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 10 << 30
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Hour
	}
	f := &Fetcher{cfg: cfg}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: f.control}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    30 * time.Second,
		ResponseHeaderTimeout:  time.Minute,
		MaxResponseHeaderBytes: 1 << 20,
		// The file is stored as served: the importer unpacks gzip itself.
		DisableCompression: true,
		MaxIdleConns:       4,
		IdleConnTimeout:    30 * time.Second,
	}
	f.client = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	return f
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("more than 10 redirects")
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to a %s: URL", req.URL.Scheme)
	}
	return nil
}

// control runs for every connection attempt, with the resolved address.
func (f *Fetcher) control(network, address string, _ syscall.RawConn) error {
	if f.cfg.AllowPrivate {
		return nil
	}
	return netguard.DialControl(network, address, nil)
}

// Fetch downloads rawURL into the file dst (created or truncated) and
// returns the file name the server suggests (Content-Disposition, else the
// URL path's base name), for format detection. progress, if set, is
// called as bytes arrive with the count so far and the total (-1 when
// unknown).
func (f *Fetcher) Fetch(ctx context.Context, rawURL, dst string, progress func(done, total int64)) (name string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", &FetchError{URL: redactURL(rawURL), Msg: "want an absolute http or https URL", Permanent: true, Err: err}
	}
	shown := redactURL(rawURL)
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", &FetchError{URL: shown, Msg: "bad request", Permanent: true, Err: err}
	}
	req.Header.Set("User-Agent", "meridian-import/1")
	res, err := f.client.Do(req)
	if err != nil {
		var blocked *BlockedAddrError
		if errors.As(err, &blocked) {
			return "", &FetchError{URL: shown, Msg: "refused: address " + blocked.Error() + " (MERIDIAN_IMPORT_ALLOW_PRIVATE)", Permanent: true, Err: err}
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", &FetchError{URL: shown, Msg: fmt.Sprintf("timed out after %v", f.cfg.Timeout), Err: err}
		}
		var ue *url.Error
		if errors.As(err, &ue) && strings.Contains(ue.Err.Error(), "redirect") {
			return "", &FetchError{URL: shown, Msg: ue.Err.Error(), Permanent: true, Err: err}
		}
		return "", &FetchError{URL: shown, Msg: "request failed: " + errText(err), Err: err}
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		perm := res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusRequestTimeout && res.StatusCode != http.StatusTooManyRequests
		return "", &FetchError{URL: shown, Msg: "server answered " + res.Status, Permanent: perm}
	}
	if res.ContentLength > f.cfg.MaxBytes {
		return "", &FetchError{URL: shown, Msg: fmt.Sprintf("file too large: %d bytes, the limit is %d", res.ContentLength, f.cfg.MaxBytes), Permanent: true}
	}
	name = suggestedName(res)
	out, err := os.Create(dst)
	if err != nil {
		return "", fmt.Errorf("creating download file: %w", err)
	}
	pr := &countingReader{r: io.LimitReader(res.Body, f.cfg.MaxBytes+1), total: res.ContentLength, progress: progress}
	_, err = io.Copy(out, pr)
	if cerr := out.Close(); err == nil && cerr != nil {
		return "", fmt.Errorf("writing download file: %w", cerr)
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", &FetchError{URL: shown, Msg: fmt.Sprintf("timed out after %v", f.cfg.Timeout), Err: err}
		}
		return "", &FetchError{URL: shown, Msg: "download interrupted: " + errText(err), Err: err}
	}
	if pr.n > f.cfg.MaxBytes {
		return "", &FetchError{URL: shown, Msg: fmt.Sprintf("file too large: more than %d bytes", f.cfg.MaxBytes), Permanent: true}
	}
	if res.ContentLength >= 0 && pr.n != res.ContentLength {
		return "", &FetchError{URL: shown, Msg: fmt.Sprintf("download truncated: %d of %d bytes", pr.n, res.ContentLength)}
	}
	return name, nil
}

type countingReader struct {
	r        io.Reader
	n, total int64
	progress func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n, c.total)
	}
	return n, err
}

// suggestedName picks a file name for format detection.
func suggestedName(res *http.Response) string {
	if cd := res.Header.Get("Content-Disposition"); cd != "" {
		if _, params, err := mime.ParseMediaType(cd); err == nil {
			if fn := path.Base(strings.ReplaceAll(params["filename"], `\`, "/")); fn != "" && fn != "." && fn != "/" {
				return fn
			}
		}
	}
	if b := path.Base(res.Request.URL.Path); b != "" && b != "." && b != "/" {
		return b
	}
	return "download"
}

// redactURL drops credentials from a URL for messages and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return truncate(raw, 200)
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return truncate(u.String(), 500)
}

// errText is err's message without the URL repeated by url.Error.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
