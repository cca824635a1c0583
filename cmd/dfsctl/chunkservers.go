package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"dfs/api"
	"dfs/units"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// exitRefused is the status when the masters refuse what was asked (a
// drain the rest of the cluster cannot hold, an unknown server, session
// or lock), which scripts can tell apart from failures to ask (1).
const exitRefused = 3

// refused turns a refusal by the leader into exitRefused, printing why.
func refused(err error) error {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.NotFound, codes.InvalidArgument:
		fmt.Fprintf(os.Stderr, "dfsctl: %s\n", status.Convert(err).Message())
		return exitError(exitRefused)
	}
	return err
}

func runChunkservers(mastersFlag string, jsonOut bool, args []string) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fl := flag.NewFlagSet("chunkservers "+sub, flag.ContinueOnError)
	fl.BoolVar(&jsonOut, "json", jsonOut, "print machine-readable JSON")
	noWait := fl.Bool("no-wait", false, "drain: return once the drain has begun")
	pos, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	addrs, err := masterAddrs(mastersFlag)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		if len(pos) > 0 {
			return usageError("chunkservers list takes no arguments")
		}
		resp, err := chunkservers(addrs)
		if err != nil {
			return err
		}
		if jsonOut {
			return printJSON(resp)
		}
		printChunkservers(os.Stdout, resp.Servers, time.Now())
		return nil
	case "drain", "undrain":
		if len(pos) != 1 {
			return usageError("chunkservers " + sub + " ID [-no-wait] [-json]: one chunkserver id (see dfsctl chunkservers)")
		}
		id := pos[0]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var resp *api.ChunkServersResponse
		err := onLeader(ctx, addrs, func(ctx context.Context, m api.MasterClient) error {
			var err error
			resp, err = m.DrainServer(ctx, &api.DrainServerRequest{Id: id, Undrain: sub == "undrain"})
			return err
		})
		if err != nil {
			return refused(err)
		}
		st := findServer(resp.Servers, id)
		if sub == "undrain" || *noWait {
			if jsonOut {
				return printJSON(st)
			}
			fmt.Printf("%s: %s\n", id, st.GetState())
			return nil
		}
		return waitDrained(addrs, id, jsonOut)
	}
	return usageError(fmt.Sprintf("chunkservers: unknown subcommand %q (want list, drain ID or undrain ID)", sub))
}

func chunkservers(addrs []string) (*api.ChunkServersResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var resp *api.ChunkServersResponse
	err := onLeader(ctx, addrs, func(ctx context.Context, m api.MasterClient) error {
		var err error
		resp, err = m.ChunkServers(ctx, &api.ChunkServersRequest{})
		return err
	})
	return resp, err
}

func findServer(list []*api.ChunkServerState, id string) *api.ChunkServerState {
	for _, s := range list {
		if s.GetInfo().GetId() == id {
			return s
		}
	}
	return nil
}

// drainProgress is one line of `chunkservers drain -json`.
type drainProgress struct {
	Server    string `json:"server"`
	State     string `json:"state"`
	Remaining uint64 `json:"remaining"`
	Total     uint64 `json:"total"`
	Done      bool   `json:"done"`
}

// waitDrained polls the leader until no chunk depends on the server,
// showing progress: a bar on a terminal, a line per change otherwise,
// and JSON lines with -json.
func waitDrained(addrs []string, id string, jsonOut bool) error {
	tty := isTerminal(os.Stdout)
	var last *drainProgress
	for {
		resp, err := chunkservers(addrs)
		if err != nil {
			return err
		}
		st := findServer(resp.Servers, id)
		if st == nil {
			return fmt.Errorf("chunkserver %s is no longer registered", id)
		}
		if !st.Draining {
			return fmt.Errorf("the drain of %s was cancelled (chunkservers undrain)", id)
		}
		p := drainProgress{Server: id, State: st.State, Remaining: st.Referenced, Total: max(st.DrainTotal, st.Referenced), Done: st.Referenced == 0}
		if last == nil || *last != p {
			switch {
			case jsonOut:
				b, _ := json.Marshal(p)
				fmt.Println(string(b))
			case tty:
				fmt.Printf("\r%s", progressBar(p))
			default:
				fmt.Println(progressBar(p))
			}
			last = &p
		}
		if p.Done {
			if tty && !jsonOut {
				fmt.Println()
			}
			if !jsonOut {
				fmt.Printf("%s is drained: no chunk depends on it; it can be stopped\n", id)
			}
			return nil
		}
		time.Sleep(time.Second)
	}
}

// progressBar draws "[#####.....] 12/40 chunks moved off cs3".
func progressBar(p drainProgress) string {
	const width = 30
	moved := p.Total - p.Remaining
	fill := width
	if p.Total > 0 {
		fill = int(moved * width / p.Total)
	}
	return fmt.Sprintf("[%s%s] %d/%d chunks moved off %s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), moved, p.Total, p.Server)
}

func printChunkservers(w io.Writer, list []*api.ChunkServerState, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDR\tZONE\tSTATE\tCAPACITY\tUSED\tCHUNKS\tLAST HEARTBEAT")
	for _, s := range list {
		in := s.GetInfo()
		zone := in.Zone
		if zone == "" {
			zone = "-"
		}
		state := s.State
		if s.Draining && s.Referenced > 0 {
			state = fmt.Sprintf("draining (%d left)", s.Referenced)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", in.Id, in.Addr, zone, state,
			bytesString(in.Capacity), bytesString(in.Used), s.Referenced, units.Ago(now, in.LastSeenNs))
	}
	tw.Flush()
}
