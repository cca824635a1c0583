package client

import (
	"context"
	"sync"
	"time"

	"dfs/api"
)

// accessDelay is how long a read's access-time update waits for others
// to share its Raft command. A stat of the file does not wait for it
// (FlushAccesses).
const accessDelay = 20 * time.Millisecond

// maxAccessBatch is the most updates one AccessOp carries (the master
// refuses more than 4096).
const maxAccessBatch = 1024

type accessWait struct {
	ino  uint64
	done func(atimeNs int64, err error)
}

// accesses gathers access-time updates (Access) into AccessOps.
type accesses struct {
	mu      sync.Mutex
	waiting []accessWait
	kick    chan struct{} // something waits
	now     chan struct{} // send without waiting out accessDelay
	// closing bounds the last send, at Close: set before c.closed is
	// closed, read after.
	closing context.Context
}

func newAccesses() *accesses {
	return &accesses{kick: make(chan struct{}, 1), now: make(chan struct{}, 1)}
}

// Access sets ino's access time to the masters' time (a read's update,
// which leaves ctime alone) in the background. Updates asked for within
// accessDelay of each other share one command, so reading many files
// costs a Raft round per batch instead of one per file. done is called
// once, from another goroutine, with the access time set or an error.
func (c *Client) Access(ino uint64, done func(atimeNs int64, err error)) {
	a := c.acc
	a.mu.Lock()
	a.waiting = append(a.waiting, accessWait{ino, done})
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// FlushAccesses sends the waiting access-time updates without waiting
// out accessDelay: someone wants to see one.
func (c *Client) FlushAccesses() {
	select {
	case c.acc.now <- struct{}{}:
	default:
	}
}

func (a *accesses) take() []accessWait {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.waiting
	a.waiting = nil
	return w
}

// accesser sends the updates Access gathers, accessDelay after the first
// of a batch (or at once when flushed), and the last ones at Close.
func (c *Client) accesser() {
	defer c.wg.Done()
	a := c.acc
	for {
		select {
		case <-c.closed:
			c.sendAccesses(a.closing, a.take())
			return
		case <-a.now:
		case <-a.kick:
			t := time.NewTimer(accessDelay)
			select {
			case <-c.closed:
			case <-a.now:
			case <-t.C:
			}
			t.Stop()
		}
		ctx := context.Background()
		select {
		case <-c.closed:
			ctx = a.closing
		default:
		}
		c.sendAccesses(ctx, a.take())
	}
}

func (c *Client) sendAccesses(ctx context.Context, ws []accessWait) {
	for len(ws) > 0 {
		n := min(len(ws), maxAccessBatch)
		batch := ws[:n]
		ws = ws[n:]
		op := &api.AccessOp{Inos: make([]uint64, n)}
		for i, w := range batch {
			op.Inos[i] = w.ino
		}
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		resp, err := c.mutate(cctx, &api.Op{Op: &api.Op_Access{Access: op}})
		cancel()
		if err == nil {
			err = errnoErr(resp.Errno, resp.Message)
		}
		var at int64
		if err == nil {
			at = resp.AtimeNs
		} else {
			c.cfg.Logf("dfs client: access times of %d files: %v", n, err)
		}
		for _, w := range batch {
			w.done(at, err)
		}
	}
}
