package geotest

import (
	"context"
	"testing"
)

func TestNew(t *testing.T) {
	db := New(t)
	ctx := context.Background()
	for table, want := range map[string]int64{Admin1: 4854, Postal: 1201340, Places: 243, Buildings: 8260} {
		var n int64
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("counting %s: %v", table, err)
		}
		if n != want {
			t.Errorf("count(%s) = %d, want %d", table, n, want)
		}
	}
}
