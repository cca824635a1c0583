package master

import (
	"context"
	"fmt"
	"time"

	"dfs/api"
	"dfs/lease"
)

// Distributed locks. The lock table (lease.Table) is part of the FSM:
// every grant, wait, cancel and release is a replicated command, so a new
// leader has every lock and every waiter. A waiting request is answered
// "waiting" at once; its final answer later replaces the stored answer of
// the same (session, seq), which WaitLock long-polls on the leader.

func lockInfo(l lease.Lock) *api.LockInfo {
	return &api.LockInfo{Kind: api.LockKind(l.Kind), Type: api.LockType(l.Type), Start: l.Start, End: l.End,
		Pid: l.Pid, Session: l.Owner.Session, Owner: l.Owner.ID, Sequencer: l.Sequencer}
}

func lockRequest(s *session, seq uint64, op *api.LockOp) lease.Request {
	return lease.Request{Ino: op.Ino, Kind: lease.Kind(op.Kind), Owner: lease.Owner{Session: s.id, ID: op.Owner},
		Type: lease.Type(op.Type), Start: op.Start, End: op.End, Pid: op.Pid, Wait: op.Wait,
		Waiter: lease.Waiter{Session: s.id, Seq: seq}}
}

func validLockOp(op *api.LockOp) api.Errno {
	switch {
	case op.Kind != api.LockKind_FLOCK && op.Kind != api.LockKind_POSIX:
		return api.Errno_EINVAL
	case op.Type != api.LockType_UNLOCK && op.Type != api.LockType_READ && op.Type != api.LockType_WRITE:
		return api.Errno_EINVAL
	case op.Start > op.End:
		return api.Errno_EINVAL
	}
	return api.Errno_OK
}

// lock applies a LockOp.
func (f *FSM) lock(c *api.Command, s *session, op *api.LockOp) *api.MutateResponse {
	if s == nil || (op.Wait && c.Seq == 0) {
		return errResp(api.Errno_EINVAL, "lock requests need a session and a sequence number")
	}
	if e := validLockOp(op); e != api.Errno_OK {
		return errResp(e, fmt.Sprintf("bad lock request %v", op))
	}
	if f.inodes[op.Ino] == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	st, seq, conflict, grants := f.locks.Lock(lockRequest(s, c.Seq, op), c.NowNs)
	f.answerGrants(grants)
	switch st {
	case lease.Conflict:
		return &api.MutateResponse{Errno: api.Errno_EAGAIN, Lock: lockInfo(conflict)}
	case lease.Waiting:
		return &api.MutateResponse{Waiting: true}
	}
	return &api.MutateResponse{Lock: &api.LockInfo{Kind: op.Kind, Type: op.Type, Start: op.Start, End: op.End,
		Pid: op.Pid, Session: s.id, Owner: op.Owner, Sequencer: seq}}
}

// cancelLock ends a wait: EINTR if it was still queued, else the answer
// it already has (a grant that won the race).
func (f *FSM) cancelLock(c *api.Command, s *session, op *api.CancelLockOp) *api.MutateResponse {
	if s == nil {
		return errResp(api.Errno_EINVAL, "cancel without a session")
	}
	removed, grants := f.locks.Cancel(lease.Waiter{Session: s.id, Seq: op.WaitSeq}, c.NowNs)
	f.answerGrants(grants)
	if removed {
		r := errResp(api.Errno_EINTR, "lock wait cancelled")
		if _, ok := s.responses[op.WaitSeq]; ok {
			s.responses[op.WaitSeq] = r
		}
		f.wakeLockWaits()
		return r
	}
	if r, ok := s.responses[op.WaitSeq]; ok && !r.Waiting {
		return r
	}
	return errResp(api.Errno_EINVAL, fmt.Sprintf("no lock wait %d in session %d", op.WaitSeq, s.id))
}

// FenceXattr, set (to any value) on a file, fences its data path: the
// master accepts chunk allocations and lease renewals, write commits and
// size changes for it only from a session that holds an exclusive lock
// on it. A holder whose session expired (a paused or partitioned client)
// can then no longer change the file once another has the lock.
const FenceXattr = "user.dfs.lock.fence"

// fenced refuses a data-path change to a fenced file from a session that
// holds no exclusive lock on it. Commands the leader makes for itself
// (no session) pass.
func (f *FSM) fenced(c *api.Command, s *session) *api.MutateResponse {
	if s == nil {
		return nil
	}
	var ino uint64
	switch op := c.Op.Op.(type) {
	case *api.Op_AllocChunk:
		ino = op.AllocChunk.Ino
	case *api.Op_CommitWrite:
		ino = op.CommitWrite.Ino
	case *api.Op_SetAttr:
		if op.SetAttr.Valid&uint32(api.SetAttrOp_SIZE) == 0 {
			return nil
		}
		ino = op.SetAttr.Ino
	default:
		return nil
	}
	n := f.inodes[ino]
	if n == nil {
		return nil
	}
	if _, on := n.xattrs[FenceXattr]; !on || f.locks.HoldsWrite(ino, s.id) {
		return nil
	}
	return errResp(api.Errno_ENOLCK, fmt.Sprintf("inode %d is fenced (%s) and session %d holds no exclusive lock on it", ino, FenceXattr, s.id))
}

// answerGrants records the final answer of granted waits and wakes the
// WaitLock calls polling for them.
func (f *FSM) answerGrants(grants []lease.Grant) {
	if len(grants) == 0 {
		return
	}
	for _, g := range grants {
		s := f.sessions[g.Waiter.Session]
		if s == nil {
			continue
		}
		if r, ok := s.responses[g.Waiter.Seq]; ok && r.Waiting {
			s.responses[g.Waiter.Seq] = &api.MutateResponse{Lock: &api.LockInfo{Sequencer: g.Sequencer, Session: s.id}}
		}
	}
	f.wakeLockWaits()
}

// releaseSessionLocks frees a closing or expired session's locks and
// waits, granting what waits behind them.
func (f *FSM) releaseSessionLocks(id uint64, now int64) {
	f.answerGrants(f.locks.ReleaseSession(id, now))
	// The session's own polls learn at once that it is gone.
	f.wakeLockWaits()
}

// wakeLockWaits wakes every WaitLock poll to look again; f.mu is held
// for writing.
func (f *FSM) wakeLockWaits() {
	f.lockMu.Lock()
	if f.lockChanged != nil {
		close(f.lockChanged)
	}
	f.lockChanged = make(chan struct{})
	f.lockMu.Unlock()
}

// lockAnswer returns the current answer to (session, seq) and a channel
// closed at the next change of any wait.
func (f *FSM) lockAnswer(session, seq uint64) (*api.MutateResponse, <-chan struct{}) {
	f.lockMu.Lock()
	if f.lockChanged == nil {
		f.lockChanged = make(chan struct{})
	}
	ch := f.lockChanged
	f.lockMu.Unlock()
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.sessions[session]
	if s == nil {
		return errResp(api.Errno_ESTALE, fmt.Sprintf("session %d expired", session)), ch
	}
	r, ok := s.responses[seq]
	if !ok {
		return errResp(api.Errno_EINVAL, fmt.Sprintf("no lock request %d in session %d", seq, session)), ch
	}
	return r, ch
}

// testLock answers F_GETLK, and the session's sequencer on the file.
func (f *FSM) testLock(session uint64, op *api.LockOp) *api.GetLockResponse {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if e := validLockOp(op); e != api.Errno_OK {
		return &api.GetLockResponse{Errno: e}
	}
	out := &api.GetLockResponse{Sequencer: f.locks.Sequencer(op.Ino, session)}
	l, c := f.locks.Test(lease.Request{Ino: op.Ino, Kind: lease.Kind(op.Kind),
		Owner: lease.Owner{Session: session, ID: op.Owner}, Type: lease.Type(op.Type), Start: op.Start, End: op.End})
	if c {
		out.Conflict, out.Lock = true, lockInfo(l)
	}
	return out
}

// lockCounts returns how many locks are held and how many requests wait.
func (f *FSM) lockCounts() (held, waiting uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ls, qs := f.locks.All()
	return uint64(len(ls)), uint64(len(qs))
}

// snapshotLocks adds the lock table to a snapshot header.
func (f *FSM) snapshotLocks(h *api.SnapshotHeader) {
	ls, qs := f.locks.All()
	h.LastSequencer = f.locks.LastSequencer()
	for _, l := range ls {
		h.Locks = append(h.Locks, &api.SnapshotLock{Op: &api.LockOp{Ino: l.Ino, Kind: api.LockKind(l.Kind),
			Owner: l.Owner.ID, Type: api.LockType(l.Type), Start: l.Start, End: l.End, Pid: l.Pid},
			Session: l.Owner.Session, Sequencer: l.Sequencer, TimeNs: l.GrantedNs})
	}
	for _, q := range qs {
		h.Waiters = append(h.Waiters, &api.SnapshotLock{Op: &api.LockOp{Ino: q.Ino, Kind: api.LockKind(q.Kind),
			Owner: q.Owner.ID, Type: api.LockType(q.Type), Start: q.Start, End: q.End, Pid: q.Pid, Wait: true},
			Session: q.Owner.Session, TimeNs: q.QueuedNs, WaitSeq: q.Waiter.Seq})
	}
}

// restoreLocks rebuilds the lock table from a snapshot header.
func restoreLocks(h *api.SnapshotHeader) (*lease.Table, error) {
	var ls []lease.Lock
	var qs []lease.Queued
	for _, rec := range h.Locks {
		op := rec.GetOp()
		if op == nil || validLockOp(op) != api.Errno_OK || op.Type == api.LockType_UNLOCK || rec.Sequencer > h.LastSequencer {
			return nil, fmt.Errorf("bad lock record %v", rec)
		}
		ls = append(ls, lease.Lock{Ino: op.Ino, Kind: lease.Kind(op.Kind), Owner: lease.Owner{Session: rec.Session, ID: op.Owner},
			Type: lease.Type(op.Type), Start: op.Start, End: op.End, Pid: op.Pid, Sequencer: rec.Sequencer, GrantedNs: rec.TimeNs})
	}
	for _, rec := range h.Waiters {
		op := rec.GetOp()
		if op == nil || validLockOp(op) != api.Errno_OK || op.Type == api.LockType_UNLOCK {
			return nil, fmt.Errorf("bad lock waiter record %v", rec)
		}
		qs = append(qs, lease.Queued{Request: lease.Request{Ino: op.Ino, Kind: lease.Kind(op.Kind),
			Owner: lease.Owner{Session: rec.Session, ID: op.Owner}, Type: lease.Type(op.Type), Start: op.Start, End: op.End,
			Pid: op.Pid, Wait: true, Waiter: lease.Waiter{Session: rec.Session, Seq: rec.WaitSeq}}, QueuedNs: rec.TimeNs})
	}
	return lease.Restore(h.LastSequencer, ls, qs), nil
}

// ---------------------------------------------------------------------
// The leader's lock RPCs.

// maxLockPoll bounds one WaitLock call; the client asks again.
const maxLockPoll = 10 * time.Second

// WaitLock answers a waiting lock request once it is granted or
// cancelled, or with waiting = true when the poll time is up. It waits
// on the leader, woken by applied lock changes; no client polls.
func (v *service) WaitLock(ctx context.Context, req *api.WaitLockRequest) (*api.MutateResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	d := time.Duration(req.TimeoutMs) * time.Millisecond
	if d <= 0 || d > maxLockPoll {
		d = maxLockPoll
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	// Leadership is rechecked now and then so that a deposed leader
	// sends the client on to the new one.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r, changed := v.fsm.lockAnswer(req.Session, req.Seq)
		if !r.Waiting {
			return r, nil
		}
		select {
		case <-changed:
		case <-tick.C:
			if err := v.checkLeader(); err != nil {
				return nil, err
			}
		case <-timer.C:
			return r, nil
		case <-v.srv.draining:
			// Stopping: the client asks again, of the next leader.
			return nil, v.notLeader()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// GetLock answers F_GETLK from the leader's confirmed state.
func (v *service) GetLock(ctx context.Context, req *api.GetLockRequest) (*api.GetLockResponse, error) {
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	if req.Lock == nil {
		return &api.GetLockResponse{Errno: api.Errno_EINVAL}, nil
	}
	return v.fsm.testLock(req.Session, req.Lock), nil
}
