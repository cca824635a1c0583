// Package lease holds the deterministic structures behind client sessions,
// distributed locks and chunk leases. Nothing here reads a clock: time is
// always an argument, so the master's FSM and its leader loops can drive
// these structures identically on every replica and in tests.
package lease

import "sort"

// Lessor tracks when each session was last heard from, on the leader only
// (soft state, as in etcd's lessor). A new leader calls Promote so that no
// session expires for lack of keepalives it sent to the old leader.
type Lessor struct {
	deadline map[uint64]int64 // session -> expiry, ns
	ttl      map[uint64]int64
}

// NewLessor returns an empty Lessor.
func NewLessor() *Lessor {
	return &Lessor{deadline: map[uint64]int64{}, ttl: map[uint64]int64{}}
}

// Promote (re)starts tracking every session in ttls, extending each
// deadline to now + its TTL + grace. Sessions not in ttls are forgotten.
func (l *Lessor) Promote(now, grace int64, ttls map[uint64]int64) {
	l.deadline = make(map[uint64]int64, len(ttls))
	l.ttl = make(map[uint64]int64, len(ttls))
	for id, ttl := range ttls {
		l.ttl[id] = ttl
		l.deadline[id] = now + ttl + grace
	}
}

// Touch records that session id was heard from at now. It reports false
// if the session is not tracked (unknown or already expired).
func (l *Lessor) Touch(id uint64, now int64) bool {
	ttl, ok := l.ttl[id]
	if !ok {
		return false
	}
	if d := now + ttl; d > l.deadline[id] {
		l.deadline[id] = d
	}
	return true
}

// Add starts tracking a new session.
func (l *Lessor) Add(id uint64, ttl, now int64) {
	l.ttl[id] = ttl
	l.deadline[id] = now + ttl
}

// Remove stops tracking a session.
func (l *Lessor) Remove(id uint64) {
	delete(l.ttl, id)
	delete(l.deadline, id)
}

// Expired lists, in ascending order, the sessions whose deadline is
// before now.
func (l *Lessor) Expired(now int64) []uint64 {
	var out []uint64
	for id, d := range l.deadline {
		if d < now {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Deadline returns when a session expires, and whether it is tracked.
func (l *Lessor) Deadline(id uint64) (int64, bool) {
	d, ok := l.deadline[id]
	return d, ok
}
