package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"dfs/api"

	"google.golang.org/grpc"
)

// AskMaster calls Status on the master at addr alone, without following
// leader hints. Followers may answer with their own view or with a
// NotLeader error (api.LeaderHint). Without dial options the call is
// plaintext; a TLS cluster needs api.Credentials (Cluster.DialOption).
func AskMaster(ctx context.Context, addr string, opts ...grpc.DialOption) (*api.StatusResponse, error) {
	return askMaster(ctx, addr, &api.StatusRequest{}, opts)
}

func askMaster(ctx context.Context, addr string, req *api.StatusRequest, opts []grpc.DialOption) (*api.StatusResponse, error) {
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{api.Credentials(nil)}, opts...)...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// A detailed answer asks every other master, each within a second.
	timeout := 2 * time.Second
	if req.Detail {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return api.NewMasterClient(conn).Status(ctx, req)
}

// LeaderStatus asks the masters at addrs for the cluster's status and
// returns the answer of the master that says it is the leader, following
// NotLeader hints. It fails if no master answers as leader. opts are as
// for AskMaster.
func LeaderStatus(ctx context.Context, addrs []string, opts ...grpc.DialOption) (*api.StatusResponse, error) {
	return leaderStatus(ctx, addrs, &api.StatusRequest{}, opts)
}

// LeaderStatusDetail is LeaderStatus with the lists behind the counts:
// sessions, locks and chunk health (api.StatusRequest.Detail).
func LeaderStatusDetail(ctx context.Context, addrs []string, opts ...grpc.DialOption) (*api.StatusResponse, error) {
	return leaderStatus(ctx, addrs, &api.StatusRequest{Detail: true}, opts)
}

func leaderStatus(ctx context.Context, addrs []string, req *api.StatusRequest, opts []grpc.DialOption) (*api.StatusResponse, error) {
	var errs []error
	tried := map[string]bool{}
	queue := slices.Clone(addrs)
	for len(queue) > 0 {
		addr := queue[0]
		queue = queue[1:]
		if tried[addr] || addr == "" {
			continue
		}
		tried[addr] = true
		st, err := askMaster(ctx, addr, req, opts)
		if err != nil {
			if nl, ok := api.LeaderHint(err); ok {
				queue = append([]string{nl.LeaderAddr}, queue...)
				queue = append(queue, nl.Masters...)
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		if st.Leader == addr {
			return st, nil
		}
		// A follower's view: its leader is the one to ask.
		queue = append([]string{st.Leader}, queue...)
		errs = append(errs, fmt.Errorf("%s: not the leader (says leader is %q)", addr, st.Leader))
	}
	return nil, fmt.Errorf("no leader among %v: %w", addrs, errors.Join(errs...))
}
