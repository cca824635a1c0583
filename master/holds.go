package master

// holdTable is the leader's soft state about files sessions hold open
// without a record in Raft (GetChunksRequest.open): an open costs a
// linearizable read, not a Raft round, and a close costs nothing. An
// unlinked file with no open recorded in Raft (an orphan in the FSM) is
// reclaimed only once no session may hold it.
//
// A session may hold ino if the leader served it an open of ino after
// the keepalive answer its latest report refers to, or that report lists
// ino, or it has sent no report referring to an answer of this leader
// and was opened before it (a new leader knows nothing of the opens its
// predecessors served). The
// client registers an open before asking for it and builds each report
// after receiving the answer it names, so every open served before that
// answer was given is in the report. A session that stops reporting
// expires, and its opens end with it, as recorded ones do.
//
// Not safe for concurrent use; the service guards it with its mutex.
type holdTable struct {
	epoch    int64 // this leader's term of service, from its promotion time
	sessions map[uint64]*sessionHolds
}

type sessionHolds struct {
	sent     uint64            // tokens of answers given so far
	reported bool              // a report names an answer of this epoch
	held     map[uint64]bool   // the latest such report
	served   map[uint64]uint64 // ino -> tokens sent when the open was served
}

func newHoldTable(epoch int64) *holdTable {
	return &holdTable{epoch: epoch, sessions: map[uint64]*sessionHolds{}}
}

func (t *holdTable) session(id uint64) *sessionHolds {
	s := t.sessions[id]
	if s == nil {
		s = &sessionHolds{served: map[uint64]uint64{}}
		t.sessions[id] = s
	}
	return s
}

// opened records an open of ino served to session id; call it before
// reading the state the open answers.
func (t *holdTable) opened(id, ino uint64) {
	s := t.session(id)
	s.served[ino] = s.sent
}

// report takes a keepalive's held list, built after the client received
// the answer (epoch, token), and returns the token of the answer to it.
func (t *holdTable) report(id uint64, held []uint64, epoch int64, token uint64) uint64 {
	s := t.session(id)
	if epoch == t.epoch && token >= 1 && token <= s.sent {
		s.reported = true
		s.held = make(map[uint64]bool, len(held))
		for _, ino := range held {
			s.held[ino] = true
		}
		for ino, at := range s.served {
			if at < token {
				delete(s.served, ino) // in the report if still held
			}
		}
	}
	s.sent++
	return s.sent
}

// mayHold says whether session id may hold ino open without a record.
func (t *holdTable) mayHold(id, ino uint64) bool {
	s := t.sessions[id]
	if s == nil || !s.reported {
		return true
	}
	_, served := s.served[ino]
	return served || s.held[ino]
}

// started records a session opened while this leader serves: every open
// it may hold was served here.
func (t *holdTable) started(id uint64) {
	t.session(id).reported = true
}

// drop forgets an ended session.
func (t *holdTable) drop(id uint64) { delete(t.sessions, id) }
