package client

import (
	"context"
	"fmt"
	"time"

	"dfs/api"
)

// Distributed locks. A lock request is a mutation with this session's
// (session, seq) identity. A request that must wait is queued on the
// master; the client then long-polls WaitLock with the same identity,
// following the leader across failovers, until the master grants it. A
// cancelled context (a signal in the waiting process) removes the waiter
// through CancelLock, unless the grant won the race, in which case the
// lock is held and reported as granted.

// lockPoll is how long one WaitLock call may wait on the leader.
const lockPoll = 5 * time.Second

// ErrLockLost says the session that held or waited for a lock expired:
// the lock may now belong to someone else.
var ErrLockLost = fmt.Errorf("%w: session expired, lock lost", api.Errno_ENOLCK)

// Lock takes, converts or releases a lock as op says. It returns the
// grant (with its sequencer) or, for a conflicting request that does not
// wait, the conflicting lock with an EAGAIN error. A waiting request
// returns when granted, or with an EINTR error once ctx is cancelled and
// the wait removed.
func (c *Client) Lock(ctx context.Context, op *api.LockOp) (*api.LockInfo, error) {
	// The seq stays pending until the final answer is in, so that the
	// master keeps the answer a wait ends with.
	sess, seq, done := c.reserveSeq()
	defer done()
	req := &api.MutateRequest{Session: sess, Seq: seq, Caller: callerOf(ctx), Op: &api.Op{Op: &api.Op_Lock{Lock: op}}}
	// Whether a request was queued is only known from its answer, so
	// the request itself is not abandoned on cancellation.
	qctx := context.WithoutCancel(ctx)
	resp, err := c.send(qctx, req)
	if err != nil {
		return nil, err
	}
	for resp.Waiting {
		if ctx.Err() != nil {
			resp, err = c.cancelLock(qctx, sess, seq)
			if err != nil {
				return nil, err
			}
			break
		}
		if c.Session() != sess {
			return nil, ErrLockLost
		}
		var r *api.MutateResponse
		err := c.callMaster(ctx, func(actx context.Context, m api.MasterClient) error {
			var err error
			r, err = m.WaitLock(actx, &api.WaitLockRequest{Session: sess, Seq: seq, TimeoutMs: uint32(lockPoll / time.Millisecond)})
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				continue // cancel on the next turn
			}
			// No leader for a whole call timeout: keep waiting as
			// long as the session may live.
			c.cfg.Logf("dfs client: waiting for lock: %v", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		resp = r
	}
	switch {
	case resp.Errno == api.Errno_ESTALE:
		return nil, ErrLockLost
	case resp.Errno != api.Errno_OK:
		return resp.Lock, errnoErr(resp.Errno, resp.Message)
	}
	return resp.Lock, nil
}

// cancelLock removes the wait of (sess, seq), or learns that it was
// granted first.
func (c *Client) cancelLock(ctx context.Context, sess, seq uint64) (*api.MutateResponse, error) {
	if c.Session() != sess {
		return nil, ErrLockLost
	}
	resp, err := c.mutate(ctx, &api.Op{Op: &api.Op_CancelLock{CancelLock: &api.CancelLockOp{WaitSeq: seq}}})
	if err != nil {
		return nil, err
	}
	if resp.Errno == api.Errno_ESTALE {
		return nil, ErrLockLost
	}
	return resp, nil
}

// GetLock answers F_GETLK for op: the lock it conflicts with, if any,
// and the largest sequencer this session holds on the file.
func (c *Client) GetLock(ctx context.Context, op *api.LockOp) (*api.GetLockResponse, error) {
	sess := c.Session()
	var resp *api.GetLockResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) error {
		var err error
		resp, err = m.GetLock(ctx, &api.GetLockRequest{Session: sess, Lock: op})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, errnoErr(resp.Errno, "")
}

// SessionState returns the current session and the time until which it
// is surely alive on the masters, by this host's clock. A session that
// is replaced (after expiry) has lost every lock it held.
func (c *Client) SessionState() (session uint64, validUntil time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session, c.validUntil
}

// renewed records a keepalive of session sess sent at sent that the
// masters answered.
func (c *Client) renewed(sess uint64, sent time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == sess {
		if until := sent.Add(c.cfg.SessionTTL); until.After(c.validUntil) {
			c.validUntil = until
		}
	}
}

// Invalidate forgets the cached chunk locations, so that the next reads
// ask the master: another host may have replaced the file's chunks (a
// truncate and rewrite) since they were learned. Data written but not
// yet synced stays tracked.
func (f *File) Invalidate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.chunks)
}
