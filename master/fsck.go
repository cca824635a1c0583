package master

import (
	"context"
	"fmt"
	"time"

	"dfs/api"
)

// fsckReportWait bounds how long Fsck waits for fresh full chunk reports.
const fsckReportWait = 10 * time.Second

// Fsck checks every chunk of every file against what the chunkservers
// hold. It first asks every live chunkserver for a full chunk report, so
// the answer reflects the disks as they are now, then classifies each
// chunk: missing (no good copy on a live server), corrupt, stale or
// under-replicated.
func (v *service) Fsck(ctx context.Context, req *api.FsckRequest) (*api.FsckResponse, error) {
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	asked := time.Now()
	r := v.repair
	r.mu.Lock()
	r.fullWant = asked
	r.mu.Unlock()
	complete := false
	deadline := time.After(fsckReportWait)
wait:
	for {
		complete = v.reportsSince(asked)
		if complete {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			break wait
		case <-time.After(100 * time.Millisecond):
		}
	}
	limit := int(req.Limit)
	if limit <= 0 {
		limit = 1000
	}
	out := &api.FsckResponse{Complete: complete}
	now := time.Now()
	chunks := v.fsm.fileChunks()
	files := map[uint64]bool{}
	var problems []*api.FsckProblem
	alive := map[string]bool{}
	v.mu.Lock()
	for id := range v.servers {
		alive[id] = v.aliveLocked(id, now)
	}
	v.mu.Unlock()
	// Lock order: repairer.mu may be taken before service.mu, never after.
	r.mu.Lock()
	for _, c := range chunks {
		files[c.ino] = true
		p := &api.FsckProblem{Ino: c.ino, Index: c.index, ChunkId: c.id, Version: c.version, Want: uint32(c.want)}
		var corrupt, stale, missing int
		for i, s := range c.replicas {
			held, reported := r.held[s][c.id]
			fresh := r.fullAt[s].After(asked)
			bad, isBad := r.corrupt[s][c.id]
			switch {
			case s == "":
				p.Detail = append(p.Detail, fmt.Sprintf("shard %d: no server (to be rebuilt)", i))
			case !alive[s]:
				p.Detail = append(p.Detail, s+": server down")
			case isBad && (bad == 0 || bad == c.version):
				corrupt++
				p.Detail = append(p.Detail, s+": corrupt")
			case fresh && reported && held < c.version:
				stale++
				p.Detail = append(p.Detail, fmt.Sprintf("%s: stale (version %d)", s, held))
			case fresh && !reported && c.leaseExpiry < asked.UnixNano():
				// Chunks being written may be newer than the report.
				missing++
				p.Detail = append(p.Detail, s+": chunk file missing")
			default:
				p.Live++
			}
		}
		switch {
		case p.Live == 0 || int(p.Live) < c.dataShards:
			p.State = "missing" // for EC: fewer than K shards cannot be decoded
		case int(p.Live) >= c.want:
			out.Healthy++
			continue
		case c.ec:
			p.State = "degraded" // EC: readable, fewer than K+M healthy shards
		case corrupt > 0:
			p.State = "corrupt"
		case stale > 0:
			p.State = "stale"
		default:
			p.State = "under-replicated"
		}
		if n := shardsLeft(c.replicas); n < c.want {
			p.Detail = append(p.Detail, fmt.Sprintf("%d of %d copies in the replica set", n, c.want))
		}
		problems = append(problems, p)
	}
	r.mu.Unlock()
	out.Files, out.Chunks, out.ProblemCount = uint64(len(files)), uint64(len(chunks)), uint64(len(problems))
	out.Problems = worstFirst(v.fsm, problems, limit)
	return out, nil
}

// reportsSince says whether every live chunkserver has sent a full
// report since t.
func (v *service) reportsSince(t time.Time) bool {
	now := time.Now()
	v.mu.Lock()
	var live []string
	for id := range v.servers {
		if v.aliveLocked(id, now) {
			live = append(live, id)
		}
	}
	v.mu.Unlock()
	v.repair.mu.Lock()
	defer v.repair.mu.Unlock()
	for _, id := range live {
		if !v.repair.fullAt[id].After(t) {
			return false
		}
	}
	return true
}
