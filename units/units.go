// Package units formats quantities for people: the status page and
// dfsctl's tables show sizes the same way.
package units

import (
	"fmt"
	"math"
	"time"
)

// Bytes formats n in binary units, exact below 1 KiB: "512 B", "1.5 KiB".
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Duration rounds a duration given in ns for reading; "-" for none.
func Duration(ns int64) string {
	d := time.Duration(ns)
	switch {
	case ns <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Ago says how long before now the Unix time ns was; "-" for never (0).
func Ago(now time.Time, ns int64) string {
	if ns <= 0 {
		return "-"
	}
	return Duration(now.Sub(time.Unix(0, ns)).Nanoseconds()) + " ago"
}

// Range shows an inclusive byte range, "EOF" for a range to the end of
// the file (a lock's end of 2^64-1).
func Range(start, end uint64) string {
	if end == math.MaxUint64 {
		return fmt.Sprintf("%d-EOF", start)
	}
	return fmt.Sprintf("%d-%d", start, end)
}
