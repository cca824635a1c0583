package statuspage

import (
	"fmt"
	"math"
	"time"

	"dfs/api"
	"dfs/units"
)

// Health levels, worst last.
const (
	OK       = "ok"
	Warning  = "warning"
	Critical = "critical"
)

// lowFreeFraction is the free share of a chunkserver's capacity below
// which the page warns.
const lowFreeFraction = 0.10

// view is what the template shows.
type view struct {
	Refresh int
	Error   string // the status could not be read

	St       *api.StatusResponse
	Now      time.Time
	Self     string
	IsLeader bool
	// LeaderURL is the leader's status page, when this master is a
	// follower and knows it.
	LeaderURL string
	LeaderID  string

	Health  string
	Reasons []string

	LiveServers  int
	Capacity     uint64
	Used         uint64
	Free         uint64
	HiddenLocks  uint64 // held or waiting locks past the list's limit
	HiddenSess   uint64
	ChunkHealth  *api.ChunkHealth
	HiddenChunks uint64
}

func newView(st *api.StatusResponse, now time.Time) *view {
	v := &view{Refresh: RefreshSeconds, St: st, Now: now, Self: st.SelfId, ChunkHealth: st.ChunkHealth}
	for _, m := range st.Masters {
		if m.State == "Leader" && (v.LeaderID == "" || m.Id == st.SelfId) {
			v.LeaderID = m.Id
		}
	}
	v.IsLeader = v.LeaderID != "" && v.LeaderID == st.SelfId
	if !v.IsLeader && st.LeaderAdminAddr != "" {
		v.LeaderURL = "http://" + st.LeaderAdminAddr + "/status"
	}
	for _, s := range st.Servers {
		if s.Alive {
			v.LiveServers++
			v.Capacity += s.Capacity
			v.Used += s.Used
			v.Free += s.Free
		}
	}
	if n := uint64(len(st.LockList)); st.Locks+st.LockWaiters > n {
		v.HiddenLocks = st.Locks + st.LockWaiters - n
	}
	if n := uint64(len(st.SessionList)); st.Sessions > n {
		v.HiddenSess = st.Sessions - n
	}
	if h := st.ChunkHealth; h != nil {
		if bad := h.UnderReplicated + h.Degraded + h.Missing; bad > uint64(len(h.Problems)) {
			v.HiddenChunks = bad - uint64(len(h.Problems))
		}
	}
	v.Health, v.Reasons = health(st, v.IsLeader)
	return v
}

// health judges the cluster from st: critical when data or the metadata
// service is unavailable, warning when a failure more would make it so or
// the cluster is healing. A follower judges only the masters.
func health(st *api.StatusResponse, isLeader bool) (string, []string) {
	level := OK
	var reasons []string
	raise := func(to, why string, args ...any) {
		if to == Critical || level == OK {
			level = to
		}
		reasons = append(reasons, fmt.Sprintf(why, args...))
	}
	if st.Leader == "" {
		raise(Critical, "no leader is known: the metadata service is unavailable")
	}
	voters, down := 0, 0
	for _, m := range st.Masters {
		if m.Voter {
			voters++
		}
		if !m.Reachable {
			if m.Voter {
				down++
			}
			raise(Warning, "master %s does not answer", m.Id)
		}
	}
	if voters > 0 && down >= (voters+1)/2 {
		raise(Critical, "%d of %d voting masters do not answer: no quorum", down, voters)
	}
	if !isLeader {
		return level, reasons
	}
	live := 0
	for _, s := range st.Servers {
		if !s.Alive {
			raise(Warning, "chunkserver %s is down", s.Id)
			continue
		}
		live++
		if s.Capacity > 0 && float64(s.Free) < lowFreeFraction*float64(s.Capacity) {
			raise(Warning, "chunkserver %s has %s free of %s", s.Id, units.Bytes(s.Free), units.Bytes(s.Capacity))
		}
	}
	if live == 0 {
		raise(Critical, "no chunkserver is alive")
	}
	if h := st.ChunkHealth; h != nil {
		if h.Missing > 0 {
			raise(Critical, "%d chunks have no live copy", h.Missing)
		}
		if h.UnderReplicated > 0 {
			raise(Warning, "%d chunks are under-replicated", h.UnderReplicated)
		}
		if h.Degraded > 0 {
			raise(Warning, "%d erasure-coded chunks are degraded", h.Degraded)
		}
		if h.WarmingUp {
			raise(Warning, "new leader: not every chunkserver has reported yet")
		}
	}
	return level, reasons
}

// pct is part of whole in percent, 0 for an empty whole.
func pct(part, whole uint64) int {
	if whole == 0 {
		return 0
	}
	return int(math.Round(100 * float64(part) / float64(whole)))
}
