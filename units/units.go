// Package units formats quantities for people: the status page and
// dfsctl's tables show sizes the same way.
package units

import "fmt"

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
