package client

import (
	"dfs/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// The client library's metrics are process-wide, as its connections are
// per client but the process's registry is one: every Client in the
// process adds to them. A program exports them by registering
// Collectors() (dfsmount does, on its admin listener's /metrics).
var (
	// rpcs counts and times every RPC sent, by method (mutations by op),
	// so that a benchmark can show the round trips each file operation
	// costs.
	rpcs = metrics.NewClientRPCs()
	// shortCircuit counts reads of replicated chunk data by how they
	// were served when short-circuit reads are on.
	shortCircuit = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dfs_client_short_circuit_reads_total",
		Help: "Reads of a replica while short-circuit reads are on, by result: local (read from the chunk file on this machine), remote (the replica's server is on another machine or refuses), fallback (on this machine, but the file could not be used: read through the chunkserver).",
	}, []string{"result"})
	shortCircuitBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dfs_client_short_circuit_read_bytes_total",
		Help: "Bytes read directly from chunk files of chunkservers on this machine.",
	})
	// chunkMaps counts lookups of where a file's chunks are.
	chunkMaps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dfs_client_chunk_map_cache_total",
		Help: "Lookups of chunk locations by an open file, by result: hit (all cached), miss (asked the master with GetChunks).",
	}, []string{"result"})
)

func init() {
	for _, r := range []string{"local", "remote", "fallback"} {
		shortCircuit.WithLabelValues(r)
	}
	for _, r := range []string{"hit", "miss"} {
		chunkMaps.WithLabelValues(r)
	}
}

// Collectors returns the client library's Prometheus metrics, for the
// process's registry: dfs_rpc_client_* for every RPC sent and
// dfs_client_* for the data path's caches.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{rpcs, shortCircuit, shortCircuitBytes, chunkMaps}
}
