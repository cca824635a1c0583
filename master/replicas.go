package master

import (
	"fmt"
	"sort"

	"dfs/api"
)

// replicaChange applies the repair loop's change to a chunk's replica
// set. Dropping a replica or fencing bumps the version and revokes the
// lease, so that every write still carrying the old version is refused by
// the replicas that adopt the new one.
func (f *FSM) replicaChange(c *api.Command, op *api.ReplicaChangeOp) *api.MutateResponse {
	n := f.inodes[op.Ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	ch := n.chunks[op.Index]
	if ch == nil || ch.id != op.ChunkId {
		return errResp(api.Errno_ESTALE, fmt.Sprintf("chunk %d is no longer at index %d", op.ChunkId, op.Index))
	}
	if ch.version != op.Version {
		return &api.MutateResponse{Errno: api.Errno_ESTALE, Message: fmt.Sprintf("chunk %d is at version %d, not %d", ch.id, ch.version, op.Version),
			Chunk: f.chunkProto(ch, n.attr.Layout)}
	}
	if n.attr.GetLayout().GetKind() == api.Layout_EC {
		return f.ecReplicaChange(n, ch, op)
	}
	var keep []string
	for _, r := range ch.replicas {
		if !contains(op.Drop, r) {
			keep = append(keep, r)
		}
	}
	dropped := len(keep) < len(ch.replicas)
	for _, a := range op.Add {
		if a != "" && !contains(keep, a) {
			keep = append(keep, a)
		}
	}
	if len(keep) == 0 {
		return errResp(api.Errno_EIO, fmt.Sprintf("chunk %d: change would leave no replica", ch.id))
	}
	ch.replicas = keep
	if dropped || op.Fence {
		ch.version++
		ch.primary = ""
		ch.leaseExpiry = 0
	}
	return &api.MutateResponse{Attr: n.attr.proto(), Chunk: f.chunkProto(ch, n.attr.Layout)}
}

// chunkRecord is a chunk of a file as the repair loop and fsck see it.
type chunkRecord struct {
	ino, index, id, version uint64
	replicas                []string
	want                    int    // copies (or shards) the layout asks for
	chunkSize               uint64 // bytes one replica or shard may hold
	leaseExpiry             int64
	ec                      bool
	dataShards              int // EC: K; replicas[i] holds shard i, "" if none
}

// fileChunks lists every chunk of every file, in chunk id order.
func (f *FSM) fileChunks() []chunkRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]chunkRecord, 0, len(f.chunks))
	for _, ch := range f.chunks {
		n := f.inodes[ch.ino]
		if n == nil {
			continue
		}
		l := n.attr.GetLayout()
		r := chunkRecord{ino: ch.ino, index: ch.index, id: ch.id, version: ch.version,
			replicas: append([]string(nil), ch.replicas...), want: int(l.GetReplicas()),
			chunkSize: replicaSize(l), leaseExpiry: ch.leaseExpiry}
		if l.GetKind() == api.Layout_EC {
			r.ec = true
			r.want = int(l.DataShards + l.ParityShards)
			r.dataShards = int(l.DataShards)
		}
		if r.want == 0 {
			r.want = 3
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// chunkSets returns each chunk's version (0 if no file references it) and
// replica set, and the next chunk id to be handed out.
func (f *FSM) chunkSets(ids []uint64) (versions []uint64, sets [][]string, next uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	versions = make([]uint64, len(ids))
	sets = make([][]string, len(ids))
	for i, id := range ids {
		if ch := f.chunks[id]; ch != nil {
			versions[i] = ch.version
			sets[i] = append([]string(nil), ch.replicas...)
		}
	}
	return versions, sets, f.nextChunk
}

// paths returns one path for each of the given inodes that has a name,
// found by walking the tree from the root.
func (f *FSM) paths(inos map[uint64]bool) map[uint64]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := map[uint64]string{}
	type item struct {
		ino  uint64
		path string
	}
	stack := []item{{api.RootIno, ""}}
	for len(stack) > 0 && len(out) < len(inos) {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d := f.inodes[it.ino]
		if d == nil || !isDir(&d.attr) {
			continue
		}
		for name, e := range d.entries {
			p := it.path + "/" + name
			if inos[e.ino] {
				if _, seen := out[e.ino]; !seen {
					out[e.ino] = p
				}
			}
			if c := f.inodes[e.ino]; c != nil && isDir(&c.attr) {
				stack = append(stack, item{e.ino, p})
			}
		}
	}
	return out
}
