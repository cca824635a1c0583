package lease

import (
	"math"
	"sort"
)

// Kind separates the lock namespaces: BSD flock locks and POSIX record
// locks on one file never conflict with each other, as on Linux. OFD
// locks are POSIX record locks whose owner is an open file description
// rather than a process; the table need not tell them apart.
type Kind uint8

// Lock kinds.
const (
	Flock Kind = iota
	Posix
)

// Type is what a request asks for.
type Type uint8

// Lock types. Read is shared (F_RDLCK, LOCK_SH), Write exclusive
// (F_WRLCK, LOCK_EX).
const (
	Unlock Type = iota
	Read
	Write
)

// MaxEnd is the inclusive end of a lock that runs to the end of the file.
const MaxEnd = math.MaxUint64

// Owner is who holds a lock: a session (one mount) and the kernel's lock
// owner within it (a process's file table for POSIX locks, an open file
// description for flock and OFD locks). Two processes on two mounts are
// two owners, exactly as two processes on one host are.
type Owner struct {
	Session uint64
	ID      uint64
}

// Waiter names a blocked request: the session and sequence number of the
// request that queued it. The answer to that request is what a granted or
// cancelled wait changes.
type Waiter struct {
	Session uint64
	Seq     uint64
}

// Lock is a held lock on the byte range [Start, End] of file Ino; flock
// locks always cover [0, MaxEnd]. Sequencer is the grant's fencing token:
// larger means granted later.
type Lock struct {
	Ino        uint64
	Kind       Kind
	Owner      Owner
	Type       Type
	Start, End uint64
	Pid        uint32
	Sequencer  uint64
	GrantedNs  int64
}

// Request asks for, or releases, a lock. Type Unlock releases the range.
// Wait makes a conflicting request queue as Waiter instead of failing.
type Request struct {
	Ino        uint64
	Kind       Kind
	Owner      Owner
	Type       Type
	Start, End uint64
	Pid        uint32
	Wait       bool
	Waiter     Waiter
}

// Queued is a waiting request, in arrival order within its file.
type Queued struct {
	Request
	QueuedNs int64
}

// Status is the outcome of a request.
type Status uint8

// Outcomes of Table.Lock.
const (
	Granted  Status = iota // held (or released) now
	Conflict               // would block and the request does not wait
	Waiting                // queued; a later Grant names its Waiter
)

// Grant tells the caller that a queued request now holds its lock.
type Grant struct {
	Waiter    Waiter
	Sequencer uint64
}

type fileKey struct {
	ino  uint64
	kind Kind
}

// Table is the replicated lock table: held locks and FIFO wait queues per
// file and kind, and the sequencer counter. It is deterministic: the
// same calls in the same order give the same state on every replica;
// time comes in as arguments. Not safe for concurrent use.
type Table struct {
	held   map[fileKey][]Lock   // sorted by (Start, Owner)
	queues map[fileKey][]Queued // arrival order
	next   uint64               // last sequencer handed out
}

// NewTable returns an empty table whose first sequencer is after last.
func NewTable(last uint64) *Table {
	return &Table{held: map[fileKey][]Lock{}, queues: map[fileKey][]Queued{}, next: last}
}

// LastSequencer returns the largest sequencer handed out; persist it so
// that sequencers never go backwards.
func (t *Table) LastSequencer() uint64 { return t.next }

func overlaps(aStart, aEnd, bStart, bEnd uint64) bool {
	return aStart <= bEnd && bStart <= aEnd
}

// conflicts reports whether a lock of type typ over [start, end] by owner
// cannot coexist with l.
func conflicts(l *Lock, owner Owner, typ Type, start, end uint64) bool {
	return l.Owner != owner && overlaps(l.Start, l.End, start, end) && (l.Type == Write || typ == Write)
}

func (r *Request) norm() {
	if r.Kind == Flock {
		r.Start, r.End = 0, MaxEnd
	}
}

// Test answers F_GETLK: the held lock a request would conflict with,
// the one with the lowest start, if any.
func (t *Table) Test(r Request) (Lock, bool) {
	r.norm()
	if r.Type == Unlock {
		return Lock{}, false
	}
	for _, l := range t.held[fileKey{r.Ino, r.Kind}] {
		if conflicts(&l, r.Owner, r.Type, r.Start, r.End) {
			return l, true
		}
	}
	return Lock{}, false
}

// Lock applies a request at time now. It returns the outcome, the
// sequencer of a grant (0 for an unlock or a conflict), the conflicting
// lock for Conflict, and the queued requests that the change let through.
//
// A blocking request also queues behind earlier waiters it conflicts
// with, so waiters are served first come, first served. A non-blocking
// one only looks at held locks. A POSIX request that must wait keeps the
// owner's current locks (an upgrade is atomic); a flock conversion that
// must wait drops the old lock first, as Linux does.
func (t *Table) Lock(r Request, now int64) (Status, uint64, Lock, []Grant) {
	r.norm()
	k := fileKey{r.Ino, r.Kind}
	if r.Type == Unlock {
		t.apply(k, r, now, 0)
		return Granted, 0, Lock{}, t.wake(k, now)
	}
	if c, ok := t.Test(r); ok || (r.Wait && t.queuedConflict(k, r, len(t.queues[k]))) {
		if !r.Wait {
			return Conflict, 0, c, nil
		}
		var grants []Grant
		if r.Kind == Flock {
			t.apply(k, Request{Ino: r.Ino, Kind: Flock, Owner: r.Owner, Type: Unlock}, now, 0)
			grants = t.wake(k, now)
		}
		t.queues[k] = append(t.queues[k], Queued{Request: r, QueuedNs: now})
		// Dropping the old flock lock may have let this request
		// through too.
		grants = append(grants, t.wake(k, now)...)
		for _, g := range grants {
			if g.Waiter == r.Waiter {
				return Granted, g.Sequencer, Lock{}, without(grants, r.Waiter)
			}
		}
		return Waiting, 0, Lock{}, grants
	}
	t.next++
	seq := t.next
	t.apply(k, r, now, seq)
	// A downgrade may let waiters through.
	return Granted, seq, Lock{}, t.wake(k, now)
}

func without(gs []Grant, w Waiter) []Grant {
	out := gs[:0:0]
	for _, g := range gs {
		if g.Waiter != w {
			out = append(out, g)
		}
	}
	return out
}

// queuedConflict reports whether one of the first n waiters of k
// conflicts with r.
func (t *Table) queuedConflict(k fileKey, r Request, n int) bool {
	for _, q := range t.queues[k][:n] {
		if q.Owner != r.Owner && overlaps(q.Start, q.End, r.Start, r.End) && (q.Type == Write || r.Type == Write) {
			return true
		}
	}
	return false
}

// apply sets owner's coverage of [r.Start, r.End] to r.Type (Unlock
// removes it), splitting and merging ranges as POSIX says.
func (t *Table) apply(k fileKey, r Request, now int64, seq uint64) {
	r.norm()
	old := t.held[k]
	out := make([]Lock, 0, len(old)+2)
	for _, l := range old {
		if l.Owner != r.Owner || !overlaps(l.Start, l.End, r.Start, r.End) {
			out = append(out, l)
			continue
		}
		if l.Start < r.Start {
			left := l
			left.End = r.Start - 1
			out = append(out, left)
		}
		if l.End > r.End {
			right := l
			right.Start = r.End + 1
			out = append(out, right)
		}
	}
	if r.Type != Unlock {
		nl := Lock{Ino: r.Ino, Kind: r.Kind, Owner: r.Owner, Type: r.Type, Start: r.Start, End: r.End,
			Pid: r.Pid, Sequencer: seq, GrantedNs: now}
		// Merge with the owner's touching ranges of the same type.
		kept := out[:0]
		for _, l := range out {
			if l.Owner == r.Owner && l.Type == r.Type &&
				(overlaps(l.Start, l.End, nl.Start, nl.End) || (l.End != MaxEnd && l.End+1 == nl.Start) || (nl.End != MaxEnd && nl.End+1 == l.Start)) {
				nl.Start, nl.End = min(nl.Start, l.Start), max(nl.End, l.End)
				continue
			}
			kept = append(kept, l)
		}
		out = append(kept, nl)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start < out[j].Start
		}
		if out[i].Owner.Session != out[j].Owner.Session {
			return out[i].Owner.Session < out[j].Owner.Session
		}
		return out[i].Owner.ID < out[j].Owner.ID
	})
	if len(out) == 0 {
		delete(t.held, k)
	} else {
		t.held[k] = out
	}
}

// wake grants, in arrival order, every waiter of k that conflicts
// neither with a held lock nor with an earlier waiter.
func (t *Table) wake(k fileKey, now int64) []Grant {
	var grants []Grant
	for {
		q := t.queues[k]
		found := -1
		for i, w := range q {
			if _, c := t.Test(w.Request); c || t.queuedConflict(k, w.Request, i) {
				continue
			}
			found = i
			break
		}
		if found < 0 {
			return grants
		}
		w := q[found]
		t.dropQueued(k, found)
		t.next++
		t.apply(k, w.Request, now, t.next)
		grants = append(grants, Grant{Waiter: w.Waiter, Sequencer: t.next})
	}
}

func (t *Table) dropQueued(k fileKey, i int) {
	q := append(t.queues[k][:i:i], t.queues[k][i+1:]...)
	if len(q) == 0 {
		delete(t.queues, k)
	} else {
		t.queues[k] = q
	}
}

// Cancel removes a queued request (an interrupted wait). It reports
// false if w is not waiting (granted already, or unknown).
func (t *Table) Cancel(w Waiter, now int64) (bool, []Grant) {
	for k, q := range t.queues {
		for i := range q {
			if q[i].Waiter == w {
				t.dropQueued(k, i)
				// Later waiters may have queued only behind this one.
				return true, t.wake(k, now)
			}
		}
	}
	return false, nil
}

// ReleaseOwner drops every lock owner holds on (ino, kind), as a close
// does, and returns the waiters that now hold theirs.
func (t *Table) ReleaseOwner(ino uint64, kind Kind, owner Owner, now int64) []Grant {
	_, _, _, g := t.Lock(Request{Ino: ino, Kind: kind, Owner: owner, Type: Unlock, Start: 0, End: MaxEnd}, now)
	return g
}

// ReleaseSession drops every lock and waiter of a session (its expiry or
// close) and returns the grants that follow, in file order.
func (t *Table) ReleaseSession(session uint64, now int64) []Grant {
	touched := map[fileKey]bool{}
	for k, q := range t.queues {
		out := q[:0:0]
		for _, w := range q {
			if w.Waiter.Session != session {
				out = append(out, w)
			} else {
				touched[k] = true
			}
		}
		if len(out) == 0 {
			delete(t.queues, k)
		} else {
			t.queues[k] = out
		}
	}
	for k, ls := range t.held {
		out := ls[:0:0]
		for _, l := range ls {
			if l.Owner.Session != session {
				out = append(out, l)
			} else {
				touched[k] = true
			}
		}
		if len(out) == 0 {
			delete(t.held, k)
		} else {
			t.held[k] = out
		}
	}
	keys := make([]fileKey, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ino != keys[j].ino {
			return keys[i].ino < keys[j].ino
		}
		return keys[i].kind < keys[j].kind
	})
	var grants []Grant
	for _, k := range keys {
		grants = append(grants, t.wake(k, now)...)
	}
	return grants
}

// ReleaseFile drops every lock and waiter on ino (the file is gone) and
// returns the waiters dropped, so their requests can be answered.
func (t *Table) ReleaseFile(ino uint64) []Waiter {
	var dropped []Waiter
	for _, kind := range []Kind{Flock, Posix} {
		k := fileKey{ino, kind}
		delete(t.held, k)
		for _, w := range t.queues[k] {
			dropped = append(dropped, w.Waiter)
		}
		delete(t.queues, k)
	}
	return dropped
}

// Held returns the locks held on ino of the given kind, by start.
func (t *Table) Held(ino uint64, kind Kind) []Lock {
	return append([]Lock(nil), t.held[fileKey{ino, kind}]...)
}

// Sequencer returns the largest sequencer among the locks session holds
// on ino, of either kind, and 0 if it holds none.
func (t *Table) Sequencer(ino uint64, session uint64) uint64 {
	var s uint64
	for _, kind := range []Kind{Flock, Posix} {
		for _, l := range t.held[fileKey{ino, kind}] {
			if l.Owner.Session == session {
				s = max(s, l.Sequencer)
			}
		}
	}
	return s
}

// HoldsWrite reports whether session holds an exclusive lock (of either
// kind, on any range) on ino.
func (t *Table) HoldsWrite(ino uint64, session uint64) bool {
	for _, kind := range []Kind{Flock, Posix} {
		for _, l := range t.held[fileKey{ino, kind}] {
			if l.Owner.Session == session && l.Type == Write {
				return true
			}
		}
	}
	return false
}

// All returns every held lock and every waiter, in a deterministic order
// (for snapshots and status).
func (t *Table) All() ([]Lock, []Queued) {
	keys := make([]fileKey, 0, len(t.held)+len(t.queues))
	seen := map[fileKey]bool{}
	for k := range t.held {
		keys, seen[k] = append(keys, k), true
	}
	for k := range t.queues {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ino != keys[j].ino {
			return keys[i].ino < keys[j].ino
		}
		return keys[i].kind < keys[j].kind
	})
	var locks []Lock
	var queued []Queued
	for _, k := range keys {
		locks = append(locks, t.held[k]...)
		queued = append(queued, t.queues[k]...)
	}
	return locks, queued
}

// Restore rebuilds a table from All's output and the last sequencer.
func Restore(last uint64, locks []Lock, queued []Queued) *Table {
	t := NewTable(last)
	for _, l := range locks {
		k := fileKey{l.Ino, l.Kind}
		t.held[k] = append(t.held[k], l)
	}
	for _, q := range queued {
		k := fileKey{q.Ino, q.Kind}
		t.queues[k] = append(t.queues[k], q)
	}
	return t
}
