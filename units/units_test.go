package units

import (
	"math"
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{5 << 20, "5.0 MiB"}, {100 << 30, "100.0 GiB"}, {math.MaxUint64, "16.0 EiB"},
	} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestDurations(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct{ got, want string }{
		{Duration(0), "-"}, {Duration(int64(1234567 * time.Nanosecond)), "1ms"},
		{Duration(int64(8123 * time.Millisecond)), "8.1s"}, {Duration(int64(90*time.Minute + 1400*time.Millisecond)), "1h30m1s"},
		{Ago(now, 0), "-"}, {Ago(now, now.Add(-300*time.Millisecond).UnixNano()), "300ms ago"},
		{Range(0, math.MaxUint64), "0-EOF"}, {Range(10, 19), "10-19"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
