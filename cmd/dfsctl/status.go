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

func runStatus(mastersFlag string, jsonOut bool, args []string) error {
	fl := flag.NewFlagSet("status", flag.ContinueOnError)
	fl.BoolVar(&jsonOut, "json", jsonOut, "print machine-readable JSON")
	if err := fl.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fl.NArg() > 0 {
		return usageError("status takes no arguments")
	}
	addrs, err := masterAddrs(mastersFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cluster.LeaderStatus(ctx, addrs, dialOption())
	if err != nil {
		return err
	}
	if jsonOut {
		return printJSON(st)
	}
	printStatus(os.Stdout, st)
	return nil
}

func printStatus(w io.Writer, st *api.StatusResponse) {
	fmt.Fprintf(w, "leader: %s\n\n", st.Leader)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MASTER\tADDR\tRAFT\tSTATE\tVOTER")
	for _, m := range st.Masters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", m.Id, m.Addr, m.RaftAddr, m.State, m.Voter)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHUNKSERVER\tADDR\tZONE\tCAPACITY\tUSED\tFREE\tCHUNKS\tALIVE\tLAST SEEN")
	for _, s := range st.Servers {
		seen := "-"
		if s.LastSeenNs > 0 {
			seen = time.Since(time.Unix(0, s.LastSeenNs)).Round(100*time.Millisecond).String() + " ago"
		}
		zone := s.Zone
		if zone == "" {
			zone = "-"
		}
		alive := fmt.Sprint(s.Alive)
		if s.Draining {
			alive += " (draining)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Id, s.Addr, zone,
			bytesString(s.Capacity), bytesString(s.Used), bytesString(s.Free), s.Chunks, alive, seen)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "inodes %d  chunks %d  sessions %d  locks %d  lock waiters %d  logical bytes %s  applied index %d\n",
		st.Inodes, st.Chunks, st.Sessions, st.Locks, st.LockWaiters, bytesString(st.LogicalBytes), st.AppliedIndex)
	fmt.Fprintln(w, usageLine(st))
}

// usageLine compares the raw space chunkservers use (every replica and
// every EC shard, with checksums) with the logical bytes of all files.
func usageLine(st *api.StatusResponse) string {
	var raw uint64
	for _, s := range st.Servers {
		raw += s.Used
	}
	line := fmt.Sprintf("raw bytes used %s, logical bytes %s", bytesString(raw), bytesString(st.LogicalBytes))
	if st.LogicalBytes > 0 {
		line += fmt.Sprintf(" (raw/logical %.2f)", float64(raw)/float64(st.LogicalBytes))
	}
	return line
}

// bytesString formats n in binary units, exact below 1 KiB.
func bytesString(n uint64) string {
	return units.Bytes(n)
}

// printJSON writes m to stdout as indented JSON with every field shown.
func printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	// Re-indent: protojson's own spacing is deliberately unstable.
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
