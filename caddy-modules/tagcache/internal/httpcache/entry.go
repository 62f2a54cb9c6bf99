package httpcache

import (
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"
)

// Entry kinds.
const (
	kindResponse = 1 // a stored response
	kindVary     = 2 // the Vary field names of the responses for a URL
)

// Entry flags.
const (
	// flagNoStale forbids serving the entry stale: must-revalidate,
	// proxy-revalidate, no-cache, or s-maxage without explicit
	// stale-while-revalidate/stale-if-error.
	flagNoStale = 1 << iota
	// flagNoCache requires successful validation before every use.
	flagNoCache
	// flagAuthOK allows answering requests carrying Authorization
	// (public, s-maxage or must-revalidate; RFC 9111 §3.5).
	flagAuthOK
)

const (
	blobMagic   = "MC1"
	fixedHeader = 74
)

// entry is a decoded, immutable stored entry. Its strings and slices
// point into blob, which nothing may modify.
type entry struct {
	blob  []byte
	key   string
	kind  uint8
	flags uint8

	status     int
	reqTime    int64 // request_time, unix ns
	respTime   int64 // response_time, unix ns
	initialAge int64 // corrected_initial_age, ns
	lifetime   int64 // freshness_lifetime, ns
	swr        int64 // stale-while-revalidate window, ns
	sie        int64 // stale-if-error window, ns
	seq        uint64

	slots   []byte // little-endian uint32 tag slots
	npseudo int    // the first npseudo slots are path/prefix pseudo-tags
	// srcTags are the entry's source tags (src:<conn>/<table>), kept as
	// text so that a hit can be authorized against the caller's grants.
	srcTags []string
	vary    []varyField
	fields  []field
	nvalues int
	body    []byte

	etag, lastModified, date string

	memo atomic.Pointer[hitMemo]
}

// field is one stored header field; values has len == cap so that an
// append by a later handler never writes into shared memory.
type field struct {
	name   string
	values []string
}

// varyField is one request header field selecting a variant: for a
// kindVary entry only name is set.
type varyField struct {
	name    string
	value   string
	present bool
}

func (e *entry) nslots() int         { return len(e.slots) / 4 }
func (e *entry) slotAt(i int) uint32 { return binary.LittleEndian.Uint32(e.slots[4*i:]) }
func (e *entry) size() int64         { return int64(len(e.blob)) + 256 + int64(len(e.fields))*64 }
func (e *entry) has(flag uint8) bool { return e.flags&flag != 0 }
func (e *entry) hasValidators() bool { return e.etag != "" || e.lastModified != "" }
func (e *entry) currentAge(now int64) int64 {
	if r := now - e.respTime; r > 0 {
		return e.initialAge + r
	}
	return e.initialAge
}

// tagSlots returns the slots of the entry's real tags (not pseudo-tags).
func (e *entry) tagSlots() []uint32 {
	out := make([]uint32, 0, e.nslots()-e.npseudo)
	for i := e.npseudo; i < e.nslots(); i++ {
		out = append(out, e.slotAt(i))
	}
	return out
}

// headerMap returns a copy of the stored header fields.
func (e *entry) headerMap() http.Header {
	h := make(http.Header, len(e.fields))
	for _, f := range e.fields {
		h[f.name] = slices.Clone(f.values)
	}
	return h
}

// hitMemo caches the per-second header values of a hit on one entry.
// Each is a one-element slice (len == cap), shared by every hit in that
// second like the stored fields.
type hitMemo struct {
	sec   int64 // current_age in whole seconds
	age   []string
	hit   []string
	stale []string
	vals  [3]string // backs age, hit and stale
}

// memoFor returns the Age and Cache-Status values at time now, building
// them at most once per second of age per entry.
func (e *entry) memoFor(now int64) *hitMemo {
	age := e.currentAge(now)
	sec := age / int64(time.Second)
	if m := e.memo.Load(); m != nil && m.sec == sec {
		return m
	}
	ttl := strconv.FormatInt(e.lifetime/int64(time.Second)-sec, 10)
	m := &hitMemo{sec: sec, vals: [3]string{
		strconv.FormatInt(sec, 10),
		"meridian; hit; ttl=" + ttl,
		"meridian; hit; ttl=" + ttl + "; detail=stale",
	}}
	m.age, m.hit, m.stale = m.vals[0:1:1], m.vals[1:2:2], m.vals[2:3:3]
	e.memo.Store(m)
	return m
}

// draft is an entry under construction, encoded with encode.
type draft struct {
	kind       uint8
	flags      uint8
	status     int
	reqTime    int64
	respTime   int64
	initialAge int64
	lifetime   int64
	swr        int64
	sie        int64
	seq        uint64
	key        string
	slots      []uint32
	npseudo    int
	srcTags    []string
	vary       []varyField
	header     http.Header
	body       []byte
}

// encode serializes d into one blob and decodes it back, so that the
// returned entry shares memory with the blob as a stored one would.
func (d *draft) encode() (*entry, error) {
	names := make([]string, 0, len(d.header))
	n := fixedHeader + len(d.key) + 4*len(d.slots) + 2 + 4 + len(d.body)
	for _, t := range d.srcTags {
		n += 2 + len(t)
	}
	for k, vs := range d.header {
		if len(vs) == 0 {
			continue
		}
		names = append(names, k)
		n += 4 + len(k)
		for _, v := range vs {
			n += 4 + len(v)
		}
	}
	for _, v := range d.vary {
		n += 7 + len(v.name) + len(v.value)
	}
	slices.Sort(names)
	if len(d.key) > 0xffff || len(d.slots) > 0xffff || len(names) > 0xffff || len(d.vary) > 0xffff || len(d.srcTags) > 0xffff {
		return nil, errTooMany
	}
	b := make([]byte, 0, n)
	b = append(b, blobMagic...)
	b = append(b, d.kind, d.flags, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(d.status))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.reqTime))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.respTime))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.initialAge))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.lifetime))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.swr))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.sie))
	b = binary.LittleEndian.AppendUint64(b, d.seq)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(d.key)))
	b = binary.LittleEndian.AppendUint16(b, uint16(d.npseudo))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(d.slots)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(d.vary)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(names)))
	b = append(b, d.key...)
	for _, s := range d.slots {
		b = binary.LittleEndian.AppendUint32(b, s)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(d.srcTags)))
	for _, t := range d.srcTags {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(t)))
		b = append(b, t...)
	}
	for _, v := range d.vary {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v.name)))
		b = append(b, v.name...)
		p := byte(0)
		if v.present {
			p = 1
		}
		b = append(b, p)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v.value)))
		b = append(b, v.value...)
	}
	for _, k := range names {
		vs := d.header[k]
		if len(vs) > 0xffff {
			vs = vs[:0xffff]
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(vs)))
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.body)))
	b = append(b, d.body...)
	return decodeEntry(b)
}

var (
	errTooMany = errors.New("httpcache: entry has too many fields")
	errCorrupt = errors.New("httpcache: corrupt entry")
)

// decodeEntry decodes a blob made by draft.encode without copying it.
func decodeEntry(b []byte) (*entry, error) {
	if len(b) < fixedHeader || string(b[:3]) != blobMagic {
		return nil, errCorrupt
	}
	le := binary.LittleEndian
	e := &entry{
		blob:       b,
		kind:       b[3],
		flags:      b[4],
		status:     int(le.Uint16(b[6:])),
		reqTime:    int64(le.Uint64(b[8:])),
		respTime:   int64(le.Uint64(b[16:])),
		initialAge: int64(le.Uint64(b[24:])),
		lifetime:   int64(le.Uint64(b[32:])),
		swr:        int64(le.Uint64(b[40:])),
		sie:        int64(le.Uint64(b[48:])),
		seq:        le.Uint64(b[56:]),
	}
	keyLen := int(le.Uint16(b[64:]))
	e.npseudo = int(le.Uint16(b[66:]))
	nslots := int(le.Uint16(b[68:]))
	nvary := int(le.Uint16(b[70:]))
	nfields := int(le.Uint16(b[72:]))
	r := reader{b: b, off: fixedHeader}
	e.key = r.str(keyLen)
	e.slots = r.bytes(4 * nslots)
	if nsrc := int(r.u16()); nsrc > 0 && !r.err {
		e.srcTags = make([]string, nsrc)
		for i := range e.srcTags {
			e.srcTags[i] = r.str(int(r.u16()))
		}
	}
	if nvary > 0 {
		e.vary = make([]varyField, nvary)
		for i := range e.vary {
			e.vary[i].name = r.str(int(r.u16()))
			e.vary[i].present = r.u8() == 1
			e.vary[i].value = r.str(int(r.u32()))
		}
	}
	e.fields = make([]field, nfields)
	// count values first so all of them share one backing array
	start := r.off
	total := 0
	for range nfields {
		r.skip(int(r.u16()))
		nv := int(r.u16())
		total += nv
		for range nv {
			r.skip(int(r.u32()))
		}
	}
	if r.err {
		return nil, errCorrupt
	}
	r.off = start
	vals := make([]string, total)
	vi := 0
	for i := range e.fields {
		f := &e.fields[i]
		f.name = r.str(int(r.u16()))
		nv := int(r.u16())
		for j := range nv {
			vals[vi+j] = r.str(int(r.u32()))
		}
		f.values = vals[vi : vi+nv : vi+nv]
		vi += nv
		if nv > 0 {
			switch f.name {
			case "Etag":
				e.etag = f.values[0]
			case "Last-Modified":
				e.lastModified = f.values[0]
			case "Date":
				e.date = f.values[0]
			}
		}
	}
	e.nvalues = total
	e.body = r.bytes(int(r.u32()))
	if r.err || r.off != len(b) || e.npseudo > nslots {
		return nil, errCorrupt
	}
	return e, nil
}

// reader reads a blob; out-of-range reads set err and return zero values.
type reader struct {
	b   []byte
	off int
	err bool
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || r.off+n > len(r.b) {
		r.err = true
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *reader) skip(n int) { r.bytes(n) }

func (r *reader) str(n int) string {
	p := r.bytes(n)
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(&p[0], len(p))
}

func (r *reader) u8() uint8 {
	p := r.bytes(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *reader) u16() uint16 {
	p := r.bytes(2)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(p)
}

func (r *reader) u32() uint32 {
	p := r.bytes(4)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}
