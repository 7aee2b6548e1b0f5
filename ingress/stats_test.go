package ingress

import (
	"math"
	"testing"
	"time"
)

func TestQuantileAndSlower(t *testing.T) {
	t.Parallel()
	// 100 requests within 1ms, 10 between 100ms and 250ms, 2 slower than 10s.
	s := RevisionStats{Requests: 112, Buckets: make([]int64, len(LatencyBuckets)+1)}
	s.Buckets[0], s.Buckets[7], s.Buckets[len(LatencyBuckets)] = 100, 10, 2
	if q := s.Quantile(0.5); q <= 0 || q > time.Millisecond {
		t.Errorf("p50 = %s, want within the first bucket", q)
	}
	if q := s.Quantile(0.95); q < 100*time.Millisecond || q > 250*time.Millisecond {
		t.Errorf("p95 = %s, want within 100ms–250ms", q)
	}
	if q := s.Quantile(0.999); q != 10*time.Second {
		t.Errorf("p99.9 = %s, want the last bound", q)
	}
	for _, tt := range []struct {
		d    time.Duration
		want float64
	}{
		{0, 112},
		{time.Millisecond, 12},
		{100 * time.Millisecond, 12},
		{175 * time.Millisecond, 7}, // half of the 100–250ms bucket
		{250 * time.Millisecond, 2},
		{time.Minute, 2}, // past the last bound: all of the overflow bucket
	} {
		if got := s.Slower(tt.d); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Slower(%s) = %v, want %v", tt.d, got, tt.want)
		}
	}
}
