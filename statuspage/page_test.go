package statuspage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"dfs/api"
	"dfs/statuspage/htmlcheck"

	"golang.org/x/net/html"
)

var now = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

// leaderStatus is a leader's answer for a cluster with one dead
// chunkserver, one under-replicated chunk, a session and two locks.
func leaderStatus() *api.StatusResponse {
	return &api.StatusResponse{
		Leader: "127.0.0.1:9400", SelfId: "m1", AdminAddr: "127.0.0.1:9600", LeaderAdminAddr: "127.0.0.1:9600",
		Masters: []*api.MasterInfo{
			{Id: "m1", Addr: "127.0.0.1:9400", RaftAddr: "127.0.0.1:9500", State: "Leader", Voter: true, Reachable: true, AppliedIndex: 120},
			{Id: "m2", Addr: "127.0.0.1:9401", RaftAddr: "127.0.0.1:9501", State: "Follower", Voter: true, Reachable: true, AppliedIndex: 119},
			{Id: "m3", Addr: "127.0.0.1:9402", RaftAddr: "127.0.0.1:9502", State: "Follower", Voter: true},
		},
		Servers: []*api.ChunkServerInfo{
			{Id: "cs1", Addr: "127.0.0.1:9700", Zone: "z1", Capacity: 100 << 30, Used: 25 << 30, Free: 75 << 30, Alive: true,
				LastSeenNs: now.Add(-300 * time.Millisecond).UnixNano(), Chunks: 42},
			{Id: "cs2", Addr: "127.0.0.1:9701", Zone: "z2", Capacity: 100 << 30, Used: 10 << 30, Free: 90 << 30,
				LastSeenNs: now.Add(-time.Minute).UnixNano(), Chunks: 40},
		},
		Inodes: 7, Chunks: 43, Sessions: 1, Locks: 1, LockWaiters: 1, LogicalBytes: 5 << 20, AppliedIndex: 120,
		SessionList: []*api.SessionStatus{{Id: 17, Client: "host-a/4242", TtlNs: int64(10 * time.Second),
			ExpiresInNs: int64(8 * time.Second), OpenFiles: 2, Locks: 1}},
		LockList: []*api.LockStatus{
			{Ino: 5, Path: "/data/db.lock", SinceNs: now.Add(-2 * time.Second).UnixNano(),
				Lock: &api.LockInfo{Kind: api.LockKind_FLOCK, Type: api.LockType_WRITE, End: math.MaxUint64, Session: 17, Owner: 0xbeef, Pid: 99}},
			{Ino: 5, Path: "/data/db.lock", Waiting: true, SinceNs: now.Add(-time.Second).UnixNano(),
				Lock: &api.LockInfo{Kind: api.LockKind_FLOCK, Type: api.LockType_READ, End: math.MaxUint64, Session: 18, Owner: 0xcafe, Pid: 100}},
		},
		ChunkHealth: &api.ChunkHealth{Healthy: 42, UnderReplicated: 1, Repairing: 1, Problems: []*api.FsckProblem{
			{Path: "/data/big", Ino: 9, Index: 3, ChunkId: 77, Version: 4, State: "under-replicated", Live: 2, Want: 3,
				Detail: []string{"cs2: server down"}}}},
	}
}

// parse renders st and parses the page as a browser would, failing on
// anything the HTML tokenizer rejects.
func parse(t *testing.T, st *api.StatusResponse) (*html.Node, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, st, now); err != nil {
		t.Fatalf("Render: %v", err)
	}
	page := buf.String()
	doc, err := htmlcheck.Parse(page)
	if err != nil {
		t.Fatalf("page is not well-formed HTML: %v\n%s", err, page)
	}
	return doc, page
}

func byID(t *testing.T, doc *html.Node, id string) *html.Node {
	t.Helper()
	n := htmlcheck.ByID(doc, id)
	if n == nil {
		t.Fatalf("no element with id %q", id)
	}
	return n
}

var (
	find = htmlcheck.ByID
	text = htmlcheck.Text
	attr = htmlcheck.Attr
)

func checkRows(t *testing.T, doc *html.Node, id string, want [][]string) {
	t.Helper()
	got := htmlcheck.Rows(byID(t, doc, id))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("table %s:\n got %q\nwant %q", id, got, want)
	}
}

func TestLeaderPage(t *testing.T) {
	doc, page := parse(t, leaderStatus())
	if got := text(byID(t, doc, "health")); got != "cluster health: warning" {
		t.Errorf("health = %q, want warning", got)
	}
	reasons := text(byID(t, doc, "reasons"))
	for _, want := range []string{"master m3 does not answer", "chunkserver cs2 is down", "1 chunks are under-replicated"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("reasons %q lack %q", reasons, want)
		}
	}
	if find(doc, "follower") != nil {
		t.Error("a leader's page shows the follower banner")
	}
	checkRows(t, doc, "masters", [][]string{
		{"m1", "127.0.0.1:9400", "127.0.0.1:9500", "Leader", "yes", "yes", "120"},
		{"m2", "127.0.0.1:9401", "127.0.0.1:9501", "Follower", "yes", "yes", "119"},
		{"m3", "127.0.0.1:9402", "127.0.0.1:9502", "Follower", "yes", "no", "-"},
	})
	checkRows(t, doc, "chunkservers", [][]string{
		{"cs1", "127.0.0.1:9700", "z1", "100.0 GiB", "25.0 GiB", "75.0 GiB", "25%", "42", "yes", "300ms ago"},
		{"cs2", "127.0.0.1:9701", "z2", "100.0 GiB", "10.0 GiB", "90.0 GiB", "10%", "40", "no", "1m0s ago"},
	})
	checkRows(t, doc, "chunk-health", [][]string{{"42", "1", "0", "0", "1"}})
	checkRows(t, doc, "chunk-problems", [][]string{
		{"/data/big ino 9", "3", "77", "4", "under-replicated", "2 / 3", "cs2: server down"}})
	checkRows(t, doc, "sessions", [][]string{{"17", "host-a/4242", "10s", "8s", "2", "1"}})
	checkRows(t, doc, "locks", [][]string{
		{"/data/db.lock ino 5", "FLOCK", "WRITE", "0-EOF", "17", "0xbeef", "99", "held", "2s ago"},
		{"/data/db.lock ino 5", "FLOCK", "READ", "0-EOF", "18", "0xcafe", "100", "waiting", "1s ago"},
	})
	for _, want := range []string{`<meta http-equiv="refresh" content="5">`, "<title>dfs status: m1 (leader)</title>",
		"1 of 2 alive", "<script"} {
		if strings.Contains(page, want) != (want != "<script") {
			t.Errorf("page has %q: %v", want, strings.Contains(page, want))
		}
	}
}

func TestHealthyAndCritical(t *testing.T) {
	st := leaderStatus()
	st.Masters[2].Reachable = true
	st.Servers[1].Alive = true
	st.ChunkHealth = &api.ChunkHealth{Healthy: 43}
	doc, _ := parse(t, st)
	if got := text(byID(t, doc, "health")); got != "cluster health: ok" {
		t.Errorf("healthy cluster: health = %q", got)
	}
	if find(doc, "reasons") != nil {
		t.Error("a healthy cluster lists reasons")
	}

	st.ChunkHealth = &api.ChunkHealth{Healthy: 42, Missing: 1}
	st.Masters[1].Reachable, st.Masters[2].Reachable = false, false
	doc, _ = parse(t, st)
	if got := text(byID(t, doc, "health")); got != "cluster health: critical" {
		t.Errorf("lost chunk and quorum: health = %q", got)
	}
	reasons := text(byID(t, doc, "reasons"))
	for _, want := range []string{"1 chunks have no live copy", "2 of 3 voting masters do not answer: no quorum"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("reasons %q lack %q", reasons, want)
		}
	}
}

func TestFollowerPage(t *testing.T) {
	st := leaderStatus()
	st.SelfId, st.AdminAddr = "m2", "127.0.0.1:9601"
	st.ChunkHealth = nil
	doc, page := parse(t, st)
	a := byID(t, doc, "leader-link")
	if href := attr(a, "href"); href != "http://127.0.0.1:9600/status" {
		t.Errorf("leader link = %q", href)
	}
	if !strings.Contains(text(byID(t, doc, "follower")), "The full status is on the leader, m1") {
		t.Errorf("banner = %q", text(byID(t, doc, "follower")))
	}
	for _, id := range []string{"chunkservers", "sessions", "locks"} {
		if find(doc, id) != nil {
			t.Errorf("a follower's page shows %s", id)
		}
	}
	if !strings.Contains(page, "<title>dfs status: m2 (follower)</title>") {
		t.Error("title does not say follower")
	}
	// A follower judges only the masters: the dead chunkserver is the
	// leader's to report.
	if strings.Contains(text(byID(t, doc, "reasons")), "cs2") {
		t.Error("follower reports chunkserver health")
	}

	st.LeaderAdminAddr = ""
	doc, _ = parse(t, st)
	if find(doc, "leader-link") != nil {
		t.Error("link to a leader whose page is unknown")
	}
	if got := text(byID(t, doc, "follower")); !strings.Contains(got, "status page address is unknown") {
		t.Errorf("banner without leader page = %q", got)
	}
}

func TestEscapes(t *testing.T) {
	st := leaderStatus()
	st.SessionList[0].Client = `<script>alert(1)</script>`
	st.LockList[0].Path = `/a"b<i>`
	_, page := parse(t, st)
	if strings.Contains(page, "<script>") || strings.Contains(page, "<i>") {
		t.Error("names reach the page unescaped")
	}
}

func TestHandler(t *testing.T) {
	var asked *api.StatusRequest
	h := Handler(func(ctx context.Context, req *api.StatusRequest) (*api.StatusResponse, error) {
		asked = req
		return leaderStatus(), nil
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if rec.Code != http.StatusOK || !asked.GetDetail() {
		t.Fatalf("code %d, asked %v", rec.Code, asked)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}

	h = Handler(func(ctx context.Context, req *api.StatusRequest) (*api.StatusResponse, error) {
		return nil, errors.New("raft is shutting down")
	})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	doc, err := htmlcheck.Parse(rec.Body.String())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(text(byID(t, doc, "error")), "raft is shutting down") {
		t.Errorf("failing source: code %d, page %q", rec.Code, text(doc))
	}
}
