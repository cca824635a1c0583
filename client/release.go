package client

import (
	"context"
	"time"

	"dfs/api"
)

// releaseDelay is how long a close waits for another mutation of the
// session to carry its release before one is sent on its own.
const releaseDelay = 20 * time.Millisecond

// Release ends one open recorded by Open or Create. It returns at once:
// the release rides on the session's next mutation (MutateRequest
// releases) or, if none comes within releaseDelay, goes on its own, so a
// close costs no Raft round. An open-unlinked file is reclaimed that much
// later.
func (c *Client) Release(ctx context.Context, ino uint64) error {
	c.mu.Lock()
	c.releases = append(c.releases, ino)
	c.mu.Unlock()
	select {
	case c.releaseKick <- struct{}{}:
	default:
	}
	return nil
}

// takeReleases returns the releases waiting to be sent for session sess
// and forgets them; releases of an earlier session are dropped (its
// opens ended with it).
func (c *Client) takeReleases(sess uint64) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.releasesOf != c.session {
		c.releases, c.releasesOf = nil, c.session
	}
	if sess != c.session {
		return nil
	}
	r := c.releases
	c.releases = nil
	return r
}

// releaser sends releases that no mutation carried within releaseDelay.
// A request that carried releases and failed is not repeated with them:
// it may have been applied, and an open's record outliving it only
// delays reclaiming an unlinked file until the session ends.
func (c *Client) releaser() {
	defer c.wg.Done()
	for {
		select {
		case <-c.closed:
			return
		case <-c.releaseKick:
		}
		select {
		case <-c.closed:
			return
		case <-time.After(releaseDelay):
		}
		sess := c.Session()
		rs := c.takeReleases(sess)
		if len(rs) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
		_, err := c.mutateWith(ctx, &api.Op{Op: &api.Op_Release{Release: &api.ReleaseOp{Ino: rs[0]}}}, rs[1:])
		cancel()
		if err != nil {
			c.cfg.Logf("dfs client: releasing %d opens: %v", len(rs), err)
		}
	}
}

// SetHeld gives the client the inodes its caller holds open through
// OpenUnrecorded, for keepalives to report; f must count an open before
// OpenUnrecorded is called and until the file is closed.
func (c *Client) SetHeld(f func() []uint64) {
	c.mu.Lock()
	c.held = f
	c.mu.Unlock()
}

// keepAliveRequest reports what the session holds as of now, after the
// leader's last answer.
func (c *Client) keepAliveRequest(sess uint64) *api.KeepAliveRequest {
	c.mu.Lock()
	req := &api.KeepAliveRequest{Session: sess, Epoch: c.heldEpoch, Token: c.heldToken}
	held := c.held
	c.mu.Unlock()
	if held != nil {
		req.Held = held()
	}
	return req
}

// OpenUnrecorded opens ino with no record in Raft: a linearizable read
// of its attributes and first chunk, and nothing to do at close. The
// leader keeps the file, once unlinked, while this session's keepalives
// report it held (SetHeld), so the caller must count the open there
// before calling, and stop counting it at close. access is what the open
// asks (api.OpenAccess of its flags): the master answers EACCES when the
// caller may not.
func (c *Client) OpenUnrecorded(ctx context.Context, ino uint64, access uint32) (*api.Attr, []*api.Chunk, error) {
	sess := c.Session()
	var resp *api.GetChunksResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) (err error) {
		resp, err = m.GetChunks(ctx, &api.GetChunksRequest{Ino: ino, Count: 1, Open: true, Session: sess,
			Caller: callerOf(ctx), Access: access})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.Attr, resp.Chunks, errnoErr(resp.Errno, "")
}
