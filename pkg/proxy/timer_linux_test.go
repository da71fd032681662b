package proxy

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTimerHeap(t *testing.T) {
	var h timerHeap
	var cs []*conn
	for range 200 {
		c := &conn{when: rand.Int64N(1000), tidx: -1}
		cs = append(cs, c)
		h.push(c)
	}
	// Established connections leave at once, from anywhere in the heap.
	var want []int64
	for i, c := range cs {
		if i%3 == 0 {
			h.remove(c)
			h.remove(c) // twice is harmless
		} else {
			want = append(want, c.when)
		}
	}
	slices.Sort(want)
	var got []int64
	for len(h) > 0 {
		c := h[0]
		h.remove(c)
		if c.tidx != -1 {
			t.Fatal("removed conn keeps its index")
		}
		got = append(got, c.when)
	}
	if !slices.Equal(got, want) {
		t.Errorf("heap order %v, want %v", got, want)
	}
}
