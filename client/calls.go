package client

import (
	"context"
	"expvar"
	"path"
	"reflect"
	"strings"
	"time"

	"dfs/api"

	"google.golang.org/grpc"
)

// calls counts the RPCs this process sent, by method (mutations by op),
// published through expvar (/debug/vars where a program serves it), so a
// benchmark can show the round trips each file operation costs.
var (
	calls     = expvar.NewMap("dfs_client_calls")
	callTimes = expvar.NewMap("dfs_client_call_ns") // summed latency
)

func countCalls(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	name := path.Base(method)
	if m, ok := req.(*api.MutateRequest); ok && m.GetOp().GetOp() != nil {
		name += "." + strings.TrimPrefix(reflect.TypeOf(m.Op.Op).Elem().Name(), "Op_")
	}
	calls.Add(name, 1)
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	callTimes.Add(name, int64(time.Since(start)))
	return err
}
