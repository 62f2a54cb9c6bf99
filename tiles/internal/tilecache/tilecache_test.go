package tilecache

import (
	"fmt"
	"sync"
	"testing"
)

type key struct {
	src string
	gen uint64
	z   uint32
}

func TestGetPut(t *testing.T) {
	c := New[key, string](1 << 20)
	k := key{"a", 1, 3}
	if _, ok := c.Get(k); ok {
		t.Fatal("empty cache hit")
	}
	c.Put(k, "v", 10)
	if v, ok := c.Get(k); !ok || v != "v" {
		t.Errorf("Get = %q, %v; want v, true", v, ok)
	}
	if _, ok := c.Get(key{"a", 2, 3}); ok {
		t.Errorf("other generation hit")
	}
	c.Put(k, "w", 20)
	if v, _ := c.Get(k); v != "w" {
		t.Errorf("Get after replace = %q, want w", v)
	}
	if st := c.Stats(); st.Entries != 1 || st.Bytes != 20 || st.Hits != 2 || st.Misses != 2 {
		t.Errorf("Stats = %+v", st)
	}
	c.Delete(k)
	if _, ok := c.Get(k); ok {
		t.Errorf("hit after Delete")
	}
}

func TestEvictionKeepsBudgetAndHotEntries(t *testing.T) {
	c := New[int, int](shards * 100) // 100 bytes per shard
	hot := 0
	c.Put(hot, 0, 10)
	for i := 1; i < 10000; i++ {
		c.Get(hot) // keep it referenced
		c.Put(i, i, 10)
	}
	st := c.Stats()
	if st.Bytes > shards*100 {
		t.Errorf("cache holds %d bytes, over budget %d", st.Bytes, shards*100)
	}
	if _, ok := c.Get(hot); !ok {
		t.Errorf("hot entry evicted")
	}
	if st.Evictions == 0 {
		t.Errorf("no evictions")
	}
	// Too big for a shard: not stored.
	c.Put(-1, -1, 1000)
	if _, ok := c.Get(-1); ok {
		t.Errorf("oversized entry stored")
	}
}

func TestDeleteFunc(t *testing.T) {
	c := New[key, int](1 << 20)
	for i := range 100 {
		c.Put(key{fmt.Sprint(i % 2), 1, uint32(i)}, i, 1)
	}
	c.DeleteFunc(func(k key) bool { return k.src == "0" })
	if st := c.Stats(); st.Entries != 50 {
		t.Errorf("%d entries left, want 50", st.Entries)
	}
}

func TestConcurrent(t *testing.T) {
	c := New[int, int](shards * 1000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k := (i * (g + 1)) % 700
				if v, ok := c.Get(k); ok && v != k {
					t.Errorf("Get(%d) = %d", k, v)
				}
				// Hits read the value unlocked while others replace it.
				c.Put(k, k, 7)
			}
		}()
	}
	wg.Wait()
	if st := c.Stats(); st.Bytes > shards*1000 {
		t.Errorf("over budget: %+v", st)
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := New[key, *int](1 << 20)
	v := 1
	k := key{"0123456789abcdef", 77, 14}
	c.Put(k, &v, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(k); !ok {
			b.Fatal("miss")
		}
	}
}
