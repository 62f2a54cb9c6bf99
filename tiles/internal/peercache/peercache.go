// Package peercache shares finished tiles between tiles nodes with
// groupcache: every key has one owner node (consistent hashing over the
// peer list) that computes and keeps it, and the other nodes ask the owner
// over HTTP instead of computing it again.
//
// It replaces groupcache's HTTPPool, which cannot be used here: it
// registers itself process-wide (a second pool panics), serves on
// http.DefaultServeMux. This Pool is an ordinary value mounted on the
// caller's own http.Server. A request carries only group and key: keys
// must be self-contained (the tiles engine puts the source key in them),
// so that an owner that never saw the source can still build it.
//
// groupcache keeps its peer pickers in a process-wide registry that can be
// set once; NewGroup installs a dispatcher there on first use and maps each
// group name to its Pool. Do not call groupcache.RegisterPeerPicker or
// NewHTTPPool in the same process.
package peercache

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang/groupcache"
	"github.com/golang/groupcache/consistenthash"
	pb "github.com/golang/groupcache/groupcachepb"
)

// Headers of a peer request.
const (
	// TokenHeader carries the shared peer token.
	TokenHeader = "X-Meridian-Peer-Token"
)

// MaxValue bounds a value read from a peer.
const MaxValue = 64 << 20

// Options configure a Pool. Zero fields take the defaults given.
type Options struct {
	// Self is this node's base URL as the other nodes reach it, e.g.
	// "http://10.0.0.5:8091". Required.
	Self string
	// BasePath is where peer requests are served. Default: "/_peers/".
	BasePath string
	// Replicas is the number of points per node on the hash ring.
	// Default: 64.
	Replicas int
	// Token, when set, is sent with every request and required on every
	// request served.
	Token string
	// Client makes peer requests. Default: a client without overall
	// timeout (each request is bounded by its context).
	Client *http.Client
}

// Pool picks the owner of a key among the peers and fetches from it.
type Pool struct {
	opts Options

	mu      sync.RWMutex
	peers   []string
	ring    *consistenthash.Map
	getters map[string]*getter
}

// New returns a Pool knowing only itself.
func New(o Options) *Pool {
	if o.BasePath == "" {
		o.BasePath = "/_peers/"
	}
	if o.Replicas <= 0 {
		o.Replicas = 64
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	o.Self = strings.TrimRight(o.Self, "/")
	p := &Pool{opts: o}
	p.Set(o.Self)
	return p
}

// Set replaces the peer list (base URLs; Self is always included).
func (p *Pool) Set(peers ...string) {
	list := []string{p.opts.Self}
	for _, s := range peers {
		s = strings.TrimRight(s, "/")
		if s != "" && !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	slices.Sort(list)
	ring := consistenthash.New(p.opts.Replicas, nil)
	ring.Add(list...)
	getters := make(map[string]*getter, len(list))
	for _, s := range list {
		getters[s] = &getter{pool: p, base: s + p.opts.BasePath}
	}
	p.mu.Lock()
	p.peers, p.ring, p.getters = list, ring, getters
	p.mu.Unlock()
}

// Peers returns the current peer list, sorted, Self included.
func (p *Pool) Peers() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Clone(p.peers)
}

// Owner returns the base URL of the node owning key.
func (p *Pool) Owner(key string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.ring.Get(key)
}

// PickPeer implements groupcache.PeerPicker.
func (p *Pool) PickPeer(key string) (groupcache.ProtoGetter, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	owner := p.ring.Get(key)
	if owner == "" || owner == p.opts.Self {
		return nil, false
	}
	return p.getters[owner], true
}

type getter struct {
	pool *Pool
	base string
}

// Get fetches a value from the peer.
func (g *getter) Get(ctx context.Context, in *pb.GetRequest, out *pb.GetResponse) error {
	u := g.base + url.PathEscape(in.GetGroup()) + "/" + url.PathEscape(in.GetKey())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if g.pool.opts.Token != "" {
		req.Header.Set(TokenHeader, g.pool.opts.Token)
	}
	res, err := g.pool.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("asking peer %s: %w", g.base, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		return fmt.Errorf("asking peer %s: %s", g.base, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, MaxValue+1))
	if err != nil {
		return fmt.Errorf("reading from peer %s: %w", g.base, err)
	}
	if len(b) > MaxValue {
		return fmt.Errorf("peer %s sent more than %d bytes", g.base, MaxValue)
	}
	out.Value = b
	return nil
}

// Handler serves peer requests: GET BasePath{group}/{key}, answered with
// get(ctx, key), where ctx ends when the asking node gives up. The group
// name is not used: each node has its own.
func (p *Pool) Handler(get func(ctx context.Context, key string) ([]byte, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.opts.Token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get(TokenHeader)), []byte(p.opts.Token)) != 1 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), p.opts.BasePath)
		_, escKey, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || r.Method != http.MethodGet {
			http.Error(w, "bad peer request", http.StatusBadRequest)
			return
		}
		key, err := url.PathUnescape(escKey)
		if err != nil {
			http.Error(w, "bad peer request", http.StatusBadRequest)
			return
		}
		b, err := get(r.Context(), key)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusServiceUnavailable
			}
			http.Error(w, "peer fill failed", status)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	})
}

var (
	registerOnce sync.Once
	pickers      sync.Map // group name → groupcache.PeerPicker
)

// NewGroup creates a groupcache group whose keys are spread over picker's
// peers. Group names are process-wide in groupcache: use a unique name per
// engine instance.
func NewGroup(name string, cacheBytes int64, getter groupcache.Getter, picker groupcache.PeerPicker) *groupcache.Group {
	registerOnce.Do(func() {
		groupcache.RegisterPerGroupPeerPicker(func(group string) groupcache.PeerPicker {
			if p, ok := pickers.Load(group); ok {
				return p.(groupcache.PeerPicker)
			}
			return groupcache.NoPeers{}
		})
	})
	pickers.Store(name, picker)
	return groupcache.NewGroup(name, cacheBytes, getter)
}

// Resolve returns the base URLs ("scheme://ip:port") of every address of
// host, sorted, for DNS-based discovery (e.g. a Kubernetes headless
// service).
func Resolve(ctx context.Context, r *net.Resolver, scheme, host, port string) ([]string, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolving peers %s: %w", host, err)
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, scheme+"://"+net.JoinHostPort(a, port))
	}
	slices.Sort(out)
	return out, nil
}
