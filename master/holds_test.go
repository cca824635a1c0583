package master

import "testing"

func TestHoldTable(t *testing.T) {
	h := newHoldTable(7)
	if !h.mayHold(1, 10) {
		t.Fatal("a session that never reported may hold anything")
	}
	tok := h.report(1, nil, 0, 0) // first keepalive: no answer of this leader yet
	if !h.mayHold(1, 10) {
		t.Fatal("a report naming no answer of this leader proves nothing")
	}
	h.opened(1, 10) // served after answer tok: the next report may miss it
	h.report(1, nil, 7, tok)
	if !h.mayHold(1, 10) {
		t.Fatal("an open served after the answer the report names was forgotten")
	}
	if h.mayHold(1, 11) {
		t.Fatal("an inode neither served nor reported is held")
	}
	tok = h.report(1, []uint64{10}, 7, tok+1)
	if !h.mayHold(1, 10) {
		t.Fatal("a reported inode is not held")
	}
	tok = h.report(1, nil, 7, tok)
	if h.mayHold(1, 10) {
		t.Fatal("closed and reported so, yet held")
	}
	// Reports naming another leader's answers or unknown tokens count
	// for nothing.
	h.opened(1, 12)
	h.report(1, nil, 6, tok)
	h.report(1, nil, 7, tok+100)
	if !h.mayHold(1, 12) {
		t.Fatal("a stale report cleared a served open")
	}
	h.drop(1)
	if !h.mayHold(1, 10) {
		t.Fatal("a forgotten session must count as unknown")
	}
	h.started(2)
	if h.mayHold(2, 10) {
		t.Fatal("a session opened under this leader holds what it was served, nothing else")
	}
	h.opened(2, 10)
	if !h.mayHold(2, 10) {
		t.Fatal("served open not held")
	}
}
