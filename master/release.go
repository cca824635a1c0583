package master

import (
	"context"
	"time"

	"dfs/api"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Force-release (dfsctl sessions release, dfsctl locks release): an
// operator ends what a client cannot, through the same Raft commands as
// an expiry, so every master applies it alike.

// ReleaseSession ends a session as if its lease had expired: its locks
// are released and the waiters behind them granted, its opens released.
func (v *service) ReleaseSession(ctx context.Context, req *api.ReleaseSessionRequest) (*api.ReleaseResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	if req.Session == 0 {
		return nil, status.Error(codes.InvalidArgument, "release: no session id")
	}
	resp, err := v.propose(ctx, &api.Command{NowNs: time.Now().UnixNano(), ExpireSession: &api.ExpireSessionCmd{Session: req.Session}})
	if err != nil {
		return nil, err
	}
	if resp.Released == 0 {
		return nil, status.Errorf(codes.NotFound, "no session %d", req.Session)
	}
	v.srv.log.Warn("session released by an operator", "session", req.Session)
	return &api.ReleaseResponse{Released: resp.Released}, nil
}

// ReleaseLocks releases the held locks on a file that match the request
// (all, one session's, or one owner's).
func (v *service) ReleaseLocks(ctx context.Context, req *api.ReleaseLocksRequest) (*api.ReleaseResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	if req.Ino == 0 {
		return nil, status.Error(codes.InvalidArgument, "release: no inode number")
	}
	resp, err := v.propose(ctx, &api.Command{NowNs: time.Now().UnixNano(), ForceUnlock: &api.ForceUnlockCmd{
		Ino: req.Ino, Session: req.Session, Owner: req.Owner, HasOwner: req.HasOwner}})
	if err != nil {
		return nil, err
	}
	if resp.Released == 0 {
		return nil, status.Errorf(codes.NotFound, "no lock held on inode %d matches", req.Ino)
	}
	v.srv.log.Warn("locks released by an operator", "ino", req.Ino, "session", req.Session, "locks", resp.Released)
	return &api.ReleaseResponse{Released: resp.Released}, nil
}
