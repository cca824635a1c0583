package lease

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

var (
	a1 = Owner{Session: 1, ID: 10}
	a2 = Owner{Session: 1, ID: 11} // same mount, another process
	b1 = Owner{Session: 2, ID: 10} // same kernel owner id, another mount
)

func posix(o Owner, typ Type, start, end uint64) Request {
	return Request{Ino: 7, Kind: Posix, Owner: o, Type: typ, Start: start, End: end, Pid: uint32(o.ID)}
}

type span struct {
	o          Owner
	t          Type
	start, end uint64
}

func spans(ls []Lock) []span {
	var out []span
	for _, l := range ls {
		out = append(out, span{l.Owner, l.Type, l.Start, l.End})
	}
	return out
}

func mustGrant(t *testing.T, tb *Table, r Request) uint64 {
	t.Helper()
	st, seq, c, _ := tb.Lock(r, 0)
	if st != Granted {
		t.Fatalf("Lock(%+v) = %v (conflict %+v), want granted", r, st, c)
	}
	return seq
}

func TestPosixSplitMergeUpgradeDowngrade(t *testing.T) {
	for _, tc := range []struct {
		name string
		reqs []Request
		want []span
	}{
		{"split by unlock", []Request{posix(a1, Write, 0, 99), posix(a1, Unlock, 40, 59)},
			[]span{{a1, Write, 0, 39}, {a1, Write, 60, 99}}},
		{"merge adjacent", []Request{posix(a1, Read, 0, 9), posix(a1, Read, 10, 19)},
			[]span{{a1, Read, 0, 19}}},
		{"merge overlapping", []Request{posix(a1, Read, 0, 9), posix(a1, Read, 5, 30), posix(a1, Read, 31, MaxEnd)},
			[]span{{a1, Read, 0, MaxEnd}}},
		{"no merge across types", []Request{posix(a1, Read, 0, 9), posix(a1, Write, 10, 19)},
			[]span{{a1, Read, 0, 9}, {a1, Write, 10, 19}}},
		{"upgrade middle", []Request{posix(a1, Read, 0, 99), posix(a1, Write, 40, 59)},
			[]span{{a1, Read, 0, 39}, {a1, Write, 40, 59}, {a1, Read, 60, 99}}},
		{"downgrade all", []Request{posix(a1, Write, 0, 9), posix(a1, Write, 20, 29), posix(a1, Read, 0, MaxEnd)},
			[]span{{a1, Read, 0, MaxEnd}}},
		{"unlock everything", []Request{posix(a1, Write, 5, 9), posix(a1, Read, 20, MaxEnd), posix(a1, Unlock, 0, MaxEnd)},
			nil},
		{"shared between owners", []Request{posix(a1, Read, 0, 9), posix(b1, Read, 5, 14)},
			[]span{{a1, Read, 0, 9}, {b1, Read, 5, 14}}},
		{"unlock at the very end", []Request{posix(a1, Write, 0, MaxEnd), posix(a1, Unlock, MaxEnd, MaxEnd)},
			[]span{{a1, Write, 0, MaxEnd - 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable(0)
			for _, r := range tc.reqs {
				mustGrant(t, tb, r)
			}
			if got := spans(tb.Held(7, Posix)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("held = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestConflictsAndGetlk(t *testing.T) {
	tb := NewTable(0)
	mustGrant(t, tb, posix(a1, Read, 0, 9))
	mustGrant(t, tb, posix(a1, Write, 20, 29))
	for _, tc := range []struct {
		r        Request
		conflict bool
		with     span
	}{
		{posix(b1, Read, 0, 9), false, span{}},
		{posix(b1, Write, 9, 9), true, span{a1, Read, 0, 9}},
		{posix(b1, Read, 15, 25), true, span{a1, Write, 20, 29}},
		{posix(b1, Write, 0, MaxEnd), true, span{a1, Read, 0, 9}}, // lowest start
		{posix(b1, Write, 10, 19), false, span{}},
		{posix(a2, Write, 0, MaxEnd), true, span{a1, Read, 0, 9}}, // another process, same mount
		{posix(a1, Write, 0, MaxEnd), false, span{}},              // own locks never conflict
		{Request{Ino: 7, Kind: Flock, Owner: b1, Type: Write}, false, span{}},
		{Request{Ino: 8, Kind: Posix, Owner: b1, Type: Write, End: MaxEnd}, false, span{}},
	} {
		l, c := tb.Test(tc.r)
		if c != tc.conflict || (c && (span{l.Owner, l.Type, l.Start, l.End}) != tc.with) {
			t.Errorf("Test(%+v) = %+v %v, want %+v %v", tc.r, l, c, tc.with, tc.conflict)
		}
		if c && l.Pid != uint32(tc.with.o.ID) {
			t.Errorf("Test(%+v): pid %d, want %d", tc.r, l.Pid, tc.with.o.ID)
		}
		st, _, _, _ := tb.Lock(tc.r, 0)
		if (st == Conflict) != tc.conflict {
			t.Errorf("Lock(%+v) = %v, conflict want %v", tc.r, st, tc.conflict)
		}
		if st == Granted {
			r := tc.r
			r.Type = Unlock
			mustGrant(t, tb, r)
		}
	}
}

func TestFlockAndPosixAreIndependent(t *testing.T) {
	tb := NewTable(0)
	mustGrant(t, tb, Request{Ino: 1, Kind: Flock, Owner: a1, Type: Write})
	mustGrant(t, tb, Request{Ino: 1, Kind: Posix, Owner: b1, Type: Write, End: MaxEnd})
	if st, _, _, _ := tb.Lock(Request{Ino: 1, Kind: Flock, Owner: b1, Type: Read}, 0); st != Conflict {
		t.Fatalf("second flock = %v, want conflict", st)
	}
	if got := spans(tb.Held(1, Flock)); !reflect.DeepEqual(got, []span{{a1, Write, 0, MaxEnd}}) {
		t.Fatalf("flock held = %+v", got)
	}
}

func TestFIFOWaitersAndSequencers(t *testing.T) {
	tb := NewTable(100)
	fl := func(o Owner, typ Type, seq uint64) Request {
		return Request{Ino: 3, Kind: Flock, Owner: o, Type: typ, Wait: true, Waiter: Waiter{o.Session, seq}}
	}
	c1, c2, c3 := Owner{1, 1}, Owner{2, 1}, Owner{3, 1}
	s1 := mustGrant(t, tb, fl(c1, Write, 1))
	if s1 != 101 {
		t.Fatalf("first sequencer %d, want 101", s1)
	}
	if st, _, _, _ := tb.Lock(fl(c2, Write, 1), 0); st != Waiting {
		t.Fatalf("c2 = %v, want waiting", st)
	}
	// A shared request behind a queued exclusive one waits its turn.
	if st, _, _, _ := tb.Lock(fl(c3, Read, 1), 0); st != Waiting {
		t.Fatalf("c3 = %v, want waiting", st)
	}
	// A non-blocking request sees only held locks.
	if st, _, _, _ := tb.Lock(Request{Ino: 3, Kind: Flock, Owner: Owner{4, 1}, Type: Read}, 0); st != Conflict {
		t.Fatalf("trylock = %v, want conflict", st)
	}
	g := tb.ReleaseOwner(3, Flock, c1, 5)
	if len(g) != 1 || g[0].Waiter != (Waiter{2, 1}) || g[0].Sequencer != 102 {
		t.Fatalf("after c1 unlock: grants %+v, want c2 with 102", g)
	}
	if !tb.HoldsWrite(3, 2) || tb.HoldsWrite(4, 2) {
		t.Fatalf("HoldsWrite: session 2 holds the exclusive lock on 3 only")
	}
	g = tb.ReleaseSession(2, 6)
	if len(g) != 1 || g[0].Waiter != (Waiter{3, 1}) || g[0].Sequencer != 103 {
		t.Fatalf("after c2 expiry: grants %+v, want c3 with 103", g)
	}
	if tb.HoldsWrite(3, 3) || tb.HoldsWrite(3, 2) {
		t.Fatalf("HoldsWrite true for a shared holder or a gone session")
	}
	if tb.LastSequencer() != 103 || tb.Sequencer(3, 3) != 103 || tb.Sequencer(3, 2) != 0 {
		t.Fatalf("sequencers: last %d, c3 %d, c2 %d", tb.LastSequencer(), tb.Sequencer(3, 3), tb.Sequencer(3, 2))
	}
}

func TestCancelWakesLaterWaiters(t *testing.T) {
	tb := NewTable(0)
	mustGrant(t, tb, posix(a1, Read, 0, 9))
	w := posix(b1, Write, 0, 9)
	w.Wait, w.Waiter = true, Waiter{2, 5}
	if st, _, _, _ := tb.Lock(w, 0); st != Waiting {
		t.Fatalf("writer = %v, want waiting", st)
	}
	r := posix(Owner{3, 1}, Read, 5, 5)
	r.Wait, r.Waiter = true, Waiter{3, 1}
	if st, _, _, _ := tb.Lock(r, 0); st != Waiting {
		t.Fatalf("reader behind writer = %v, want waiting", st)
	}
	ok, g := tb.Cancel(Waiter{2, 5}, 0)
	if !ok || len(g) != 1 || g[0].Waiter != (Waiter{3, 1}) {
		t.Fatalf("Cancel = %v %+v, want reader granted", ok, g)
	}
	if ok, _ := tb.Cancel(Waiter{2, 5}, 0); ok {
		t.Fatal("second Cancel found the waiter again")
	}
}

func TestFlockConversionDropsOldLockFirst(t *testing.T) {
	// Two shared holders both converting to exclusive: on Linux one of
	// them gets it (flock conversions are not atomic), no deadlock.
	tb := NewTable(0)
	c1, c2 := Owner{1, 1}, Owner{2, 1}
	fl := func(o Owner, typ Type, seq uint64) Request {
		return Request{Ino: 3, Kind: Flock, Owner: o, Type: typ, Wait: true, Waiter: Waiter{o.Session, seq}}
	}
	mustGrant(t, tb, fl(c1, Read, 1))
	mustGrant(t, tb, fl(c2, Read, 1))
	if st, _, _, _ := tb.Lock(fl(c1, Write, 2), 0); st != Waiting {
		t.Fatalf("c1 upgrade = %v, want waiting", st)
	}
	st, _, _, g := tb.Lock(fl(c2, Write, 2), 0)
	if st != Waiting || len(g) != 1 || g[0].Waiter != (Waiter{1, 2}) {
		t.Fatalf("c2 upgrade = %v %+v, want waiting and c1 granted", st, g)
	}
	if got := spans(tb.Held(3, Flock)); !reflect.DeepEqual(got, []span{{c1, Write, 0, MaxEnd}}) {
		t.Fatalf("held %+v", got)
	}
}

func TestPosixUpgradeWaitKeepsLock(t *testing.T) {
	tb := NewTable(0)
	mustGrant(t, tb, posix(a1, Read, 0, 9))
	mustGrant(t, tb, posix(b1, Read, 0, 9))
	w := posix(a1, Write, 0, 9)
	w.Wait, w.Waiter = true, Waiter{1, 9}
	if st, _, _, _ := tb.Lock(w, 0); st != Waiting {
		t.Fatalf("upgrade = %v, want waiting", st)
	}
	if got := spans(tb.Held(7, Posix)); len(got) != 2 {
		t.Fatalf("upgrade wait dropped a lock: %+v", got)
	}
	g := tb.ReleaseOwner(7, Posix, b1, 0)
	if len(g) != 1 || g[0].Waiter != (Waiter{1, 9}) {
		t.Fatalf("grants %+v", g)
	}
	if got := spans(tb.Held(7, Posix)); !reflect.DeepEqual(got, []span{{a1, Write, 0, 9}}) {
		t.Fatalf("held %+v", got)
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	tb := NewTable(0)
	mustGrant(t, tb, posix(a1, Write, 0, 9))
	w := posix(b1, Write, 5, 5)
	w.Wait, w.Waiter = true, Waiter{2, 1}
	tb.Lock(w, 3)
	locks, queued := tb.All()
	nt := Restore(tb.LastSequencer(), locks, queued)
	if !reflect.DeepEqual(nt, tb) {
		t.Fatalf("restored table differs:\n%+v\n%+v", nt, tb)
	}
	g := nt.ReleaseOwner(7, Posix, a1, 4)
	if len(g) != 1 || g[0].Sequencer != 2 {
		t.Fatalf("restored waiter not granted: %+v", g)
	}
}

// model is a byte-by-byte reference: positions 0..modelLen-2 are single
// bytes, position modelLen-1 stands for everything from there to MaxEnd.
const modelLen = 10

type model struct {
	held    map[fileKey]map[Owner]*[modelLen]Type
	queue   map[fileKey][]Request
	lastSeq uint64
}

func newModel() *model {
	return &model{held: map[fileKey]map[Owner]*[modelLen]Type{}, queue: map[fileKey][]Request{}}
}

func positions(r Request) (int, int) {
	if r.Kind == Flock {
		return 0, modelLen - 1
	}
	hi := int(min(r.End, modelLen-1))
	return int(r.Start), hi
}

func (m *model) conflictHeld(k fileKey, r Request) bool {
	lo, hi := positions(r)
	for o, b := range m.held[k] {
		if o == r.Owner {
			continue
		}
		for p := lo; p <= hi; p++ {
			if b[p] != Unlock && (b[p] == Write || r.Type == Write) {
				return true
			}
		}
	}
	return false
}

func (m *model) conflictQueued(k fileKey, r Request, n int) bool {
	lo, hi := positions(r)
	for _, q := range m.queue[k][:n] {
		qlo, qhi := positions(q)
		if q.Owner != r.Owner && lo <= qhi && qlo <= hi && (q.Type == Write || r.Type == Write) {
			return true
		}
	}
	return false
}

func (m *model) set(k fileKey, r Request) {
	if m.held[k] == nil {
		m.held[k] = map[Owner]*[modelLen]Type{}
	}
	b := m.held[k][r.Owner]
	if b == nil {
		b = new([modelLen]Type)
		m.held[k][r.Owner] = b
	}
	lo, hi := positions(r)
	for p := lo; p <= hi; p++ {
		b[p] = r.Type
	}
}

func (m *model) wake(k fileKey) []Waiter {
	var out []Waiter
	for {
		found := -1
		for i, q := range m.queue[k] {
			if !m.conflictHeld(k, q) && !m.conflictQueued(k, q, i) {
				found = i
				break
			}
		}
		if found < 0 {
			return out
		}
		q := m.queue[k][found]
		m.queue[k] = append(m.queue[k][:found:found], m.queue[k][found+1:]...)
		m.set(k, q)
		out = append(out, q.Waiter)
	}
}

func (m *model) lock(r Request) (Status, []Waiter) {
	k := fileKey{r.Ino, r.Kind}
	if r.Type == Unlock {
		m.set(k, r)
		return Granted, m.wake(k)
	}
	if m.conflictHeld(k, r) || (r.Wait && m.conflictQueued(k, r, len(m.queue[k]))) {
		if !r.Wait {
			return Conflict, nil
		}
		var woken []Waiter
		if r.Kind == Flock {
			m.set(k, Request{Ino: r.Ino, Kind: Flock, Owner: r.Owner, Type: Unlock})
			woken = m.wake(k)
		}
		m.queue[k] = append(m.queue[k], r)
		woken = append(woken, m.wake(k)...)
		for i, w := range woken {
			if w == r.Waiter {
				return Granted, append(woken[:i:i], woken[i+1:]...)
			}
		}
		return Waiting, woken
	}
	m.set(k, r)
	return Granted, m.wake(k)
}

// check compares the table's held locks with the model, byte by byte,
// and checks the table's ranges are canonical: no owner has two records
// that overlap, or that touch with the same type.
func check(t *testing.T, step int, tb *Table, m *model) {
	t.Helper()
	for _, k := range []fileKey{{1, Posix}, {1, Flock}, {2, Posix}} {
		got := map[Owner]*[modelLen]Type{}
		ls := tb.Held(k.ino, k.kind)
		for i, l := range ls {
			if i > 0 && ls[i-1].Start > l.Start {
				t.Fatalf("step %d: %v unsorted: %+v", step, k, ls)
			}
			for j, o := range ls {
				if j != i && o.Owner == l.Owner && (overlaps(o.Start, o.End, l.Start, l.End) ||
					(o.Type == l.Type && o.End != MaxEnd && o.End+1 == l.Start)) {
					t.Fatalf("step %d: %v not canonical: %+v", step, k, ls)
				}
			}
			b := got[l.Owner]
			if b == nil {
				b = new([modelLen]Type)
				got[l.Owner] = b
			}
			if l.End != MaxEnd && l.End >= modelLen-1 || l.Start > modelLen-1 {
				t.Fatalf("step %d: range beyond model: %+v", step, l)
			}
			hi := int(min(l.End, modelLen-1))
			for p := int(l.Start); p <= hi; p++ {
				b[p] = l.Type
			}
		}
		want := map[Owner]*[modelLen]Type{}
		for o, b := range m.held[k] {
			if *b != ([modelLen]Type{}) {
				want[o] = b
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: %v: table %v, model %v (records %+v)", step, k, dump(got), dump(want), ls)
		}
	}
}

func dump(m map[Owner]*[modelLen]Type) string {
	s := ""
	for o, b := range m {
		s += fmt.Sprintf("%v:%v ", o, *b)
	}
	return s
}

func TestRandomAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		tb, m := NewTable(0), newModel()
		owners := []Owner{{1, 1}, {1, 2}, {2, 1}, {3, 1}}
		var waiting []Waiter
		seq := uint64(0)
		lastSeq := uint64(0)
		for step := 0; step < 200; step++ {
			o := owners[rng.IntN(len(owners))]
			seq++
			var r Request
			switch x := rng.IntN(20); {
			case x == 0 && len(waiting) > 0:
				i := rng.IntN(len(waiting))
				w := waiting[i]
				ok, g := tb.Cancel(w, int64(step))
				mok := false
				var mg []Waiter
				for k, q := range m.queue {
					for j := range q {
						if q[j].Waiter == w {
							m.queue[k] = append(q[:j:j], q[j+1:]...)
							mok = true
							mg = m.wake(k)
							break
						}
					}
					if mok {
						break
					}
				}
				if ok != mok || !sameWaiters(g, mg) {
					t.Fatalf("seed %d step %d: Cancel(%v) = %v %+v, model %v %v", seed, step, w, ok, g, mok, mg)
				}
				waiting = dropWaiters(waiting, g)
				waiting = dropWaiters(waiting, []Grant{{Waiter: w}})
				lastSeq = checkSeqs(t, seed, step, g, lastSeq)
				check(t, step, tb, m)
				continue
			case x == 1:
				s := o.Session
				g := tb.ReleaseSession(s, int64(step))
				var mg []Waiter
				for _, k := range []fileKey{{1, Flock}, {1, Posix}, {2, Posix}} {
					q := m.queue[k][:0:0]
					for _, w := range m.queue[k] {
						if w.Waiter.Session != s {
							q = append(q, w)
						}
					}
					m.queue[k] = q
					for ow := range m.held[k] {
						if ow.Session == s {
							delete(m.held[k], ow)
						}
					}
					mg = append(mg, m.wake(k)...)
				}
				if !sameWaiters(g, mg) {
					t.Fatalf("seed %d step %d: ReleaseSession(%d) = %+v, model %v", seed, step, s, g, mg)
				}
				var keep []Waiter
				for _, w := range waiting {
					if w.Session != s {
						keep = append(keep, w)
					}
				}
				waiting = dropWaiters(keep, g)
				lastSeq = checkSeqs(t, seed, step, g, lastSeq)
				check(t, step, tb, m)
				continue
			case x < 6:
				r = Request{Ino: 1, Kind: Flock, Owner: o, Type: Type(rng.IntN(3))}
			default:
				start := uint64(rng.IntN(modelLen))
				end := uint64(MaxEnd)
				if start < modelLen-1 && rng.IntN(3) > 0 {
					end = start + uint64(rng.IntN(modelLen-1-int(start)))
				}
				r = Request{Ino: 1 + uint64(rng.IntN(2)), Kind: Posix, Owner: o, Type: Type(rng.IntN(3)), Start: start, End: end}
			}
			if waitingOwner(waiting, o) {
				// A blocked owner issues nothing until its wait ends.
				r.Type = Unlock
				r.Wait = false
			} else {
				r.Wait = rng.IntN(2) == 0
			}
			r.Waiter = Waiter{o.Session, seq}
			wantConflict := m.conflictHeld(fileKey{r.Ino, r.Kind}, r) && r.Type != Unlock
			l, c := tb.Test(r)
			if c != wantConflict {
				t.Fatalf("seed %d step %d: Test(%+v) = %v, model %v", seed, step, r, c, wantConflict)
			}
			if c {
				b := m.held[fileKey{r.Ino, r.Kind}][l.Owner]
				lo, hi := int(l.Start), int(min(l.End, modelLen-1))
				for p := lo; p <= hi; p++ {
					if b == nil || b[p] != l.Type {
						t.Fatalf("seed %d step %d: Test reported %+v, model holds %v", seed, step, l, b)
					}
				}
				if !conflicts(&l, r.Owner, r.Type, r.Start, r.End) {
					t.Fatalf("seed %d step %d: Test reported non-conflicting %+v", seed, step, l)
				}
			}
			st, sq, _, g := tb.Lock(r, int64(step))
			mst, mg := m.lock(r)
			if st != mst || !sameWaiters(g, mg) {
				t.Fatalf("seed %d step %d: Lock(%+v) = %v %+v, model %v %v", seed, step, r, st, g, mst, mg)
			}
			if st == Granted && r.Type != Unlock {
				if sq <= lastSeq {
					t.Fatalf("seed %d step %d: sequencer %d after %d", seed, step, sq, lastSeq)
				}
				lastSeq = sq
			}
			lastSeq = checkSeqs(t, seed, step, g, lastSeq)
			waiting = dropWaiters(waiting, g)
			if st == Waiting {
				waiting = append(waiting, r.Waiter)
			}
			check(t, step, tb, m)
		}
	}
}

func checkSeqs(t *testing.T, seed uint64, step int, g []Grant, last uint64) uint64 {
	for _, x := range g {
		if x.Sequencer <= last {
			t.Fatalf("seed %d step %d: sequencer %d after %d", seed, step, x.Sequencer, last)
		}
		last = x.Sequencer
	}
	return last
}

func sameWaiters(g []Grant, w []Waiter) bool {
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if g[i].Waiter != w[i] {
			return false
		}
	}
	return true
}

func dropWaiters(ws []Waiter, g []Grant) []Waiter {
	var out []Waiter
	for _, w := range ws {
		granted := false
		for _, x := range g {
			granted = granted || x.Waiter == w
		}
		if !granted {
			out = append(out, w)
		}
	}
	return out
}

func waitingOwner(ws []Waiter, o Owner) bool {
	// Waiters carry the session only; owners of one session share it,
	// so treat the whole session as blocked to keep the model simple.
	for _, w := range ws {
		if w.Session == o.Session {
			return true
		}
	}
	return false
}
