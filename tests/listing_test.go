package tests

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"dfs/cluster"
)

// listingTTL is the listing tests' attribute and entry time.
const listingTTL = 3 * time.Second

// listingCluster starts a master, a chunkserver and two mounts with
// attribute and entry times of listingTTL; metric reads mount 2's metrics.
func listingCluster(t *testing.T) (metric func(name string, labels ...string) float64, one, two string) {
	opts := []string{"-o", fmt.Sprintf("attr_timeout=%g,entry_timeout=%g", listingTTL.Seconds(), listingTTL.Seconds()), "-debug-addr", "127.0.0.1:0"}
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 1, Mounts: 2, ExtraMountArgs: opts})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	admin := adminAddrFromLog(ctx, t, filepath.Join(c.LogDir(), "mount2.log"))
	metric = func(name string, labels ...string) float64 {
		v, _ := scrape(ctx, t, admin).Sum(name, labels...)
		return v
	}
	return metric, c.MountDir(0), c.MountDir(1)
}

// TestListingLookups: lookups that keep missing the kernel's caches in one
// directory are answered from a listing of the whole directory
// (fs/listing.go), and the listing never shows this mount an older state
// than its own changes, never hides a name another mount made, never
// keeps a removed name past the entry time, and never breaks
// close-to-open.
func TestListingLookups(t *testing.T) {
	metric, one, two := listingCluster(t)
	hits := func() float64 { return metric("dfs_mount_cache_total", "cache=listing", "result=hit") }

	// Lookups on mount 2 of names it never saw, until a listing answers
	// some (it is fetched in the background after a few misses).
	var dir string
	for attempt := 1; ; attempt++ {
		dir = fmt.Sprintf("d%d", attempt)
		if err := os.Mkdir(filepath.Join(one, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			if err := os.WriteFile(filepath.Join(one, dir, fmt.Sprint("f", i)), make([]byte, i), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Link(filepath.Join(one, dir, "f290"), filepath.Join(one, dir, "link290")); err != nil {
			t.Fatal(err)
		}
		before := hits()
		start := time.Now()
		for i := range 280 {
			st, err := os.Stat(filepath.Join(two, dir, fmt.Sprint("f", i)))
			if err != nil || st.Size() != int64(i) {
				t.Fatalf("stat of f%d on mount 2: %v, size %v", i, err, st)
			}
			if i == 100 {
				time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
			}
		}
		got := hits() - before
		t.Logf("attempt %d: %v of 280 lookups answered from a listing in %v", attempt, got, time.Since(start))
		if got > 0 {
			break
		}
		if attempt == 5 {
			t.Fatalf("no lookup answered from a listing in %d attempts", attempt)
		}
	}
	p1 := func(name string) string { return filepath.Join(one, dir, name) }
	p2 := func(name string) string { return filepath.Join(two, dir, name) }

	// This mount's own change shows at once, also under a name it
	// reaches through the listing: the listing ended with the change.
	if err := os.Truncate(p2("f290"), 12345); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p2("link290")); err != nil || st.Size() != 12345 {
		t.Fatalf("link290 after truncating f290 through the same mount: %v, %v; want size 12345", err, st)
	}
	// List again (a listing is fetched once the mount has made no change
	// for a moment), then let mount 1 make, change and remove.
	before := hits()
	for i := 283; i < 290; i++ {
		if _, err := os.Stat(p2(fmt.Sprint("f", i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if hits() == before {
		t.Fatal("no listing answered lookups after the mount's own change had settled")
	}
	if err := os.WriteFile(p1("new"), []byte("made on mount 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p1("f281"), []byte("rewritten on mount 1, longer than before"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p1("f282")); err != nil {
		t.Fatal(err)
	}
	// A name the listing lacks is asked of the master.
	if b, err := os.ReadFile(p2("new")); err != nil || string(b) != "made on mount 1" {
		t.Fatalf("a file mount 1 just made, read on mount 2: %q, %v", b, err)
	}
	// Close-to-open: the open asks the master, whatever the listing says.
	if b, err := os.ReadFile(p2("f281")); err != nil || string(b) != "rewritten on mount 1, longer than before" {
		t.Fatalf("a file mount 1 rewrote and closed, read on mount 2: %q, %v", b, err)
	}
	// A removed name may show until the entry time is up, not after.
	time.Sleep(listingTTL + 500*time.Millisecond)
	if _, err := os.Stat(p2("f282")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("f282, removed on mount 1 %v ago, on mount 2: %v; want ENOENT", listingTTL, err)
	}
}

// TestListingThroughReads: reading a directory's files moves their
// access times, which must neither end the directory's listing (so the
// reads' lookups are answered from it) nor let it show the older times:
// after the kernel forgot the files, stat through the same mount shows
// the access times its reads set, and so does the other mount once its
// attribute time is up.
func TestListingThroughReads(t *testing.T) {
	metric, one, two := listingCluster(t)
	const files = 200
	name := func(root string, i int) string { return filepath.Join(root, "d", fmt.Sprint("f", i)) }
	if err := os.Mkdir(filepath.Join(one, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if err := os.WriteFile(name(one, i), []byte(fmt.Sprint("file ", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dropCaches(t)
	hits := metric("dfs_mount_cache_total", "cache=listing", "result=hit")
	accesses := metric("dfs_rpc_client_sent_total", "method=Mutate", "op=Access")
	for i := range files {
		if b, err := os.ReadFile(name(two, i)); err != nil || string(b) != fmt.Sprint("file ", i) {
			t.Fatalf("f%d on mount 2: %q, %v", i, b, err)
		}
	}
	hits = metric("dfs_mount_cache_total", "cache=listing", "result=hit") - hits
	accesses = metric("dfs_rpc_client_sent_total", "method=Mutate", "op=Access") - accesses
	t.Logf("reading %d files: %v lookups answered from a listing, %v access-time commands", files, hits, accesses)
	if hits == 0 {
		t.Error("no lookup of the reads was answered from a listing: the access-time updates ended it")
	}
	if accesses == 0 || accesses > files {
		t.Errorf("%v access-time commands for %d files read", accesses, files)
	}
	// The kernel forgets the files; mount 2's lookups may be answered
	// from a listing fetched before its reads' updates landed.
	dropCaches(t)
	hits = metric("dfs_mount_cache_total", "cache=listing", "result=hit")
	seen := make([]int64, files)
	for i := range files {
		var st syscall.Stat_t
		if err := syscall.Stat(name(two, i), &st); err != nil {
			t.Fatal(err)
		}
		seen[i] = st.Atim.Nano()
		if seen[i] <= st.Mtim.Nano() {
			t.Fatalf("f%d on mount 2 after reading it: atime %d, not after mtime %d", i, seen[i], st.Mtim.Nano())
		}
	}
	t.Logf("stat after dropping caches: %v lookups answered from a listing", metric("dfs_mount_cache_total", "cache=listing", "result=hit")-hits)
	time.Sleep(listingTTL + 500*time.Millisecond)
	for i := range files {
		var st syscall.Stat_t
		if err := syscall.Stat(name(one, i), &st); err != nil {
			t.Fatal(err)
		}
		if st.Atim.Nano() != seen[i] {
			t.Fatalf("f%d: atime %d on mount 1, %d on mount 2 which read it", i, st.Atim.Nano(), seen[i])
		}
	}
}

func dropCaches(t *testing.T) {
	t.Helper()
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		t.Fatalf("dropping caches (the test runs as root): %v", err)
	}
}
