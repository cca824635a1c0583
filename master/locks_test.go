package master

import (
	"bytes"
	"context"
	"io"
	"reflect"
	"testing"
	"time"

	"dfs/api"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func flockOp(ino, owner uint64, typ api.LockType, wait bool) *api.Op_Lock {
	return &api.Op_Lock{Lock: &api.LockOp{Ino: ino, Kind: api.LockKind_FLOCK, Owner: owner, Type: typ, End: ^uint64(0), Wait: wait}}
}

// openSession adds a second session to the harness's FSM.
func (h *harness) openSession() uint64 {
	return h.apply(&api.Command{Op: &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{Client: "other"}}}}).Session
}

func (h *harness) opAs(sess, seq uint64, o any) *api.MutateResponse {
	op := &api.Op{}
	reflect.ValueOf(op).Elem().FieldByName("Op").Set(reflect.ValueOf(o))
	return h.apply(&api.Command{Session: sess, Seq: seq, Op: op})
}

func (h *harness) answer(sess, seq uint64) *api.MutateResponse {
	h.t.Helper()
	r, _ := h.f.lockAnswer(sess, seq)
	return r
}

func TestLockWaitGrantCancelExpire(t *testing.T) {
	h := newHarness(t)
	ino := h.create(api.RootIno, "f")
	s2, s3 := h.openSession(), h.openSession()

	r := h.must(flockOp(ino, 1, api.LockType_WRITE, true), api.Errno_OK)
	first := r.Lock.Sequencer
	if first == 0 || r.Waiting {
		t.Fatalf("first lock: %v", r)
	}
	// A non-blocking request reports the holder.
	r = h.opAs(s2, 1, flockOp(ino, 1, api.LockType_READ, false))
	if r.Errno != api.Errno_EAGAIN || r.Lock.GetSession() != h.sess {
		t.Fatalf("trylock: %v", r)
	}
	// Two waiters queue; a retried request answers the same.
	if r = h.opAs(s2, 2, flockOp(ino, 1, api.LockType_WRITE, true)); !r.Waiting {
		t.Fatalf("s2 wait: %v", r)
	}
	if r = h.opAs(s3, 1, flockOp(ino, 1, api.LockType_WRITE, true)); !r.Waiting {
		t.Fatalf("s3 wait: %v", r)
	}
	if r = h.opAs(s2, 2, flockOp(ino, 1, api.LockType_WRITE, true)); !r.Waiting {
		t.Fatalf("retried s2 wait: %v", r)
	}

	// The snapshot carries locks, waiters and the sequencer.
	snap, _ := h.f.Snapshot()
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap.(*fsmSnapshot).data))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.locks, h.f.locks) {
		t.Fatalf("restored lock table differs:\n%+v\n%+v", g.locks, h.f.locks)
	}

	// s2 cancels: its answer becomes EINTR; s3 still waits.
	if r = h.opAs(s2, 3, &api.Op_CancelLock{CancelLock: &api.CancelLockOp{WaitSeq: 2}}); r.Errno != api.Errno_EINTR {
		t.Fatalf("cancel: %v", r)
	}
	if a := h.answer(s2, 2); a.Errno != api.Errno_EINTR {
		t.Fatalf("cancelled answer: %v", a)
	}
	// The holder's session expires: s3 gets the lock with a larger
	// sequencer, through the answer WaitLock reads.
	h.apply(&api.Command{ExpireSession: &api.ExpireSessionCmd{Session: h.sess}})
	a := h.answer(s3, 1)
	if a.Waiting || a.Errno != api.Errno_OK || a.Lock.GetSequencer() <= first {
		t.Fatalf("s3 answer after expiry: %v", a)
	}
	// Cancelling after the grant answers the grant.
	if r = h.opAs(s3, 2, &api.Op_CancelLock{CancelLock: &api.CancelLockOp{WaitSeq: 1}}); r.Errno != api.Errno_OK || r.Lock.GetSequencer() != a.Lock.Sequencer {
		t.Fatalf("late cancel: %v", r)
	}
	if got := h.f.testLock(s2, &api.LockOp{Ino: ino, Kind: api.LockKind_FLOCK, Owner: 1, Type: api.LockType_READ, End: ^uint64(0)}); !got.Conflict || got.Lock.Session != s3 {
		t.Fatalf("getlk: %v", got)
	}
	if got := h.f.testLock(s3, &api.LockOp{Ino: ino, Kind: api.LockKind_POSIX, Owner: 1, Type: api.LockType_WRITE, End: ^uint64(0)}); got.Conflict || got.Sequencer != a.Lock.Sequencer {
		t.Fatalf("getlk by holder: %v", got)
	}
}

func TestLockRequestsValidated(t *testing.T) {
	h := newHarness(t)
	ino := h.create(api.RootIno, "f")
	for _, op := range []*api.LockOp{
		{Ino: ino, Kind: 7, Type: api.LockType_READ, End: 1},
		{Ino: ino, Kind: api.LockKind_POSIX, Type: 9, End: 1},
		{Ino: ino, Kind: api.LockKind_POSIX, Type: api.LockType_READ, Start: 5, End: 1},
	} {
		h.must(&api.Op_Lock{Lock: op}, api.Errno_EINVAL)
	}
	h.must(&api.Op_Lock{Lock: &api.LockOp{Ino: 999, Type: api.LockType_READ, End: 1}}, api.Errno_ENOENT)
}

func TestFencedFileNeedsExclusiveLock(t *testing.T) {
	h := newHarness(t)
	ino := h.create(api.RootIno, "f")
	commit := &api.Op_CommitWrite{CommitWrite: &api.CommitWriteOp{Ino: ino, Size: 10}}
	h.must(commit, api.Errno_OK) // not fenced yet
	h.must(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: ino, Name: FenceXattr, Value: []byte("1")}}, api.Errno_OK)
	h.must(commit, api.Errno_ENOLCK)
	h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: ino, Valid: uint32(api.SetAttrOp_SIZE), Size: 0}}, api.Errno_ENOLCK)
	h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: ino, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o600}}, api.Errno_OK)
	h.must(&api.Op_Lock{Lock: &api.LockOp{Ino: ino, Kind: api.LockKind_POSIX, Owner: 1, Type: api.LockType_READ, End: 5}}, api.Errno_OK)
	h.must(commit, api.Errno_ENOLCK) // a shared lock is not enough
	h.must(flockOp(ino, 2, api.LockType_WRITE, false), api.Errno_OK)
	h.must(commit, api.Errno_OK)

	// Another session is fenced off until the holder's session expires
	// and the lock is its own.
	s2 := h.openSession()
	if r := h.opAs(s2, 1, commit); r.Errno != api.Errno_ENOLCK {
		t.Fatalf("commit by a session without the lock: %v", r)
	}
	if r := h.opAs(s2, 2, flockOp(ino, 1, api.LockType_WRITE, true)); !r.Waiting {
		t.Fatalf("s2 wait: %v", r)
	}
	h.apply(&api.Command{ExpireSession: &api.ExpireSessionCmd{Session: h.sess}})
	if r := h.opAs(s2, 3, commit); r.Errno != api.Errno_OK {
		t.Fatalf("commit by the new holder: %v", r)
	}
	if r := h.op(commit); r.Errno != api.Errno_ESTALE {
		t.Fatalf("commit by the expired holder: %v", r)
	}
}

// TestWaitLockAcrossFailover: a request waiting on the leader keeps its
// place when the leader dies; polling the new leader with the same
// (session, seq) gets the grant once the holder unlocks, with a larger
// sequencer.
func TestWaitLockAcrossFailover(t *testing.T) {
	g := startGroup(t, 3)
	ctx := context.Background()
	open := func() (sess uint64) {
		g.call(func(c api.MasterClient) error {
			r, err := c.Mutate(ctx, &api.MutateRequest{Op: &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{TtlNs: int64(time.Minute)}}}})
			if err == nil {
				sess = r.Session
			}
			return err
		})
		return sess
	}
	a, b := open(), open()
	mutate := func(sess, seq uint64, op *api.Op) (resp *api.MutateResponse) {
		g.call(func(c api.MasterClient) error {
			var err error
			resp, err = c.Mutate(ctx, &api.MutateRequest{Session: sess, Seq: seq, Caller: root, Op: op})
			return err
		})
		return resp
	}
	ino := mutate(a, 1, &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{Parent: api.RootIno, Name: "f", Mode: 0o644}}}).Attr.Ino
	held := mutate(a, 2, &api.Op{Op: flockOp(ino, 1, api.LockType_WRITE, false)})
	if held.Errno != api.Errno_OK {
		t.Fatalf("lock: %v", held)
	}
	if r := mutate(b, 1, &api.Op{Op: flockOp(ino, 1, api.LockType_WRITE, true)}); !r.Waiting {
		t.Fatalf("wait: %v", r)
	}
	poll := func() (resp *api.MutateResponse) {
		g.call(func(c api.MasterClient) error {
			var err error
			resp, err = c.WaitLock(ctx, &api.WaitLockRequest{Session: b, Seq: 1, TimeoutMs: 200})
			return err
		})
		return resp
	}
	if r := poll(); !r.Waiting {
		t.Fatalf("poll while held: %v", r)
	}
	g.stop(g.leader())
	if r := poll(); !r.Waiting {
		t.Fatalf("poll on the new leader while held: %v", r)
	}
	// The poll is answered by the unlock, not by its timeout.
	leader := g.leader()
	if leader < 0 {
		t.Fatal("no leader after a successful poll")
	}
	done := make(chan *api.MutateResponse, 1)
	go func() {
		conn, _ := grpc.NewClient(g.cfgs[leader].Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
		defer conn.Close()
		r, err := api.NewMasterClient(conn).WaitLock(ctx, &api.WaitLockRequest{Session: b, Seq: 1, TimeoutMs: 8000})
		if err != nil {
			r = &api.MutateResponse{Errno: api.Errno_EIO, Message: err.Error()}
		}
		done <- r
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	mutate(a, 3, &api.Op{Op: flockOp(ino, 1, api.LockType_UNLOCK, false)})
	r := <-done
	if r.Errno != api.Errno_OK || r.Waiting || r.Lock.GetSequencer() <= held.Lock.Sequencer {
		t.Fatalf("granted answer: %v (holder's sequencer %d)", r, held.Lock.Sequencer)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("grant took %v: the poll was not woken by the unlock", d)
	}
}
