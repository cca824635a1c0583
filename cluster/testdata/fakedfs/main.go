// Command fakedfs stands in for dfsmaster, dfschunk and dfsmount (chosen
// by the name it is run under) so that the cluster package's own tests
// exercise process management without the real binaries: m1 is always the
// leader and lists the chunkservers that heartbeat to it; the mount is an
// empty FUSE directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"dfs/api"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "dfsmaster":
		master()
	case "dfschunk":
		chunk()
	case "dfsmount":
		mount()
	default:
		fmt.Fprintln(os.Stderr, "fakedfs: unknown name", os.Args[0])
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fakedfs:", err)
	os.Exit(1)
}

// lockData refuses a second process on the same data directory.
func lockData(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		fail(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fail(fmt.Errorf("-data %s is in use by another process", dir))
	}
}

func sigterm() chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	return ch
}

type masterServer struct {
	api.UnimplementedMasterServer
	id, addr string
	mu       sync.Mutex
	servers  map[string]*api.ChunkServerInfo
}

func (m *masterServer) Status(ctx context.Context, _ *api.StatusRequest) (*api.StatusResponse, error) {
	if m.id != "m1" {
		return nil, api.NotLeaderError("", nil)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &api.StatusResponse{Leader: m.addr}
	for _, s := range m.servers {
		st.Servers = append(st.Servers, &api.ChunkServerInfo{Addr: s.Addr, Alive: time.Since(time.Unix(0, s.LastSeenNs)) < time.Second, LastSeenNs: s.LastSeenNs})
	}
	return st, nil
}

func (m *masterServer) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.servers[req.Addr] = &api.ChunkServerInfo{Addr: req.Addr, LastSeenNs: time.Now().UnixNano()}
	return &api.HeartbeatResponse{}, nil
}

func master() {
	id := flag.String("id", "", "")
	data := flag.String("data", "", "")
	listen := flag.String("listen", "", "")
	raft := flag.String("raft", "", "")
	flag.String("cluster", "", "")
	failNow := flag.Bool("fail", false, "exit at once with an error")
	flag.Parse()
	if *failNow {
		fail(fmt.Errorf("told to fail"))
	}
	lockData(*data)
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err)
	}
	rl, err := net.Listen("tcp", *raft)
	if err != nil {
		fail(err)
	}
	defer rl.Close()
	s := grpc.NewServer()
	api.RegisterMasterServer(s, &masterServer{id: *id, addr: *listen, servers: map[string]*api.ChunkServerInfo{}})
	go s.Serve(l)
	<-sigterm()
	s.Stop()
}

func chunk() {
	data := flag.String("data", "", "")
	listen := flag.String("listen", "", "")
	masters := flag.String("masters", "", "")
	flag.String("zone", "", "")
	flag.Uint64("capacity", 0, "")
	flag.Parse()
	lockData(*data)
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err)
	}
	defer l.Close()
	var clients []api.MasterClient
	for _, a := range strings.Split(*masters, ",") {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fail(err)
		}
		clients = append(clients, api.NewMasterClient(conn))
	}
	term := sigterm()
	for {
		for _, c := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.Heartbeat(ctx, &api.HeartbeatRequest{Addr: *listen})
			cancel()
		}
		select {
		case <-term:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func mount() {
	flag.String("o", "", "")
	flag.String("masters", "", "")
	flag.Parse()
	if flag.NArg() != 1 {
		fail(fmt.Errorf("want one mount point"))
	}
	srv, err := gofs.Mount(flag.Arg(0), &gofs.Inode{}, &gofs.Options{})
	if err != nil {
		fail(err)
	}
	go func() {
		<-sigterm()
		srv.Unmount()
	}()
	srv.Wait()
}
