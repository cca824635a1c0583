package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"dfs/api"
	"dfs/cluster"

	"google.golang.org/grpc"
)

// onLeader runs call against the master leader, finding it again if
// leadership moves meanwhile.
func onLeader(ctx context.Context, addrs []string, call func(context.Context, api.MasterClient) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var st *api.StatusResponse
		if st, err = cluster.LeaderStatus(ctx, addrs, dialOption()); err != nil {
			return err
		}
		var conn *grpc.ClientConn
		if conn, err = grpc.NewClient(st.Leader, dialOption(),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(api.MaxMessage))); err != nil {
			return err
		}
		err = call(ctx, api.NewMasterClient(conn))
		conn.Close()
		if _, notLeader := api.LeaderHint(err); !notLeader {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
	return err
}

func runMembers(mastersFlag string, args []string) error {
	if len(args) == 0 {
		return usageError("members: want list, add ID RAFTADDR [-non-voter], or remove ID")
	}
	addrs, err := masterAddrs(mastersFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var resp *api.MembersResponse
	switch sub := args[0]; sub {
	case "list":
		if len(args) != 1 {
			return usageError("members list takes no arguments")
		}
		st, err := cluster.LeaderStatus(ctx, addrs, dialOption())
		if err != nil {
			return err
		}
		resp = &api.MembersResponse{Masters: st.Masters}
	case "add":
		fl := flag.NewFlagSet("members add", flag.ContinueOnError)
		nonVoter := fl.Bool("non-voter", false, "add as a non-voting member")
		if err := fl.Parse(args[1:]); err != nil {
			return usageError(err.Error())
		}
		if fl.NArg() != 2 {
			return usageError("members add ID RAFTADDR [-non-voter]: the new master's -id and -raft address (start it with -join)")
		}
		req := &api.AddMasterRequest{Id: fl.Arg(0), RaftAddr: fl.Arg(1), NonVoter: *nonVoter}
		err = onLeader(ctx, addrs, func(ctx context.Context, m api.MasterClient) error {
			var err error
			resp, err = m.AddMaster(ctx, req)
			return err
		})
	case "remove":
		if len(args) != 2 {
			return usageError("members remove ID")
		}
		err = onLeader(ctx, addrs, func(ctx context.Context, m api.MasterClient) error {
			var err error
			resp, err = m.RemoveMaster(ctx, &api.RemoveMasterRequest{Id: args[1]})
			return err
		})
		if err == nil && len(resp.Masters) == 0 {
			// The leader removed itself; ask the new one.
			time.Sleep(time.Second)
			st, serr := cluster.LeaderStatus(ctx, addrs, dialOption())
			if serr != nil {
				fmt.Printf("removed %s; no leader answers yet: %v\n", args[1], serr)
				return nil
			}
			resp = &api.MembersResponse{Masters: st.Masters}
		}
	default:
		return usageError(fmt.Sprintf("members: unknown subcommand %q", sub))
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MASTER\tADDR\tRAFT\tSTATE\tVOTER")
	for _, m := range resp.Masters {
		addr := m.Addr
		if addr == "" {
			addr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", m.Id, addr, m.RaftAddr, m.State, m.Voter)
	}
	return tw.Flush()
}
