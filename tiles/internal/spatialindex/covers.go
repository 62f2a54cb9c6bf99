package spatialindex

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/paulmach/orb"

	"github.com/meridian-gis/meridian/tiles/internal/flight"
)

// MaxHeldRanges bounds the ranges a Covers keeps (16 bytes each).
const MaxHeldRanges = 1 << 20

// Covers computes each cover once for concurrent callers and keeps the
// recent ones: the widgets of one map view all send its viewport. The
// zero value is ready; a nil *Covers computes every time.
type Covers struct {
	flight flight.Group[coverKey, []Range]

	mu      sync.Mutex
	entries map[coverKey][]Range
	order   []coverKey // oldest first
	held    int        // ranges in entries
}

type coverKey struct {
	kind          Kind
	res, maxCells int
	mode          Mode
	poly          [sha256.Size]byte
}

// Cover is k.Cover(mp, …) for mp written as geoJSON. The answer is
// shared: callers must not change it.
func (cs *Covers) Cover(k Kind, geoJSON string, mp orb.MultiPolygon, res int, mode Mode, maxCells int) ([]Range, error) {
	if cs == nil {
		return k.Cover(mp, res, mode, maxCells)
	}
	key := coverKey{kind: k, res: res, maxCells: maxCells, mode: mode, poly: sha256.Sum256([]byte(geoJSON))}
	cs.mu.Lock()
	rs, ok := cs.entries[key]
	cs.mu.Unlock()
	if ok {
		return rs, nil
	}
	rs, err, _ := cs.flight.Do(context.Background(), key, func(context.Context) ([]Range, error) {
		rs, err := k.Cover(mp, res, mode, maxCells)
		if err == nil {
			cs.keep(key, rs)
		}
		return rs, err
	})
	return rs, err
}

// keep adds a cover, dropping the oldest past MaxHeldRanges.
func (cs *Covers) keep(key coverKey, rs []Range) {
	if len(rs) > MaxHeldRanges/4 {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.entries == nil {
		cs.entries = map[coverKey][]Range{}
	}
	if _, ok := cs.entries[key]; ok {
		return
	}
	cs.entries[key] = rs
	cs.order = append(cs.order, key)
	cs.held += len(rs)
	for cs.held > MaxHeldRanges || len(cs.order) > 1024 {
		old := cs.order[0]
		cs.order = cs.order[1:]
		cs.held -= len(cs.entries[old])
		delete(cs.entries, old)
	}
}
