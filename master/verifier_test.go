package master

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestVerifierLease: a confirmed round serves reads for the lease without
// more rounds; revoke ends it at once; a failed round grants nothing; a
// round that started before a revoke grants nothing even if it succeeds.
func TestVerifierLease(t *testing.T) {
	var rounds atomic.Int32
	var fail atomic.Bool
	gate := make(chan struct{}, 100)
	vf := &verifier{lease: time.Hour, check: func() error {
		rounds.Add(1)
		<-gate
		if fail.Load() {
			return errors.New("not leader")
		}
		return nil
	}}
	ctx := context.Background()
	gate <- struct{}{}
	if err := vf.wait(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := vf.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := rounds.Load(); n != 1 {
		t.Fatalf("%d rounds for 101 reads in one lease, want 1", n)
	}

	vf.revoke()
	fail.Store(true)
	gate <- struct{}{}
	if err := vf.wait(ctx); err == nil {
		t.Fatal("read after revoke was not checked: want the failed round's error")
	}
	fail.Store(false)

	// A round in flight when revoke runs must not grant a lease.
	done := make(chan error, 1)
	go func() { done <- vf.wait(ctx) }()
	for rounds.Load() != 3 {
		time.Sleep(time.Millisecond)
	}
	vf.revoke()
	gate <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gate <- struct{}{}
	if err := vf.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rounds.Load(); n != 4 {
		t.Fatalf("%d rounds, want 4: a round started before revoke granted a lease", n)
	}
}

// TestVerifierNoLease: with no lease every read waits for a round that
// started after it arrived; concurrent readers share rounds.
func TestVerifierNoLease(t *testing.T) {
	var rounds atomic.Int32
	vf := &verifier{check: func() error {
		rounds.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	}}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := vf.wait(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := rounds.Load(); n < 1 || n > 50 {
		t.Fatalf("%d rounds for 50 readers", n)
	}
	before := rounds.Load()
	vf.wait(context.Background())
	if rounds.Load() == before {
		t.Fatal("a read without a lease was served without a round")
	}
}

// TestVerifierRenewsEarly: a read in the second half of the lease starts
// a renewal in the background and is answered at once.
func TestVerifierRenewsEarly(t *testing.T) {
	var rounds atomic.Int32
	vf := &verifier{lease: 200 * time.Millisecond, check: func() error { rounds.Add(1); return nil }}
	vf.wait(context.Background())
	time.Sleep(120 * time.Millisecond)
	vf.wait(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for rounds.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if rounds.Load() < 2 {
		t.Fatal("no renewal round started in the second half of the lease")
	}
}
