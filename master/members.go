package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"dfs/api"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// membershipTimeout bounds one Raft configuration change.
const membershipTimeout = 30 * time.Second

// AddMaster adds a master to the Raft group. The new master must be
// running with -join (or hold this group's state): the leader sends it a
// snapshot and the log tail, and it starts voting once it is a member.
func (v *service) AddMaster(ctx context.Context, req *api.AddMasterRequest) (*api.MembersResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	if req.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "add master: empty id")
	}
	if _, _, err := net.SplitHostPort(req.RaftAddr); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "add master %s: Raft address %q: %v", req.Id, req.RaftAddr, err)
	}
	cfg, err := v.configuration()
	if err != nil {
		return nil, err
	}
	for _, s := range cfg.Servers {
		if string(s.ID) != req.Id && string(s.Address) == req.RaftAddr {
			return nil, status.Errorf(codes.AlreadyExists, "add master %s: Raft address %s belongs to member %s", req.Id, req.RaftAddr, s.ID)
		}
	}
	var f raft.IndexFuture
	if req.NonVoter {
		f = v.raft.AddNonvoter(raft.ServerID(req.Id), raft.ServerAddress(req.RaftAddr), 0, membershipTimeout)
	} else {
		f = v.raft.AddVoter(raft.ServerID(req.Id), raft.ServerAddress(req.RaftAddr), 0, membershipTimeout)
	}
	if err := v.membershipErr(f.Error()); err != nil {
		return nil, err
	}
	v.srv.log.Info("master added to the group", "id", req.Id, "raft", req.RaftAddr, "voter", !req.NonVoter)
	return v.members()
}

// RemoveMaster removes a master from the Raft group: a dead one being
// replaced, or a live one being retired (stop its process afterwards).
// Removing the leader itself makes it step down once the change commits.
func (v *service) RemoveMaster(ctx context.Context, req *api.RemoveMasterRequest) (*api.MembersResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	cfg, err := v.configuration()
	if err != nil {
		return nil, err
	}
	found := false
	for _, s := range cfg.Servers {
		found = found || string(s.ID) == req.Id
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "remove master: %q is not a member", req.Id)
	}
	if len(cfg.Servers) == 1 {
		return nil, status.Errorf(codes.FailedPrecondition, "remove master %s: it is the only member", req.Id)
	}
	// Forget its client address first, so leader hints stop naming it.
	op := &api.Op{Op: &api.Op_RegisterMaster{RegisterMaster: &api.RegisterMasterOp{Id: req.Id}}}
	if _, err := v.propose(ctx, &api.Command{NowNs: time.Now().UnixNano(), Op: op}); err != nil {
		return nil, err
	}
	if err := v.membershipErr(v.raft.RemoveServer(raft.ServerID(req.Id), 0, membershipTimeout).Error()); err != nil {
		return nil, err
	}
	v.srv.log.Info("master removed from the group", "id", req.Id)
	if req.Id == v.cfg.ID {
		return &api.MembersResponse{}, nil // no longer leader: the caller asks another
	}
	return v.members()
}

func (v *service) configuration() (raft.Configuration, error) {
	f := v.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, status.Errorf(codes.Unavailable, "reading the Raft configuration: %v", err)
	}
	return f.Configuration(), nil
}

func (v *service) membershipErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return v.notLeader()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return status.Error(codes.DeadlineExceeded, "membership change timed out: is a majority up?")
	}
	return status.Error(codes.FailedPrecondition, fmt.Sprintf("membership change: %v", err))
}

// members describes the current configuration.
func (v *service) members() (*api.MembersResponse, error) {
	st, err := v.Status(context.Background(), &api.StatusRequest{})
	if err != nil {
		return nil, err
	}
	return &api.MembersResponse{Masters: st.Masters}, nil
}
