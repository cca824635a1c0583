// Command metabench measures the master alone through the client library,
// without FUSE: creates, lookups and renames per second with N concurrent
// workers sharing one client session. `make bench` runs it against the
// bench cluster with 1 and 64 workers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"dfs/api"
	"dfs/client"
)

func main() {
	masters := flag.String("masters", os.Getenv("DFS_MASTERS"), "master client addresses, comma-separated")
	workers := flag.String("workers", "1,64", "comma-separated worker counts to run")
	n := flag.Int("n", 2000, "files per phase per worker count")
	flag.Parse()
	if *masters == "" {
		fmt.Fprintln(os.Stderr, "metabench: -masters (or $DFS_MASTERS) is required")
		os.Exit(2)
	}
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Masters: strings.Split(*masters, ","), Name: "metabench"})
	if err != nil {
		fmt.Fprintf(os.Stderr, "metabench: %v\n", err)
		os.Exit(1)
	}
	defer c.Close(ctx)
	for _, ws := range strings.Split(*workers, ",") {
		var w int
		if _, err := fmt.Sscan(ws, &w); err != nil || w < 1 {
			fmt.Fprintf(os.Stderr, "metabench: -workers: bad count %q\n", ws)
			os.Exit(2)
		}
		if err := run(ctx, c, w, *n); err != nil {
			fmt.Fprintf(os.Stderr, "metabench: %v\n", err)
			os.Exit(1)
		}
	}
}

// run creates a fresh directory and times each phase over n files.
func run(ctx context.Context, c *client.Client, workers, n int) error {
	dirName := fmt.Sprintf("metabench.%d.%d", os.Getpid(), workers)
	dir, err := c.Mkdir(ctx, api.RootIno, dirName, 0o755)
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	d := dir.Ino
	phases := []struct {
		name string
		op   func(i int) error
	}{
		{"create", func(i int) error {
			_, err := c.Create(ctx, d, fmt.Sprintf("f%d", i), 0o644, 0, true, false)
			return err
		}},
		{"lookup", func(i int) error {
			_, err := c.Lookup(ctx, d, fmt.Sprintf("f%d", i))
			return err
		}},
		{"rename", func(i int) error {
			return c.Rename(ctx, d, fmt.Sprintf("f%d", i), d, fmt.Sprintf("g%d", i), 0)
		}},
		{"unlink", func(i int) error {
			return c.Unlink(ctx, d, fmt.Sprintf("g%d", i))
		}},
	}
	for _, p := range phases {
		rate, p50, p99, err := phase(workers, n, p.op)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		fmt.Printf("metabench %-7s workers=%-3d %9.0f ops/s  p50 %-8v p99 %v\n", p.name, workers, rate, p50, p99)
	}
	return c.Rmdir(ctx, api.RootIno, dirName)
}

// phase runs op(0..n-1) on `workers` goroutines and returns ops/s and
// latency percentiles.
func phase(workers, n int, op func(int) error) (float64, time.Duration, time.Duration, error) {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t := time.Now()
				if err := op(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, 0, err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(n) / elapsed.Seconds(), lat[n/2], lat[n*99/100], nil
}
