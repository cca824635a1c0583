package master

import (
	"fmt"

	"dfs/api"
	"dfs/ec"
)

// Erasure-coded chunks keep shard i on replicas[i]; a shard whose server
// was dropped leaves "" in its place until the repair loop rebuilds it,
// so that shard numbers never shift (docs/ec.md).

// checkECLayout refuses an ec:K+M layout that needs more chunkservers
// than the cluster has registered: no chunk of it could be placed.
func (v *service) checkECLayout(op *api.SetXattrOp) *api.MutateResponse {
	if op.Name != LayoutXattr {
		return nil
	}
	l, err := api.ParseLayout(string(op.Value))
	if err != nil || l.Kind != api.Layout_EC {
		return nil // the FSM answers for bad layouts
	}
	have := 0
	for _, s := range v.fsm.serverList() {
		if !s.draining { // a draining server takes no new chunks
			have++
		}
	}
	if want := int(l.DataShards + l.ParityShards); want > have {
		return errResp(api.Errno_EINVAL, fmt.Sprintf("layout %s needs %d chunkservers; the cluster has %d (not counting draining ones)", api.FormatLayout(l), want, have))
	}
	return nil
}

// replicaSize is the bytes one replica (or one EC shard) of a chunk of
// layout l may hold.
func replicaSize(l *api.Layout) uint64 {
	cs := l.GetChunkSize()
	if cs == 0 {
		cs = api.DefaultChunkSize
	}
	if l.GetKind() == api.Layout_EC {
		return ec.ShardSize(cs, int(l.DataShards))
	}
	return cs
}

// primaryOrder lists a chunk's replicas in the order they are preferred
// as primary. For EC, parity shards come first: a primary that dies in
// the middle of a write then takes no data shard with it, and the next
// primary can recompute parity from intact data (docs/ec.md).
func primaryOrder(c *api.Chunk) []*api.Replica {
	if c.GetLayout().GetKind() != api.Layout_EC {
		return c.Replicas
	}
	k := c.Layout.DataShards
	var out []*api.Replica
	for _, r := range c.Replicas {
		if r.Shard >= k {
			out = append(out, r)
		}
	}
	for _, r := range c.Replicas {
		if r.Shard < k {
			out = append(out, r)
		}
	}
	return out
}

// firstParity is the server placed on the first parity shard of a new
// EC chunk, its first primary; for other layouts the first server.
func firstParity(l *api.Layout, placement []string) string {
	if l.GetKind() == api.Layout_EC && int(l.DataShards) < len(placement) {
		return placement[l.DataShards]
	}
	return placement[0]
}

// setPrimary gives ch's lease to want if it is in the set, else to the
// first server in the set (parity shards first for EC).
func setPrimary(ch *chunk, l *api.Layout, want string) {
	if want != "" && contains(ch.replicas, want) {
		ch.primary = want
		return
	}
	ch.primary = ""
	order := ch.replicas
	if l.GetKind() == api.Layout_EC && int(l.DataShards) < len(order) {
		order = append(append([]string{}, order[l.DataShards:]...), order[:l.DataShards]...)
	}
	for _, s := range order {
		if s != "" {
			ch.primary = s
			return
		}
	}
}

// shardsLeft counts the shards of an EC chunk that have a server.
func shardsLeft(replicas []string) int {
	n := 0
	for _, s := range replicas {
		if s != "" {
			n++
		}
	}
	return n
}

// ecDrop empties the shards held by the given servers. It refuses to
// leave fewer than K shards: the data could not be decoded any more, so
// dropping them would only hide the loss.
func ecDrop(ch *chunk, l *api.Layout, drop []string) (dropped bool, err error) {
	next := append([]string{}, ch.replicas...)
	for i, s := range next {
		if s != "" && contains(drop, s) {
			next[i] = ""
			dropped = true
		}
	}
	if left := shardsLeft(next); left < int(l.DataShards) {
		return false, fmt.Errorf("chunk %d: dropping %v would leave %d shards, fewer than the %d needed to decode", ch.id, drop, left, l.DataShards)
	}
	ch.replicas = next
	return dropped, nil
}

// ecReportFailure is reportFailure for EC chunks: failed shards become
// holes, the version moves on and the lease goes to a survivor.
func (f *FSM) ecReportFailure(c *api.Command, n *inode, ch *chunk, failed []string) *api.MutateResponse {
	l := n.attr.GetLayout()
	dropped, err := ecDrop(ch, l, failed)
	if err != nil {
		return errResp(api.Errno_EIO, err.Error())
	}
	if dropped {
		ch.version++
		setPrimary(ch, l, c.Primary)
		ch.leaseExpiry = c.NowNs + c.LeaseNs
	}
	return &api.MutateResponse{Attr: n.attr.proto(), Chunk: f.chunkProto(ch, l)}
}

// ecReplicaChange is replicaChange for EC chunks: drop empties shards,
// add fills the named shards (which must be empty).
func (f *FSM) ecReplicaChange(n *inode, ch *chunk, op *api.ReplicaChangeOp) *api.MutateResponse {
	l := n.attr.GetLayout()
	if len(op.AddShards) != len(op.Add) {
		return errResp(api.Errno_EINVAL, fmt.Sprintf("chunk %d: %d servers to add, %d shards", ch.id, len(op.Add), len(op.AddShards)))
	}
	dropped, err := ecDrop(ch, l, op.Drop)
	if err != nil {
		return errResp(api.Errno_EIO, err.Error())
	}
	next := append([]string{}, ch.replicas...)
	for i, s := range op.Add {
		sh := int(op.AddShards[i])
		if sh >= len(next) || next[sh] != "" || s == "" || contains(next, s) {
			return errResp(api.Errno_EINVAL, fmt.Sprintf("chunk %d: cannot put %q on shard %d of %v", ch.id, s, sh, next))
		}
		next[sh] = s
	}
	ch.replicas = next
	if dropped || op.Fence {
		ch.version++
		ch.primary = ""
		ch.leaseExpiry = 0
	}
	return &api.MutateResponse{Attr: n.attr.proto(), Chunk: f.chunkProto(ch, l)}
}
