package client_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"dfs/api"
)

// Access-time updates asked for together share one AccessOp; each
// caller hears the time set, and the files show it.
func TestAccessesShareOneCommand(t *testing.T) {
	cl, c := start(t, 1, 1)
	ctx := context.Background()
	var inos []uint64
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		a, err := c.Create(ctx, api.RootIno, name, syscall.S_IFREG|0644, 0, true, false)
		if err != nil {
			t.Fatal(err)
		}
		inos = append(inos, a.Ino)
	}
	before := cl.Applied()
	var wg sync.WaitGroup
	times := make([]int64, len(inos))
	for i, ino := range inos {
		wg.Add(1)
		c.Access(ino, func(at int64, err error) {
			if err != nil {
				t.Errorf("access %d: %v", ino, err)
			}
			times[i] = at
			wg.Done()
		})
	}
	wg.Wait()
	if got := cl.Applied() - before; got != 1 {
		t.Errorf("%d access-time updates took %d commands, want 1", len(inos), got)
	}
	for i, ino := range inos {
		a, err := c.GetAttr(ctx, ino)
		if err != nil {
			t.Fatal(err)
		}
		if times[i] == 0 || a.AtimeNs != times[i] {
			t.Errorf("inode %d: atime %d, the update answered %d", ino, a.AtimeNs, times[i])
		}
	}
}

// FlushAccesses sends at once what waits: a stat after a read must not
// wait out the gathering delay each time. Close sends what is left.
func TestAccessFlushAndClose(t *testing.T) {
	_, c := start(t, 1, 1)
	ctx := context.Background()
	a, err := c.Create(ctx, api.RootIno, "f", syscall.S_IFREG|0644, 0, true, false)
	if err != nil {
		t.Fatal(err)
	}
	// Measured against the gathering delay (20 ms) many times over, so
	// that a slow machine cannot pass by luck: flushed updates must beat
	// unflushed ones.
	timed := func(flush bool) time.Duration {
		start := time.Now()
		done := make(chan struct{})
		c.Access(a.Ino, func(int64, error) { close(done) })
		if flush {
			c.FlushAccesses()
		}
		<-done
		return time.Since(start)
	}
	var flushed, waited time.Duration
	for range 10 {
		flushed += timed(true)
		waited += timed(false)
	}
	if waited < 10*20*time.Millisecond {
		t.Errorf("10 unflushed updates took %v, less than the gathering delay each", waited)
	}
	if flushed >= waited {
		t.Errorf("10 flushed updates took %v, unflushed %v: flushing did not hurry them", flushed, waited)
	}
	done := make(chan error, 1)
	c.Access(a.Ino, func(_ int64, err error) { done <- err })
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("update pending at close: %v", err)
		}
	default:
		t.Error("an update pending at close was neither sent nor answered")
	}
}

// With no master to answer, Close still returns within its own time,
// and the update waiting is answered with the failure.
func TestAccessCloseWithoutMasters(t *testing.T) {
	cl, c := start(t, 1, 1)
	a, err := c.Create(context.Background(), api.RootIno, "f", syscall.S_IFREG|0644, 0, true, false)
	if err != nil {
		t.Fatal(err)
	}
	cl.SetLeader(-1)
	done := make(chan error, 1)
	c.Access(a.Ino, func(_ int64, err error) { done <- err })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	c.Close(ctx)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Close took %v with a 300ms context", took)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the update waiting at close succeeded with no master")
		}
	default:
		t.Error("the update waiting at close was not answered")
	}
}
