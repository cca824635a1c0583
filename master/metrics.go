package master

import (
	"context"
	"time"

	"dfs/api"
	"dfs/metrics"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// masterMetrics are the events a master counts as they happen; the rest
// of its metrics are read from its state at each scrape (collector).
type masterMetrics struct {
	apply           prometheus.Histogram   // dfs_raft_apply_seconds
	applyCommands   prometheus.Histogram   // dfs_raft_apply_commands
	sessionsExpired prometheus.Counter     // dfs_master_sessions_expired_total
	repairs         *prometheus.CounterVec // dfs_master_repairs_total{result}
	rpcs            *metrics.RPCs
}

func newMasterMetrics(reg prometheus.Registerer) *masterMetrics {
	m := &masterMetrics{
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dfs_raft_apply_seconds",
			Help:    "Time from the leader proposing one Raft entry (a batch of mutations) to its commit and application, on the leader.",
			Buckets: metrics.LatencyBuckets,
		}),
		applyCommands: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dfs_raft_apply_commands",
			Help:    "Commands (mutations, session changes) batched into one Raft entry by the leader.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 .. 512 (maxBatch)
		}),
		sessionsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dfs_master_sessions_expired_total",
			Help: "Client sessions this master expired as leader (their mounts stopped sending keepalives for the TTL).",
		}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfs_master_repairs_total",
			Help: "Chunk repairs (re-replications, shard rebuilds) this master ran as leader, by result: complete, or incomplete (retried later).",
		}, []string{"result"}),
		rpcs: metrics.NewServerRPCs(),
	}
	for _, r := range []string{"complete", "incomplete"} {
		m.repairs.WithLabelValues(r) // exported from the start at 0
	}
	if reg != nil {
		reg.MustRegister(m.apply, m.applyCommands, m.sessionsExpired, m.repairs, m.rpcs)
	}
	return m
}

// collector reads a master's Raft node and state when scraped. The
// cluster-wide figures (chunk health, chunkservers, repair queue) are the
// leader's soft state: only the leader exports them, and a new leader
// exports chunk health only once every chunkserver has reported.
type collector struct{ v *service }

var (
	descRaftState = prometheus.NewDesc("dfs_raft_state",
		"1 for this master's current Raft state (Leader, Follower, Candidate, Shutdown), 0 for the others.", []string{"state"}, nil)
	descRaftTerm = prometheus.NewDesc("dfs_raft_term",
		"This master's current Raft term; it rises with every election.", nil, nil)
	descRaftCommit = prometheus.NewDesc("dfs_raft_commit_index",
		"The highest Raft log index this master knows to be committed.", nil, nil)
	descRaftApplied = prometheus.NewDesc("dfs_raft_applied_index",
		"The highest Raft log index applied to this master's state machine.", nil, nil)
	descRaftLast = prometheus.NewDesc("dfs_raft_last_log_index",
		"The last index in this master's Raft log (stored, maybe not committed).", nil, nil)
	descRaftContact = prometheus.NewDesc("dfs_raft_last_contact_seconds",
		"Seconds since this follower last heard from the leader (0 on the leader; absent before any contact).", nil, nil)
	descRaftVoters = prometheus.NewDesc("dfs_raft_voters",
		"Voting members of the Raft group in this master's configuration.", nil, nil)
	descReady = prometheus.NewDesc("dfs_master_leader_ready",
		"1 if this master is the leader and has applied everything committed before it took over, so it serves clients.", nil, nil)

	descInodes   = prometheus.NewDesc("dfs_master_inodes", "Inodes in the namespace.", nil, nil)
	descChunks   = prometheus.NewDesc("dfs_master_chunks", "Chunks that files reference.", nil, nil)
	descLogical  = prometheus.NewDesc("dfs_master_logical_bytes", "Sum of the sizes of all files (before replication).", nil, nil)
	descSessions = prometheus.NewDesc("dfs_master_sessions", "Open client sessions (mounts, dfsctl).", nil, nil)
	descLocks    = prometheus.NewDesc("dfs_master_locks_held", "Locks (flock, fcntl, OFD) granted and not released.", nil, nil)
	descWaiters  = prometheus.NewDesc("dfs_master_lock_waiters", "Blocking lock requests waiting on the master.", nil, nil)

	descServerUp = prometheus.NewDesc("dfs_master_chunkserver_up",
		"Leader only: 1 if the chunkserver heartbeated within -server-dead-after, else 0.", []string{"server", "addr", "zone"}, nil)
	descServerCap = prometheus.NewDesc("dfs_master_chunkserver_capacity_bytes",
		"Leader only: bytes the chunkserver offers, as of its last heartbeat.", []string{"server", "addr", "zone"}, nil)
	descServerFree = prometheus.NewDesc("dfs_master_chunkserver_free_bytes",
		"Leader only: bytes the chunkserver can still take, as of its last heartbeat.", []string{"server", "addr", "zone"}, nil)
	descServerSeen = prometheus.NewDesc("dfs_master_chunkserver_last_heartbeat_seconds",
		"Leader only: seconds since the chunkserver's last heartbeat.", []string{"server", "addr", "zone"}, nil)
	descHealth = prometheus.NewDesc("dfs_master_chunks_by_health",
		"Leader only: chunks by health (healthy, under_replicated, degraded, missing) from the leader's view of live copies.", []string{"health"}, nil)
	descWarming = prometheus.NewDesc("dfs_master_warming_up",
		"Leader only: 1 while a new leader waits for every chunkserver's first heartbeat (chunk health is not exported until then).", nil, nil)
	descRepairing = prometheus.NewDesc("dfs_master_repairs_running",
		"Leader only: chunk repairs in flight.", nil, nil)
	descRepairQueue = prometheus.NewDesc("dfs_master_repair_queue_chunks",
		"Leader only: chunks the last repair pass found needing a repair it could start (running ones and ones in their retry pause excluded).", nil, nil)
	descCopied = prometheus.NewDesc("dfs_master_repair_copied_bytes_total",
		"Leader only: bytes copied by repairs since this master became leader.", nil, nil)
)

var collectorDescs = []*prometheus.Desc{descRaftState, descRaftTerm, descRaftCommit, descRaftApplied, descRaftLast,
	descRaftContact, descRaftVoters, descReady, descInodes, descChunks, descLogical, descSessions, descLocks, descWaiters,
	descServerUp, descServerCap, descServerFree, descServerSeen, descHealth, descWarming, descRepairing, descRepairQueue, descCopied}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range collectorDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	v := c.v
	gauge := func(d *prometheus.Desc, val float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, val, labels...)
	}
	now := time.Now()
	state := v.raft.State()
	for _, s := range []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate, raft.Shutdown} {
		gauge(descRaftState, boolValue(s == state), s.String())
	}
	gauge(descRaftTerm, float64(v.raft.CurrentTerm()))
	gauge(descRaftCommit, float64(v.raft.CommitIndex()))
	gauge(descRaftApplied, float64(v.raft.AppliedIndex()))
	gauge(descRaftLast, float64(v.raft.LastIndex()))
	if state == raft.Leader {
		gauge(descRaftContact, 0)
	} else if t := v.raft.LastContact(); !t.IsZero() {
		gauge(descRaftContact, now.Sub(t).Seconds())
	}
	ready := v.isReady()
	gauge(descReady, boolValue(ready))

	st, _ := v.Status(context.Background(), &api.StatusRequest{})
	voters := 0
	for _, m := range st.Masters {
		if m.Voter {
			voters++
		}
	}
	gauge(descRaftVoters, float64(voters))
	gauge(descInodes, float64(st.Inodes))
	gauge(descChunks, float64(st.Chunks))
	gauge(descLogical, float64(st.LogicalBytes))
	gauge(descSessions, float64(st.Sessions))
	gauge(descLocks, float64(st.Locks))
	gauge(descWaiters, float64(st.LockWaiters))
	if !ready {
		return
	}
	for _, s := range st.Servers {
		labels := []string{s.Id, s.Addr, s.Zone}
		gauge(descServerUp, boolValue(s.Alive), labels...)
		gauge(descServerCap, float64(s.Capacity), labels...)
		gauge(descServerFree, float64(s.Free), labels...)
		if s.LastSeenNs > 0 {
			gauge(descServerSeen, now.Sub(time.Unix(0, s.LastSeenNs)).Seconds(), labels...)
		}
	}
	h := v.chunkHealth(false)
	gauge(descWarming, boolValue(h.WarmingUp))
	if !h.WarmingUp {
		gauge(descHealth, float64(h.Healthy), "healthy")
		gauge(descHealth, float64(h.UnderReplicated), "under_replicated")
		gauge(descHealth, float64(h.Degraded), "degraded")
		gauge(descHealth, float64(h.Missing), "missing")
	}
	r := v.repair
	r.mu.Lock()
	running, queued, copied := r.running, r.queued, r.copied
	r.mu.Unlock()
	gauge(descRepairing, float64(running))
	gauge(descRepairQueue, float64(queued))
	ch <- prometheus.MustNewConstMetric(descCopied, prometheus.CounterValue, float64(copied))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
