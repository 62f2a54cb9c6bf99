package httpcache

import (
	"math/bits"
	"sync/atomic"
)

// hotTier is a direct-mapped, lock-free array of decoded entries: a
// lookup is one atomic load and a key comparison. Entries are immutable,
// so a reader holding one is unaffected by a concurrent replacement. The
// byte budget is enforced approximately (concurrent insertions may
// overshoot it by a few entries): an insertion that would exceed it first
// clears pseudo-random occupied slots, and is dropped if that fails.
type hotTier struct {
	slots  []atomic.Pointer[entry]
	mask   uint64
	budget int64
	bytes  atomic.Int64
	count  atomic.Int64
	rnd    atomic.Uint64
}

// hotSlotBytes is the average entry size assumed when sizing the array.
const hotSlotBytes = 8 << 10

func (h *hotTier) init(budget int64) {
	n := budget / hotSlotBytes
	switch {
	case n < 1024:
		n = 1024
	case n > 1<<20:
		n = 1 << 20
	}
	n = 1 << bits.Len64(uint64(n-1))
	h.slots = make([]atomic.Pointer[entry], n)
	h.mask = uint64(n - 1)
	h.budget = budget
}

func (h *hotTier) get(hash uint64, key []byte) *entry {
	if h.slots == nil {
		return nil
	}
	e := h.slots[hash&h.mask].Load()
	if e != nil && e.key == string(key) {
		return e
	}
	return nil
}

func (h *hotTier) put(hash uint64, e *entry) {
	if h.slots == nil || e.size() > h.budget/8 {
		return
	}
	i := hash & h.mask
	for tries := 0; h.bytes.Load()+e.size() > h.budget; tries++ {
		if tries == 4 {
			return // could not make room: not admitted
		}
		h.evictOne(i)
	}
	old := h.slots[i].Swap(e)
	h.account(e, old)
}

// evictOne clears the first occupied slot (other than keep) found by a
// bounded scan from a pseudo-random position.
func (h *hotTier) evictOne(keep uint64) {
	x := h.rnd.Add(0x9e3779b97f4a7c15) // Weyl sequence: cheap, spreads well
	x ^= x >> 29
	for n := 0; n < 64; n++ {
		j := (x + uint64(n)) & h.mask
		if j == keep {
			continue
		}
		if v := h.slots[j].Swap(nil); v != nil {
			h.account(nil, v)
			return
		}
	}
}

func (h *hotTier) remove(hash uint64, key string) {
	if h.slots == nil {
		return
	}
	p := &h.slots[hash&h.mask]
	if e := p.Load(); e != nil && e.key == key && p.CompareAndSwap(e, nil) {
		h.account(nil, e)
	}
}

func (h *hotTier) reset() {
	for i := range h.slots {
		if e := h.slots[i].Swap(nil); e != nil {
			h.account(nil, e)
		}
	}
}

func (h *hotTier) account(added, removed *entry) {
	var d, n int64
	if added != nil {
		d += added.size()
		n++
	}
	if removed != nil {
		d -= removed.size()
		n--
	}
	h.bytes.Add(d)
	h.count.Add(n)
}
