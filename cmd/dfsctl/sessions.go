package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"dfs/api"
	"dfs/cluster"
	"dfs/units"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// runSessions lists the client sessions, from the leader.
func runSessions(mastersFlag string, jsonOut bool, args []string) error {
	st, jsonOut, err := detailStatus("sessions", mastersFlag, jsonOut, args)
	if err != nil {
		return err
	}
	if jsonOut {
		return printJSONList(st.SessionList)
	}
	printSessions(os.Stdout, st)
	return nil
}

// runLocks lists held locks and waiting lock requests, from the leader.
func runLocks(mastersFlag string, jsonOut bool, args []string) error {
	st, jsonOut, err := detailStatus("locks", mastersFlag, jsonOut, args)
	if err != nil {
		return err
	}
	if jsonOut {
		return printJSONList(st.LockList)
	}
	printLocks(os.Stdout, st, time.Now())
	return nil
}

// detailStatus parses a list command's flags and asks the leader for a
// detailed status.
func detailStatus(name, mastersFlag string, jsonOut bool, args []string) (*api.StatusResponse, bool, error) {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.BoolVar(&jsonOut, "json", jsonOut, "print machine-readable JSON")
	if err := fl.Parse(args); err != nil {
		return nil, false, usageError(err.Error())
	}
	if fl.NArg() > 0 {
		return nil, false, usageError(name + " takes no arguments")
	}
	addrs, err := masterAddrs(mastersFlag)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := cluster.LeaderStatusDetail(ctx, addrs, dialOption())
	return st, jsonOut, err
}

func printSessions(w io.Writer, st *api.StatusResponse) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tCLIENT\tTTL\tEXPIRES IN\tOPEN FILES\tLOCKS")
	for _, s := range st.SessionList {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\n", s.Id, s.Client, units.Duration(s.TtlNs), units.Duration(s.ExpiresInNs), s.OpenFiles, s.Locks)
	}
	tw.Flush()
	if n := uint64(len(st.SessionList)); st.Sessions > n {
		fmt.Fprintf(w, "(%d of %d sessions shown)\n", n, st.Sessions)
	}
}

func printLocks(w io.Writer, st *api.StatusResponse, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tINO\tKIND\tTYPE\tRANGE\tSESSION\tOWNER\tPID\tSTATE\tSINCE")
	for _, l := range st.LockList {
		state, path := "held", l.Path
		if l.Waiting {
			state = "waiting"
		}
		if path == "" {
			path = "(unnamed)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%#x\t%d\t%s\t%s\n", path, l.Ino, l.Lock.Kind, l.Lock.Type,
			units.Range(l.Lock.Start, l.Lock.End), l.Lock.Session, l.Lock.Owner, l.Lock.Pid, state, units.Ago(now, l.SinceNs))
	}
	tw.Flush()
	if n, all := uint64(len(st.LockList)), st.Locks+st.LockWaiters; all > n {
		fmt.Fprintf(w, "(%d of %d locks and waiters shown)\n", n, all)
	}
}

// printJSONList writes items to stdout as an indented JSON array.
func printJSONList[T proto.Message](items []T) error {
	out := make([]json.RawMessage, 0, len(items))
	for _, m := range items {
		b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
		if err != nil {
			return err
		}
		out = append(out, b)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
