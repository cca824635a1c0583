// Command nsbench measures the master's state machine at scale, in
// process: it applies N file creates (in directories of 10,000, batched as
// the leader batches them), then reports heap bytes per file, the snapshot
// size, and how long a restarting master takes to restore it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"dfs/api"
	"dfs/master"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

func main() {
	n := flag.Int("n", 1_000_000, "files to create")
	memProfile := flag.String("memprofile", "", "write a heap profile of the namespace to this file")
	flag.Parse()
	f := master.NewFSM()
	var index uint64
	apply := func(cmds []*api.Command) []*api.MutateResponse {
		data, err := proto.Marshal(&api.Batch{Commands: cmds})
		if err != nil {
			panic(err)
		}
		index++
		return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).([]*api.MutateResponse)
	}
	now := time.Now().UnixNano()
	before := heap()
	start := time.Now()
	const perDir, batch = 10_000, 256
	var dir uint64
	var cmds []*api.Command
	for i := 0; i < *n; i++ {
		if i%perDir == 0 {
			r := apply([]*api.Command{{NowNs: now, Op: &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{
				Parent: api.RootIno, Name: fmt.Sprintf("d%d", i/perDir), Mode: 0o755}}}}})
			dir = r[0].Attr.Ino
		}
		cmds = append(cmds, &api.Command{NowNs: now, Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{
			Parent: dir, Name: fmt.Sprintf("file-%08d", i), Mode: 0o644, Exclusive: true}}}})
		if len(cmds) == batch || i == *n-1 {
			for _, r := range apply(cmds) {
				if r.Errno != api.Errno_OK {
					fmt.Fprintf(os.Stderr, "nsbench: create: %v\n", r.Errno)
					os.Exit(1)
				}
			}
			cmds = cmds[:0]
		}
	}
	applyTime := time.Since(start)
	after := heap()
	if *memProfile != "" {
		if err := writeHeapProfile(*memProfile); err != nil {
			fmt.Fprintf(os.Stderr, "nsbench: -memprofile: %v\n", err)
			os.Exit(1)
		}
	}

	start = time.Now()
	snap, err := f.Snapshot()
	if err != nil {
		panic(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		panic(err)
	}
	snapTime := time.Since(start)

	g := master.NewFSM()
	start = time.Now()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		panic(err)
	}
	restoreTime := time.Since(start)
	runtime.KeepAlive(f)

	fmt.Printf("nsbench files=%d apply %.0f creates/s (in-process, batched %d)\n", *n, float64(*n)/applyTime.Seconds(), batch)
	fmt.Printf("nsbench heap %.0f bytes/file (%.1f MiB for %d files)\n", float64(after-before)/float64(*n), float64(after-before)/(1<<20), *n)
	fmt.Printf("nsbench snapshot %.1f MiB (%.0f bytes/file), taken in %v\n", float64(sink.Len())/(1<<20), float64(sink.Len())/float64(*n), snapTime.Round(time.Millisecond))
	fmt.Printf("nsbench restore (master restart from snapshot) %v\n", restoreTime.Round(time.Millisecond))
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*memSink)(nil)
