package httpcache

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestStoreConfigDefaults(t *testing.T) {
	tests := []struct {
		name    string
		in      StoreConfig
		want    StoreConfig
		wantErr bool
	}{
		{"defaults", StoreConfig{}, StoreConfig{MaxSize: 256 << 20, HotSize: 64 << 20, MaxEntrySize: 8 << 20, Shards: 8, TagSlots: 1 << 18, MaxStoreTime: DefaultMaxStoreTime}, false},
		{"small entries", StoreConfig{MaxSize: 256 << 20, MaxEntrySize: 64 << 10}, StoreConfig{MaxSize: 256 << 20, HotSize: 64 << 20, MaxEntrySize: 64 << 10, Shards: 256, TagSlots: 1 << 18, MaxStoreTime: DefaultMaxStoreTime}, false},
		{"tag slots round up", StoreConfig{TagSlots: 1000}, StoreConfig{MaxSize: 256 << 20, HotSize: 64 << 20, MaxEntrySize: 8 << 20, Shards: 8, TagSlots: 1024, MaxStoreTime: DefaultMaxStoreTime}, false},
		{"too small", StoreConfig{MaxSize: 1000}, StoreConfig{}, true},
		{"shards not power of two", StoreConfig{Shards: 3}, StoreConfig{}, true},
		{"shards too many for entry size", StoreConfig{Shards: 64}, StoreConfig{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.WithDefaults()
			if (err != nil) != tt.wantErr {
				t.Fatalf("WithDefaults() error = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("WithDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEntryRoundTrip(t *testing.T) {
	d := draft{
		kind: kindResponse, flags: flagAuthOK | flagNoStale, status: 203,
		reqTime: 1, respTime: 2, initialAge: 3, lifetime: 4, swr: 5, sie: 6, seq: 7,
		key:     "http://h/p?q",
		slots:   []uint32{10, 11, 12},
		npseudo: 2,
		vary:    []varyField{{name: "Accept-Encoding", value: "gzip", present: true}, {name: "X-A"}},
		header: http.Header{
			"Etag":          {`"e"`},
			"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"},
			"X-Multi":       {"a", "b"},
		},
		body: []byte("body bytes"),
	}
	e, err := d.encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	// decode a copy, as a bigcache read would return
	e2, err := decodeEntry(bytes.Clone(e.blob))
	if err != nil {
		t.Fatalf("decodeEntry: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"status", e2.status, 203},
		{"flags", e2.flags, uint8(flagAuthOK | flagNoStale)},
		{"times", []int64{e2.reqTime, e2.respTime, e2.initialAge, e2.lifetime, e2.swr, e2.sie}, []int64{1, 2, 3, 4, 5, 6}},
		{"seq", e2.seq, uint64(7)},
		{"key", e2.key, d.key},
		{"slots", []uint32{e2.slotAt(0), e2.slotAt(1), e2.slotAt(2)}, d.slots},
		{"tag slots", e2.tagSlots(), []uint32{12}},
		{"vary", e2.vary, d.vary},
		{"header", e2.headerMap(), d.header},
		{"body", string(e2.body), "body bytes"},
		{"etag", e2.etag, `"e"`},
		{"nvalues", e2.nvalues, 4},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for _, f := range e2.fields {
		if cap(f.values) != len(f.values) {
			t.Errorf("field %s: cap %d != len %d: an append could write into the shared array", f.name, cap(f.values), len(f.values))
		}
	}
	for n := 0; n < len(e.blob); n++ {
		if _, err := decodeEntry(e.blob[:n]); err == nil {
			t.Errorf("decodeEntry of %d of %d bytes: no error", n, len(e.blob))
		}
	}
}

func TestHotTierBudget(t *testing.T) {
	var h hotTier
	h.init(64 << 10) // 1024 slots, 64 KiB
	for i := 0; i < 1000; i++ {
		d := draft{kind: kindResponse, key: fmt.Sprintf("k%d", i), body: bytes.Repeat([]byte("x"), 1000)}
		e, err := d.encode()
		if err != nil {
			t.Fatal(err)
		}
		h.put(uint64(i), e)
	}
	if got := h.bytes.Load(); got > 64<<10+8<<10 {
		t.Errorf("hot bytes = %d, want about the 64 KiB budget", got)
	}
	var n, bytes int64
	for i := range h.slots {
		if e := h.slots[i].Load(); e != nil {
			n++
			bytes += e.size()
		}
	}
	if n != h.count.Load() || bytes != h.bytes.Load() {
		t.Errorf("accounting: %d entries %d bytes, counters say %d and %d", n, bytes, h.count.Load(), h.bytes.Load())
	}
}

func TestStoreGetPutRemove(t *testing.T) {
	s, err := NewStore(StoreConfig{MaxSize: 8 << 20, MaxEntrySize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := draft{kind: kindResponse, key: "http://h/x", status: 200, body: []byte(strings.Repeat("y", 100))}
	e, _ := d.encode()
	if err := s.put(e); err != nil {
		t.Fatalf("put: %v", err)
	}
	if got := s.get([]byte("http://h/x")); got == nil || string(got.body) != string(e.body) {
		t.Fatalf("get after put = %v", got)
	}
	s.hot.reset() // force the bigcache path
	got := s.get([]byte("http://h/x"))
	if got == nil || string(got.body) != string(e.body) {
		t.Fatalf("get from bigcache = %v", got)
	}
	if s.get([]byte("http://h/x")) != got {
		t.Errorf("second get did not come from the hot tier")
	}
	s.remove("http://h/x")
	if got := s.get([]byte("http://h/x")); got != nil {
		t.Errorf("get after remove = %v, want nil", got)
	}
	big := draft{kind: kindResponse, key: "http://h/big", body: make([]byte, 8<<20)}
	be, _ := big.encode()
	if err := s.put(be); err == nil {
		t.Errorf("put of an entry larger than a shard: no error")
	}
}

// BenchmarkPurgeTag100k purges one tag carried by 100,000 stored
// entries; the cost does not depend on the number of entries.
func BenchmarkPurgeTag100k(b *testing.B) {
	s, err := NewStore(StoreConfig{MaxSize: 256 << 20, MaxEntrySize: 64 << 10})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	slot := s.slot("src:c/public.t")
	for i := 0; i < 100_000; i++ {
		d := draft{kind: kindResponse, status: 200, key: fmt.Sprintf("http://h/t/%d", i),
			slots: []uint32{slot}, body: make([]byte, 512)}
		e, err := d.encode()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.put(e); err != nil {
			b.Fatal(err)
		}
	}
	if n := s.big.Len(); n != 100_000 {
		b.Fatalf("stored %d entries, want 100000", n)
	}
	tags := []string{"src:c/public.t"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.PurgeTags(tags, false)
	}
	b.StopTimer()
	e := s.get([]byte("http://h/t/5"))
	if valid, _ := s.state(e); valid {
		b.Errorf("entry still valid after the purge")
	}
}

func TestStoreStaysWithinMaxSize(t *testing.T) {
	s, err := NewStore(StoreConfig{MaxSize: 1 << 20, MaxEntrySize: 64 << 10, HotSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 100; i++ {
		d := draft{kind: kindResponse, status: 200, key: fmt.Sprintf("k%d", i), body: make([]byte, 32<<10)}
		e, _ := d.encode()
		if err := s.put(e); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	st := s.Stats()
	if st.StoreBytes > 1<<20 {
		t.Errorf("store bytes = %d, want <= 1 MiB", st.StoreBytes)
	}
	if st.Evictions == 0 || st.Entries >= 100 {
		t.Errorf("evictions = %d, entries = %d: want evictions to keep the bound", st.Evictions, st.Entries)
	}
	if s.get([]byte("k99")) == nil {
		t.Errorf("latest entry evicted")
	}
}

// BenchmarkPurgePrefixScan100k purges a prefix that is not a directory
// among 100,000 stored entries of 512 bytes: one scan of every key.
func BenchmarkPurgePrefixScan100k(b *testing.B) {
	s, err := NewStore(StoreConfig{MaxSize: 256 << 20, MaxEntrySize: 64 << 10})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 100_000; i++ {
		d := draft{kind: kindResponse, status: 200, key: fmt.Sprintf("http://h/t/%d", i), body: make([]byte, 512)}
		d.slots = []uint32{s.keySlot(d.key)}
		e, err := d.encode()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.put(e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.PurgePrefix("/t/5", false); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if valid, _ := s.state(s.get([]byte("http://h/t/5"))); valid {
		b.Errorf("/t/5 still valid after the purge")
	}
	if valid, _ := s.state(s.get([]byte("http://h/t/6"))); !valid {
		b.Errorf("/t/6 purged by prefix /t/5")
	}
}
