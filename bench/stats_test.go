package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []float64{7}, Summary{N: 1, Median: 7, Min: 7, Max: 7, Q1: 7, Q3: 7, Mean: 7}},
		{"odd unsorted", []float64{5, 1, 3}, Summary{N: 3, Median: 3, Min: 1, Max: 5, Q1: 2, Q3: 4, Mean: 3}},
		{"even", []float64{4, 1, 3, 2}, Summary{N: 4, Median: 2.5, Min: 1, Max: 4, Q1: 1.75, Q3: 3.25, Mean: 2.5}},
		{"outlier does not move the median", []float64{10, 11, 12, 1000, 9}, Summary{N: 5, Median: 11, Min: 9, Max: 1000, Q1: 10, Q3: 12, Mean: 208.4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := Summarize(tt.in)
			if got != tt.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("Summarize modified its input: %v, want %v", tt.in, in)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
	if got, want := Median([]float64{3, 1, 2, 10}), 2.5; got != want {
		t.Errorf("Median = %v, want %v", got, want)
	}
}

func TestSchedule(t *testing.T) {
	vs := []string{"a", "b", "c"}
	t.Run("rotate", func(t *testing.T) {
		got := Schedule(vs, 4, Rotate, nil)
		want := [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("Schedule(rotate) = %v, want %v", got, want)
		}
	})
	t.Run("rotate two variants alternates", func(t *testing.T) {
		got := Schedule([]string{"x", "y"}, 3, Rotate, nil)
		want := [][]string{{"x", "y"}, {"y", "x"}, {"x", "y"}}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("Schedule(rotate) = %v, want %v", got, want)
		}
	})
	t.Run("shuffle is a permutation and reproducible", func(t *testing.T) {
		a := Schedule(vs, 20, Shuffle, rand.New(rand.NewPCG(7, 7)))
		b := Schedule(vs, 20, Shuffle, rand.New(rand.NewPCG(7, 7)))
		if !slices.EqualFunc(a, b, slices.Equal) {
			t.Errorf("same seed gave %v and %v", a, b)
		}
		distinct := map[string]bool{}
		for i, round := range a {
			sorted := slices.Sorted(slices.Values(round))
			if !slices.Equal(sorted, vs) {
				t.Errorf("round %d = %v, want a permutation of %v", i, round, vs)
			}
			distinct[round[0]+round[1]+round[2]] = true
		}
		if len(distinct) < 2 {
			t.Errorf("20 shuffled rounds all in one order: %v", a)
		}
	})
	t.Run("input untouched", func(t *testing.T) {
		in := []string{"a", "b"}
		Schedule(in, 5, Shuffle, rand.New(rand.NewPCG(1, 2)))
		if !slices.Equal(in, []string{"a", "b"}) {
			t.Errorf("Schedule modified variants: %v", in)
		}
	})
}

func TestParseOrder(t *testing.T) {
	for _, ok := range []string{"rotate", "shuffle"} {
		if _, err := ParseOrder(ok); err != nil {
			t.Errorf("ParseOrder(%q) = %v, want nil", ok, err)
		}
	}
	if _, err := ParseOrder("random"); err == nil {
		t.Error("ParseOrder(random) = nil error, want an error")
	}
}
