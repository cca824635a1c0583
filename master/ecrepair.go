package master

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"dfs/api"
)

// rebuild decodes the missing shards of EC chunk ch (fenced at its
// current version) onto targets, one shard each, and returns the targets
// that now hold one and which shard. Each target reads the other shards
// itself (chunk.Server.rebuild); the master moves no data.
func (r *repairer) rebuild(ctx context.Context, ch *api.Chunk, targets []string, log *slog.Logger) (added []string, shards []uint32) {
	v := r.v
	l := ch.GetLayout()
	var holes []uint32
	for i := range l.DataShards + l.ParityShards {
		if !slices.ContainsFunc(ch.Replicas, func(rep *api.Replica) bool { return rep.Shard == i }) {
			holes = append(holes, i)
		}
	}
	for i, t := range targets {
		if i >= len(holes) || len(ch.Replicas) == 0 {
			break
		}
		cs, ok := v.chunkClient(t)
		if !ok {
			continue
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, replicateTimeout)
		resp, err := cs.Replicate(cctx, &api.ReplicateRequest{
			Id: ch.Id, Shard: holes[i], Version: ch.Version, ChunkSize: replicaSize(l),
			Source: ch.Replicas[0], RateBytes: v.cfg.RepairRate,
			DataShards: l.DataShards, ParityShards: l.ParityShards, Sources: ch.Replicas,
			Token: v.chunkToken(ch.Id, api.ChunkToken_MASTER)})
		cancel()
		if err == nil {
			err = resp.Errno.Err()
		}
		if err != nil {
			log.Warn("rebuilding EC shard failed", "target", t, "shard", holes[i], "err", err, "msg", resp.GetMessage())
			r.mu.Lock()
			r.avoid[t] = time.Now()
			r.mu.Unlock()
			continue
		}
		r.mu.Lock()
		r.copied += resp.Bytes
		r.mu.Unlock()
		log.Info("EC shard rebuilt", "target", t, "shard", holes[i], "bytes", resp.Bytes, "took", time.Since(start))
		added = append(added, t)
		shards = append(shards, holes[i])
	}
	return added, shards
}

// reencode has a server of fenced EC chunk ch (a parity shard's first)
// recompute the parity of every stripe from the data shards, so that a
// write cut short by a dead primary leaves no stripe whose parity
// disagrees with its data (docs/ec.md). The fence guarantees no write
// runs meanwhile.
func (r *repairer) reencode(ctx context.Context, ch *api.Chunk, log *slog.Logger) bool {
	order := primaryOrder(ch)
	if len(order) == 0 {
		return false
	}
	l := ch.GetLayout()
	cs, ok := r.v.chunkClient(order[0].Server)
	if !ok {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, replicateTimeout)
	defer cancel()
	resp, err := cs.Write(cctx, &api.WriteRequest{Id: ch.Id, Shard: order[0].Shard, Version: ch.Version,
		Forward: ch.Replicas, DataShards: l.DataShards, ParityShards: l.ParityShards, Reencode: true,
		Token: r.v.chunkToken(ch.Id, api.ChunkToken_MASTER)})
	if err == nil {
		err = resp.Errno.Err()
	}
	if err != nil {
		log.Warn("re-encoding EC chunk failed", "server", order[0].Server, "err", err, "msg", resp.GetMessage(), "failed", resp.GetFailed())
		return false
	}
	return true
}

// chunkClient connects to a registered chunkserver by id.
func (v *service) chunkClient(id string) (api.ChunkServerClient, bool) {
	info, known := v.fsm.server(id)
	if !known {
		return nil, false
	}
	conn, err := v.conn(info.addr)
	if err != nil {
		return nil, false
	}
	return api.NewChunkServerClient(conn), true
}
