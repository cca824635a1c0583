package master

import (
	"context"
	"sort"
	"time"

	"dfs/api"
)

// reclaimBatch bounds the orphans one Reclaim command frees.
const reclaimBatch = 4096

// reclaimable returns orphans no session may hold (holds.go), which the
// leader may reclaim.
func (v *service) reclaimable() []uint64 {
	orphans := v.fsm.orphanList()
	if len(orphans) == 0 {
		return nil
	}
	sessions := v.fsm.sessionTTLs()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.holds == nil {
		return nil
	}
	var out []uint64
	for _, ino := range orphans {
		held := false
		for id := range sessions {
			if v.holds.mayHold(id, ino) {
				held = true
				break
			}
		}
		if !held {
			out = append(out, ino)
		}
		if len(out) == reclaimBatch {
			break
		}
	}
	return out
}

// reclaimer frees orphans once no session may hold them: soon after one
// appears (batched over reclaimDelay) and after keepalive reports.
func (v *service) reclaimer() {
	defer v.srv.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-v.srv.stop:
			return
		case <-v.reclaimKick:
		case <-tick.C:
		}
		select {
		case <-v.srv.stop:
			return
		case <-time.After(reclaimDelay):
		}
		if !v.isReady() {
			continue
		}
		inos := v.reclaimable()
		if len(inos) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		_, err := v.propose(ctx, &api.Command{NowNs: time.Now().UnixNano(), Reclaim: inos})
		cancel()
		if err != nil {
			v.srv.log.Warn("reclaiming unlinked files", "files", len(inos), "err", err)
		}
	}
}

// reclaimDelay gathers orphans into one Reclaim command.
const reclaimDelay = 100 * time.Millisecond

func (v *service) kickReclaim() {
	select {
	case v.reclaimKick <- struct{}{}:
	default:
	}
}

func (f *FSM) hasOrphans() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.orphans) > 0
}

// orphanList returns the orphans in inode order.
func (f *FSM) orphanList() []uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]uint64, 0, len(f.orphans))
	for ino := range f.orphans {
		out = append(out, ino)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
