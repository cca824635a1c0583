package chunk

import (
	"sync/atomic"
	"time"

	"dfs/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// Why chunk data is written or read, the reason label of
// dfs_chunk_written_bytes_total and dfs_chunk_read_bytes_total.
const (
	writePrimary   = "primary"   // a client's write to the chunk's primary (its own copy or shard)
	writeForwarded = "forwarded" // a copy a primary forwarded (replica or EC shard)
	writeRepair    = "repair"    // re-replication or shard rebuild
	readRPC        = "rpc"       // Read calls: clients, other servers' repairs and EC writes
	readEC         = "ec"        // this server's own shard, for an EC read-modify-write
	readScrub      = "scrub"     // the background scrubber
)

// serverMetrics are the chunkserver's counters; the gauges are read from
// its state at each scrape (Collect).
type serverMetrics struct {
	written   *prometheus.CounterVec
	read      *prometheus.CounterVec
	rpcs      *metrics.RPCs
	lastBeat  atomic.Int64 // unix ns of the last heartbeat the leader took
	beatFails prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	m := &serverMetrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfs_chunk_written_bytes_total",
			Help: "Bytes written into chunk files on this server, by reason: primary (a client's write), forwarded (a replica or shard a primary sent), repair (re-replication, shard rebuild).",
		}, []string{"reason"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfs_chunk_read_bytes_total",
			Help: "Bytes read from chunk files on this server (checksums verified), by reason: rpc (Read calls from clients and other servers), ec (EC read-modify-write), scrub (background scrubber). Short-circuit reads by mounts on this machine are not seen here.",
		}, []string{"reason"}),
		beatFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfs_chunk_heartbeat_failures_total",
			Help: "Heartbeats no master leader accepted (each retry counts).",
		}),
		rpcs: metrics.NewServerRPCs(),
	}
	for _, r := range []string{writePrimary, writeForwarded, writeRepair} {
		m.written.WithLabelValues(r) // exported from the start at 0
	}
	for _, r := range []string{readRPC, readEC, readScrub} {
		m.read.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.written, m.read, m.beatFails, m.rpcs)
	}
	return m
}

// writeAt writes chunk data through the store and counts it.
func (s *Server) writeAt(k Key, p []byte, off int64, reason string) error {
	err := s.store.WriteAt(k, p, off)
	if err == nil {
		s.metrics.written.WithLabelValues(reason).Add(float64(len(p)))
	}
	return err
}

// readAt reads chunk data through the store and counts it.
func (s *Server) readAt(k Key, p []byte, off int64, reason string) (int, error) {
	n, err := s.store.ReadAt(k, p, off)
	s.metrics.read.WithLabelValues(reason).Add(float64(n))
	return n, err
}

var (
	descCapacity = prometheus.NewDesc("dfs_chunk_capacity_bytes",
		"Bytes this chunkserver offers (-capacity, or its file system's size).", nil, nil)
	descUsed = prometheus.NewDesc("dfs_chunk_used_bytes",
		"Bytes its chunk files take on disk, metadata included.", nil, nil)
	descFree = prometheus.NewDesc("dfs_chunk_free_bytes",
		"Bytes it can still take: the capacity less what is used, and no more than the file system has free.", nil, nil)
	descChunkCount = prometheus.NewDesc("dfs_chunk_chunks",
		"Chunk files (replicas and shards) stored on this server.", nil, nil)
	descCorrupt = prometheus.NewDesc("dfs_chunk_corrupt_chunks",
		"Chunks that failed checksum verification here and await repair by the master.", nil, nil)
	descSinceBeat = prometheus.NewDesc("dfs_chunk_last_heartbeat_seconds",
		"Seconds since the master leader last accepted a heartbeat from this server (absent before the first).", nil, nil)
)

// Describe and Collect make the Server a prometheus.Collector of its
// gauges.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCapacity, descUsed, descFree, descChunkCount, descCorrupt, descSinceBeat} {
		ch <- d
	}
}

func (s *Server) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	if capacity, used, free, err := s.space(); err == nil {
		gauge(descCapacity, float64(capacity))
		gauge(descUsed, float64(used))
		gauge(descFree, float64(free))
	}
	if infos, err := s.store.List(); err == nil {
		gauge(descChunkCount, float64(len(infos)))
	}
	s.mu.Lock()
	corrupt := len(s.corrupt)
	s.mu.Unlock()
	gauge(descCorrupt, float64(corrupt))
	if t := s.metrics.lastBeat.Load(); t != 0 {
		gauge(descSinceBeat, time.Since(time.Unix(0, t)).Seconds())
	}
}
