package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"dfs/api"
	"dfs/master"
)

// runSnapshot saves a consistent copy of the master state to a file
// (`snapshot save FILE`), for dfsmaster -restore.
func runSnapshot(mastersFlag string, jsonOut bool, args []string) error {
	if len(args) == 0 || args[0] != "save" {
		return usageError("snapshot save FILE [-json]: write a backup of the master state to FILE")
	}
	fl := flag.NewFlagSet("snapshot save", flag.ContinueOnError)
	fl.BoolVar(&jsonOut, "json", jsonOut, "print machine-readable JSON")
	pos, err := parseArgs(fl, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("snapshot save FILE: one file to write")
	}
	path := pos[0]
	addrs, err := masterAddrs(mastersFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var data []byte
	var applied uint64
	err = onLeader(ctx, addrs, func(ctx context.Context, m api.MasterClient) error {
		var err error
		data, applied, err = fetchSnapshot(ctx, m)
		return err
	})
	if err != nil {
		return err
	}
	if err := master.WriteBackup(path, applied, data); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	sum := sha256.Sum256(data)
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"file": path, "applied_index": applied, "bytes": len(data), "sha256": hex.EncodeToString(sum[:])})
	}
	fmt.Printf("saved the master state at Raft index %d to %s (%s, sha256 %x)\n", applied, path, bytesString(uint64(len(data))), sum)
	return nil
}

// fetchSnapshot reads the leader's snapshot stream and checks it whole.
func fetchSnapshot(ctx context.Context, m api.MasterClient) ([]byte, uint64, error) {
	stream, err := m.SaveSnapshot(ctx, &api.SaveSnapshotRequest{})
	if err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	var applied, size uint64
	var sum []byte
	for first := true; ; first = false {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if first {
			applied, size = p.AppliedIndex, p.Size
		}
		buf.Write(p.Data)
		if p.Sha256 != nil {
			sum = p.Sha256
		}
	}
	got := sha256.Sum256(buf.Bytes())
	if uint64(buf.Len()) != size || !bytes.Equal(got[:], sum) {
		return nil, 0, fmt.Errorf("snapshot stream damaged: %d of %d bytes, checksum %x, leader sent %x", buf.Len(), size, got, sum)
	}
	return buf.Bytes(), applied, nil
}
