package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"dfs/api"
	"dfs/metrics/metricstest"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCode(t *testing.T) {
	for _, c := range []struct {
		resp any
		err  error
		want string
	}{
		{&api.MutateResponse{}, nil, "OK"},
		{&api.MutateResponse{Errno: api.Errno_ENOENT}, nil, "ENOENT"},
		{&api.ReadResponse{Errno: api.Errno_EIO}, nil, "EIO"},
		{(*api.WriteResponse)(nil), nil, "OK"},
		{&api.StatusResponse{}, nil, "OK"}, // no errno field
		{nil, api.NotLeaderError("", nil), "NotLeader"},
		{nil, status.Error(codes.Unavailable, "connection refused"), "Unavailable"},
		{nil, status.Error(codes.DeadlineExceeded, "slow"), "DeadlineExceeded"},
		{nil, fmt.Errorf("call: %w", context.DeadlineExceeded), "DeadlineExceeded"},
		{nil, context.Canceled, "Canceled"},
		{nil, errors.New("odd"), "Unknown"},
	} {
		if got := Code(c.resp, c.err); got != c.want {
			t.Errorf("Code(%T, %v) = %s, want %s", c.resp, c.err, got, c.want)
		}
	}
}

func TestSplitMethodAndOp(t *testing.T) {
	if s, m := SplitMethod("/dfs.Master/Mutate"); s != "Master" || m != "Mutate" {
		t.Errorf("SplitMethod: %q %q", s, m)
	}
	if s, m := SplitMethod("/ChunkServer/Read"); s != "ChunkServer" || m != "Read" {
		t.Errorf("SplitMethod without package: %q %q", s, m)
	}
	mkdir := &api.MutateRequest{Op: &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{}}}}
	for req, want := range map[any]string{mkdir: "Mkdir", &api.MutateRequest{}: "", &api.ReadRequest{}: ""} {
		if got := MutationOp(req); got != want {
			t.Errorf("MutationOp(%v) = %q, want %q", req, got, want)
		}
	}
}

// TestInterceptors runs calls through both interceptors and reads the
// counts and timings back from a registry.
func TestInterceptors(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, cli := NewServerRPCs(), NewClientRPCs()
	reg.MustRegister(srv, cli)
	mkdir := &api.MutateRequest{Op: &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{}}}}
	info := &grpc.UnaryServerInfo{FullMethod: "/dfs.Master/Mutate"}
	answers := []api.Errno{api.Errno_OK, api.Errno_EEXIST, api.Errno_OK}
	for _, e := range answers {
		srv.ServerInterceptor(context.Background(), mkdir, info, func(context.Context, any) (any, error) {
			return &api.MutateResponse{Errno: e}, nil
		})
	}
	refused := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		return api.NotLeaderError("", nil)
	}
	cli.ClientInterceptor(context.Background(), "/dfs.Master/GetAttr", &api.GetAttrRequest{}, &api.AttrResponse{}, nil, refused)

	f, err := metricstest.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"dfs_rpc_server_handled_total", []string{"service=Master", "method=Mutate", "op=Mkdir", "code=OK"}, 2},
		{"dfs_rpc_server_handled_total", []string{"code=EEXIST"}, 1},
		{"dfs_rpc_server_handling_seconds", []string{"method=Mutate", "op=Mkdir"}, 3},
		{"dfs_rpc_client_sent_total", []string{"method=GetAttr", "code=NotLeader"}, 1},
		{"dfs_rpc_client_seconds", []string{"service=Master", "method=GetAttr"}, 1},
	} {
		if got, _ := f.Sum(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
