package fs

import "github.com/prometheus/client_golang/prometheus"

// The mount's metrics are process-wide, like the client library's: every
// mount in the process adds to them. dfsmount registers Collectors().
var (
	readBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dfs_mount_read_bytes_total",
		Help: "Bytes programs read through the mount (reads the kernel page cache answers never reach it).",
	})
	writtenBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dfs_mount_written_bytes_total",
		Help: "Bytes programs wrote through the mount (before replication).",
	})
	// caches counts, per cache of the mount, the requests it answered
	// (hit) and those that went to the master or the chunkservers (miss).
	caches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dfs_mount_cache_total",
		Help: "Requests the mount's caches answered (result=hit) or could not (miss), by cache: attr (getattr answered from attributes this mount just changed), xattr (the security.capability and ACL lookups the kernel makes before writes and permission checks, answered from what the mount knows is absent), page (an open that kept the kernel's page cache because the file did not change), readahead (reads served from windows fetched ahead; miss: a non-sequential read went straight to the chunkservers), listing (lookups answered from a directory listing fetched whole; miss: asked of the master).",
	}, []string{"cache", "result"})
)

const (
	cacheAttr      = "attr"
	cacheXattr     = "xattr"
	cachePage      = "page"
	cacheReadahead = "readahead"
	cacheListing   = "listing"
)

func init() {
	for _, c := range []string{cacheAttr, cacheXattr, cachePage, cacheReadahead, cacheListing} {
		cacheResult(c, true, 0)
		cacheResult(c, false, 0)
	}
}

// cacheResult counts n requests (0 makes the series exist) that cache
// answered (hit) or not.
func cacheResult(cache string, hit bool, n float64) {
	result := "miss"
	if hit {
		result = "hit"
	}
	caches.WithLabelValues(cache, result).Add(n)
}

// Collectors returns the mount's Prometheus metrics (dfs_mount_*), for
// the process's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{readBytes, writtenBytes, caches}
}
