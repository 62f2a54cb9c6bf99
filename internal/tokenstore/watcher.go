package tokenstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/grant"
)

// ErrBadMessage: a revocation message could not be understood.
var ErrBadMessage = errors.New("tokenstore: bad revocation message")

// WatcherConfig tunes a Watcher. Zero fields take the defaults given.
type WatcherConfig struct {
	// Interval between full reloads of keys and revocations, the backstop
	// for missed revocation messages and rotated keys. Default: 30s.
	Interval time.Duration
	// KeyReloadInterval is the least time between two key reloads caused
	// by tokens with an unknown kid, so that junk tokens cannot hammer the
	// database. Default: 5s.
	KeyReloadInterval time.Duration
}

// Watcher keeps a grant.Verifier's keys and revocations in line with the
// metadata database on one node: Reload at start, HandleRevocation for
// each message of broker.TopicTokenRevocations, Run for the periodic
// reload, and Verify (instead of the Verifier's) to reload keys at once
// when a token names a kid the node does not know yet.
type Watcher struct {
	store *Store
	v     *grant.Verifier
	cfg   WatcherConfig
	log   *slog.Logger

	mu     sync.Mutex // guards seq, recent; serializes applying revocations
	seq    uint64
	recent []revocation // received by HandleRevocation since the last reload began

	keyMu      sync.Mutex // serializes key reloads
	keysLoaded time.Time
}

type revocation struct {
	seq uint64
	jti string
	exp time.Time
}

// NewWatcher returns a Watcher updating v from store. store needs no
// keyring or publisher. A nil log discards.
func NewWatcher(store *Store, v *grant.Verifier, cfg WatcherConfig, log *slog.Logger) *Watcher {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.KeyReloadInterval <= 0 {
		cfg.KeyReloadInterval = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{store: store, v: v, cfg: cfg, log: log}
}

// Verifier returns the Verifier the Watcher keeps current.
func (w *Watcher) Verifier() *grant.Verifier { return w.v }

// Reload loads every public key and every live revocation and swaps them
// into the Verifier. Revocations received by HandleRevocation while the
// reload ran are kept.
func (w *Watcher) Reload(ctx context.Context) error {
	if err := w.reloadKeys(ctx); err != nil {
		return err
	}
	w.mu.Lock()
	start := w.seq
	w.mu.Unlock()
	revs, err := w.store.Revocations(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rl := w.v.Revocations()
	rl.Replace(revs)
	// A message may have arrived after the query's snapshot: apply it
	// again. Messages received before the reload began are in revs (Revoke
	// commits before it publishes).
	kept := w.recent[:0]
	for _, r := range w.recent {
		if r.seq > start {
			rl.Revoke(r.jti, r.exp)
			kept = append(kept, r)
		}
	}
	w.recent = kept
	return nil
}

func (w *Watcher) reloadKeys(ctx context.Context) error {
	w.keyMu.Lock()
	defer w.keyMu.Unlock()
	return w.reloadKeysLocked(ctx)
}

func (w *Watcher) reloadKeysLocked(ctx context.Context) error {
	keys, err := w.store.PublicKeys(ctx)
	if err != nil {
		return err
	}
	ks := w.v.Keys()
	before := ks.IDs()
	ks.SetKeys(keys)
	if after := ks.IDs(); !slices.Equal(before, after) {
		w.log.LogAttrs(ctx, slog.LevelInfo, "token signing keys loaded", slog.Any("kids", after))
	}
	w.keysLoaded = time.Now()
	return nil
}

// Run reloads at start and then every Interval until ctx is done; errors
// are logged and retried at the next tick. It returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		if err := w.Reload(ctx); err != nil && ctx.Err() == nil {
			w.log.LogAttrs(ctx, slog.LevelWarn, "reloading token keys and revocations", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// HandleRevocation applies one message of broker.TopicTokenRevocations
// (a RevocationMessage). It is idempotent. A message that cannot be
// decoded returns an error wrapping ErrBadMessage (so the broker
// dead-letters it after its retries).
func (w *Watcher) HandleRevocation(ctx context.Context, m *broker.Message) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrBadMessage)
	}
	if m.Topic != "" && m.Topic != broker.TopicTokenRevocations {
		return fmt.Errorf("%w: message %s is on topic %q, want %q", ErrBadMessage, m.ID, m.Topic, broker.TopicTokenRevocations)
	}
	var rm RevocationMessage
	if err := json.Unmarshal(m.Data, &rm); err != nil {
		return fmt.Errorf("%w: message %s: %v", ErrBadMessage, m.ID, err)
	}
	if rm.JTI == "" {
		return fmt.Errorf("%w: message %s has no jti", ErrBadMessage, m.ID)
	}
	var exp time.Time
	if rm.Exp > 0 {
		exp = time.Unix(rm.Exp, 0)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.v.Revocations().Revoke(rm.JTI, exp)
	w.seq++
	w.recent = append(w.recent, revocation{seq: w.seq, jti: rm.JTI, exp: exp})
	w.log.LogAttrs(ctx, slog.LevelDebug, "token revoked", slog.String("jti", rm.JTI))
	return nil
}

// Verify is the Verifier's Verify, except that a token signed with a kid
// the node does not know triggers a key reload (at most one per
// KeyReloadInterval; concurrent callers share it) and a second attempt.
// ctx bounds that reload.
func (w *Watcher) Verify(ctx context.Context, token string, now time.Time) (*grant.Claims, error) {
	c, err := w.v.Verify(token, now)
	if errors.Is(err, grant.ErrUnknownKey) && w.keyMiss(ctx) {
		return w.v.Verify(token, now)
	}
	return c, err
}

// VerifyBytes is Verify for a token in a byte slice.
func (w *Watcher) VerifyBytes(ctx context.Context, token []byte, now time.Time) (*grant.Claims, error) {
	c, err := w.v.VerifyBytes(token, now)
	if errors.Is(err, grant.ErrUnknownKey) && w.keyMiss(ctx) {
		return w.v.VerifyBytes(token, now)
	}
	return c, err
}

// keyMiss reloads the keys unless that was done less than
// KeyReloadInterval ago, and reports whether keys were reloaded since the
// call began (by this caller or a concurrent one).
func (w *Watcher) keyMiss(ctx context.Context) bool {
	asked := time.Now()
	w.keyMu.Lock()
	defer w.keyMu.Unlock()
	if w.keysLoaded.After(asked) {
		return true // reloaded while we waited
	}
	if time.Since(w.keysLoaded) < w.cfg.KeyReloadInterval {
		return false
	}
	if err := w.reloadKeysLocked(ctx); err != nil {
		w.log.LogAttrs(ctx, slog.LevelWarn, "reloading token keys for an unknown kid", slog.Any("err", err))
		return false
	}
	return true
}
