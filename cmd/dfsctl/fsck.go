package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"dfs/api"
)

// exitAtRisk is fsck's status when some file's data is at risk, as
// fsck(8)'s "errors left uncorrected".
const exitAtRisk = 4

func runFsck(mastersFlag string, jsonOut bool, args []string) error {
	fl := flag.NewFlagSet("fsck", flag.ContinueOnError)
	fl.BoolVar(&jsonOut, "json", jsonOut, "print machine-readable JSON")
	limit := fl.Uint("limit", 1000, "most problem chunks listed")
	if err := fl.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fl.NArg() > 0 {
		return usageError("fsck takes no arguments")
	}
	addrs, err := masterAddrs(mastersFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var resp *api.FsckResponse
	err = onLeader(ctx, addrs, func(ctx context.Context, m api.MasterClient) error {
		var err error
		resp, err = m.Fsck(ctx, &api.FsckRequest{Limit: uint32(*limit)})
		return err
	})
	if err != nil {
		return err
	}
	if jsonOut {
		if err := printJSON(resp); err != nil {
			return err
		}
	} else {
		for _, p := range resp.Problems {
			path := p.Path
			if path == "" {
				path = fmt.Sprintf("(inode %d, unlinked)", p.Ino)
			}
			fmt.Printf("%s: chunk %d (id %d, version %d): %s, %d of %d copies good; %s\n",
				path, p.Index, p.ChunkId, p.Version, p.State, p.Live, p.Want, strings.Join(p.Detail, "; "))
		}
		if int(resp.ProblemCount) > len(resp.Problems) {
			fmt.Printf("... and %d more\n", int(resp.ProblemCount)-len(resp.Problems))
		}
		fmt.Printf("%d files, %d chunks: %d healthy, %d at risk\n", resp.Files, resp.Chunks, resp.Healthy, resp.ProblemCount)
		if !resp.Complete {
			fmt.Println("warning: not every live chunkserver sent a fresh chunk report; copies on them were taken as good")
		}
	}
	if resp.ProblemCount > 0 {
		return exitError(exitAtRisk)
	}
	return nil
}
