// Command lockbench measures file locks through dfs mounts: the latency
// of an uncontended flock lock+unlock pair (p50, p99), and lock+unlock
// pairs per second with several workers contending for one file across
// mounts (each worker has its own open file description, so they contend
// as separate processes would).
//
//	lockbench -dirs /mnt/a,/mnt/b -n 500 -workers 8 -for 10s
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	dirs := flag.String("dirs", os.Getenv("DFS_MOUNT"), "comma-separated directories on dfs mounts (the same directory seen through each mount)")
	n := flag.Int("n", 500, "uncontended lock+unlock pairs to time")
	workers := flag.Int("workers", 8, "contending workers, spread over the mounts")
	dur := flag.Duration("for", 10*time.Second, "how long the contended phase runs")
	flag.Parse()
	var ds []string
	for _, d := range strings.Split(*dirs, ",") {
		if d = strings.TrimSpace(d); d != "" {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		fmt.Fprintln(os.Stderr, "lockbench: -dirs (or $DFS_MOUNT) is required")
		os.Exit(2)
	}
	name := fmt.Sprintf("lockbench.%d", os.Getpid())
	if err := os.WriteFile(filepath.Join(ds[0], name), nil, 0o644); err != nil {
		fail(err)
	}
	defer os.Remove(filepath.Join(ds[0], name))

	// Uncontended: one descriptor, lock and unlock in turn.
	f, err := os.Open(filepath.Join(ds[0], name))
	if err != nil {
		fail(err)
	}
	lat := make([]time.Duration, *n)
	for i := range lat {
		start := time.Now()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			fail(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
			fail(err)
		}
		lat[i] = time.Since(start)
	}
	f.Close()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("flock lock+unlock, uncontended: n=%d p50=%v p99=%v max=%v\n", *n,
		lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))

	// Contended: workers on every mount take turns on one file.
	var ops atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(*dur)
	errs := make(chan error, *workers)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(filepath.Join(ds[w%len(ds)], name))
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			for time.Now().Before(stop) {
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
					errs <- err
					return
				}
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
					errs <- err
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fail(err)
	}
	fmt.Printf("flock lock+unlock, %d workers on %d mounts: %.0f pairs/s over %v\n",
		*workers, len(ds), float64(ops.Load())/dur.Seconds(), *dur)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "lockbench: %v\n", err)
	os.Exit(1)
}
