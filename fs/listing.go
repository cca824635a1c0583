package fs

import (
	"context"
	"sync"
	"time"

	"dfs/api"

	"google.golang.org/protobuf/proto"
)

// Directory listings answer lookups without a round trip to the master.
// When lookups keep missing the kernel's caches in one directory (a stat
// of every file after the caches were dropped, ls -l, a build walking a
// tree), the mount fetches the whole directory with attributes (a few
// READDIRPLUS pages) and answers the names it holds from it for the
// entry and attribute time, the same staleness the kernel's own caches
// allow (DESIGN.md: changes by other mounts show within the attribute
// time). Three rules keep it within the contract:
//   - any change this mount makes (any mutation the client sends, any
//     attribute change committed here) ends every listing: what this
//     mount changed, it sees at once, as with the kernel's caches;
//   - a name the listing lacks is asked of the master: a file another
//     mount just made is found as promptly as without listings;
//   - opens still ask the master (close-to-open is unchanged).
//
// A listing is fetched only once the mount has made no change for a
// while (quietPeriod), so a workload that changes things between lookups
// (creating, or reading files whose access times move) pays nothing for
// listings its next change would end.
const (
	maxListed   = 32768 // entries; bigger directories are not listed
	listAfter   = 3     // lookup misses in one directory within the entry time before listing it
	maxListings = 16    // directories holding a listing at once
	quietPeriod = 100 * time.Millisecond
)

type listing struct {
	at    time.Time
	seq   uint64 // attrSeq when the fetch began
	ns    uint64 // nsSeq when the fetch began
	gen   uint64 // client.Changes() when the fetch began
	attrs map[string]*api.Attr
}

// dirListing is a directory node's listing state, guarded by node.mu.
type dirListing struct {
	cur       *listing
	fetching  bool
	misses    int
	missFrom  time.Time
	coolUntil time.Time // no listing before (too big, or not allowed)
}

// quiet tracks when the mount last changed anything, as seen by lookups.
type quiet struct {
	mu       sync.Mutex
	seq, gen uint64
	since    time.Time
}

// quietFor says how long seq and gen have not moved, as far as calls to
// it have seen.
func (q *quiet) quietFor(seq, gen uint64, now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.since.IsZero() || seq != q.seq || gen != q.gen {
		q.seq, q.gen, q.since = seq, gen, now
	}
	return now.Sub(q.since)
}

// listings keeps the mount's listings few: the oldest is dropped when
// another directory lists.
type listings struct {
	mu    sync.Mutex
	nodes []*node
	quiet quiet
}

func (fsys *filesystem) listTTL() time.Duration {
	return min(fsys.opts.AttrTimeout, fsys.opts.EntryTimeout)
}

// listingValid says whether l may still answer; called with n.mu held.
func (n *node) listingValid(l *listing, now time.Time) bool {
	return l != nil && now.Sub(l.at) < n.fsys.listTTL() &&
		nsSeq.Load() == l.ns && n.fsys.client.Changes() == l.gen
}

// listed answers name from the directory's listing: its attributes and
// the attrSeq they are as of. ok is false when the master must be asked;
// a listing may then be fetched for the lookups that follow.
func (n *node) listed(ctx context.Context, name string) (a *api.Attr, seq uint64, ok bool) {
	if n.fsys.listTTL() <= 0 {
		return nil, 0, false
	}
	now := time.Now()
	n.mu.Lock()
	dl := &n.dl
	if l := dl.cur; l != nil {
		if n.listingValid(l, now) {
			if a := l.attrs[name]; a != nil {
				n.mu.Unlock()
				cacheResult(cacheListing, true, 1)
				return n.fsys.atimes.patch(a, l.seq), l.seq, true
			}
			n.mu.Unlock()
			return nil, 0, false
		}
		dl.cur = nil
	}
	if now.Sub(dl.missFrom) > n.fsys.listTTL() {
		dl.misses, dl.missFrom = 0, now
	}
	dl.misses++
	fetch := !dl.fetching && dl.misses >= listAfter && now.After(dl.coolUntil) &&
		n.fsys.lists.quiet.quietFor(nsSeq.Load(), n.fsys.client.Changes(), now) >= min(quietPeriod, n.fsys.listTTL()/4)
	if fetch {
		dl.fetching = true
	}
	n.mu.Unlock()
	cacheResult(cacheListing, false, 1)
	if fetch {
		go n.fetchListing(context.WithoutCancel(ctx))
	}
	return nil, 0, false
}

// fetchListing reads the whole directory with attributes and installs it
// as the listing, unless the directory is too big or the caller may not
// list it (then lookups go on asking the master, and listing waits).
func (n *node) fetchListing(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seq, ns, gen, at := attrSeq.Load(), nsSeq.Load(), n.fsys.client.Changes(), time.Now()
	attrs := map[string]*api.Attr{}
	ok := true
	for cookie := uint64(0); ok; {
		resp, err := n.fsys.client.ReadDir(ctx, n.ino(), cookie, 0, true)
		if err != nil || len(resp.Attrs) != len(resp.Entries) || len(attrs)+len(resp.Entries) > maxListed {
			ok = false
			break
		}
		for i, e := range resp.Entries {
			attrs[e.Name] = resp.Attrs[i]
			cookie = e.Cookie
		}
		if resp.Eof || len(resp.Entries) == 0 {
			break
		}
	}
	n.mu.Lock()
	n.dl.fetching = false
	if !ok {
		n.dl.coolUntil = time.Now().Add(64 * n.fsys.listTTL())
		n.mu.Unlock()
		return
	}
	n.dl.cur = &listing{at: at, seq: seq, ns: ns, gen: gen, attrs: attrs}
	n.mu.Unlock()
	n.fsys.lists.add(n)
}

// dropListing forgets n's listing (memory; it would end by time anyway).
func (n *node) dropListing() {
	n.mu.Lock()
	n.dl.cur = nil
	n.mu.Unlock()
}

func (ls *listings) add(n *node) {
	ls.mu.Lock()
	var drop *node
	for i, m := range ls.nodes {
		if m == n {
			ls.nodes = append(ls.nodes[:i], ls.nodes[i+1:]...)
			break
		}
	}
	ls.nodes = append(ls.nodes, n)
	if len(ls.nodes) > maxListings {
		drop = ls.nodes[0]
		ls.nodes = ls.nodes[1:]
	}
	ls.mu.Unlock()
	if drop != nil {
		drop.dropListing()
	}
}

// atimeLog remembers the access times this mount set (node.accessDone)
// for as long as a listing fetched before may answer: a node the kernel
// forgot and looks up again must not show the older time.
type atimeLog struct {
	mu     sync.Mutex
	m      map[uint64]atimeSet
	pruned time.Time
}

type atimeSet struct {
	ns    int64  // the access time
	seq   uint64 // attrSeq of the change
	until time.Time
}

// maxAtimes is how many entries the log holds before it drops those no
// listing can need.
const maxAtimes = 4096

// set records an access time set at attrSeq seq, for listings that
// last up to ttl.
func (l *atimeLog) set(ino uint64, atimeNs int64, seq uint64, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[uint64]atimeSet{}
	}
	l.m[ino] = atimeSet{ns: atimeNs, seq: seq, until: now.Add(ttl)}
	if len(l.m) > maxAtimes && now.Sub(l.pruned) > ttl {
		for ino, s := range l.m {
			if now.After(s.until) {
				delete(l.m, ino)
			}
		}
		l.pruned = now
	}
}

// patch returns a, an answer of a listing fetched as of attrSeq seq,
// with the access time this mount set since, if any.
func (l *atimeLog) patch(a *api.Attr, seq uint64) *api.Attr {
	l.mu.Lock()
	s, ok := l.m[a.Ino]
	l.mu.Unlock()
	if !ok || s.seq <= seq || s.ns <= a.AtimeNs {
		return a
	}
	c := proto.Clone(a).(*api.Attr)
	c.AtimeNs = s.ns
	return c
}
