package lease

import (
	"reflect"
	"testing"
)

func TestLessorPromoteGivesGrace(t *testing.T) {
	l := NewLessor()
	l.Promote(100, 50, map[uint64]int64{1: 10, 2: 20})
	if got := l.Expired(159); len(got) != 0 {
		t.Fatalf("expired before ttl+grace: %v", got)
	}
	if got := l.Expired(161); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("Expired(161) = %v, want [1]", got)
	}
	if got := l.Expired(171); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("Expired(171) = %v, want [1 2]", got)
	}
}

func TestLessorTouchExtendsNeverShortens(t *testing.T) {
	l := NewLessor()
	l.Add(7, 10, 0)
	if !l.Touch(7, 5) {
		t.Fatal("Touch of tracked session reported false")
	}
	if d, _ := l.Deadline(7); d != 15 {
		t.Fatalf("deadline %d, want 15", d)
	}
	l.Touch(7, 1) // an old, reordered keepalive must not shorten
	if d, _ := l.Deadline(7); d != 15 {
		t.Fatalf("deadline shortened to %d", d)
	}
	if l.Touch(8, 5) {
		t.Fatal("Touch of unknown session reported true")
	}
	l.Remove(7)
	if got := l.Expired(100); len(got) != 0 {
		t.Fatalf("removed session expired: %v", got)
	}
}
