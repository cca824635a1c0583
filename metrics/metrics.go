// Package metrics is the Prometheus vocabulary every dfs process shares:
// the one registry a process serves at /metrics on its admin listener,
// and the gRPC interceptors that count and time RPCs by method on the
// serving side (masters, chunkservers) and the calling side (the mount,
// dfsctl). Names follow Prometheus practice: a dfs_ prefix and the unit
// in the name (_seconds, _bytes, _total).
package metrics

import (
	"context"
	"errors"
	"path"
	"reflect"
	"strings"
	"time"

	"dfs/api"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// NewRegistry returns the registry of one process, holding the Go
// runtime's and the process's own metrics (go_*, process_*).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// LatencyBuckets are the histogram buckets of RPC and Raft latencies, in
// seconds: from 100 µs (a cached lookup on loopback) to 10 s (an RPC's
// deadline).
var LatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// rpcLabels are the labels of every RPC metric: the gRPC service
// (Master, ChunkServer), the method, and for Mutate the kind of
// mutation (Create, Write, Rename...; empty for other methods).
var rpcLabels = []string{"service", "method", "op"}

// RPCs counts and times RPCs by method and outcome. One RPCs serves one
// side (server or client) of one process; it is a prometheus.Collector
// to register in the process's registry.
type RPCs struct {
	total   *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// NewServerRPCs makes the metrics of the RPCs a server handles:
// dfs_rpc_server_handled_total{service,method,op,code} and
// dfs_rpc_server_handling_seconds{service,method,op}.
func NewServerRPCs() *RPCs {
	return newRPCs("server", "handled", "handling",
		"RPCs this server answered, by method and outcome (code: OK, an errno such as ENOENT or EIO carried in the answer, NotLeader, or a gRPC status code).",
		"Time from an RPC's arrival to its answer, by method.")
}

// NewClientRPCs makes the metrics of the RPCs a client sends:
// dfs_rpc_client_sent_total{service,method,op,code} and
// dfs_rpc_client_seconds{service,method,op}, which include retries'
// individual attempts as separate calls.
func NewClientRPCs() *RPCs {
	return newRPCs("client", "sent", "",
		"RPCs this process sent, by method and outcome (code as for dfs_rpc_server_handled_total; each attempt of a retried call counts).",
		"Time from sending an RPC to its answer, by method, as this process saw it.")
}

func newRPCs(side, counted, timed, countHelp, timeHelp string) *RPCs {
	secs := "dfs_rpc_" + side + "_seconds"
	if timed != "" {
		secs = "dfs_rpc_" + side + "_" + timed + "_seconds"
	}
	r := &RPCs{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dfs_rpc_" + side + "_" + counted + "_total", Help: countHelp,
		}, append(rpcLabels, "code")),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: secs, Help: timeHelp, Buckets: LatencyBuckets,
		}, rpcLabels),
	}
	return r
}

func (r *RPCs) Describe(ch chan<- *prometheus.Desc) {
	r.total.Describe(ch)
	r.seconds.Describe(ch)
}

func (r *RPCs) Collect(ch chan<- prometheus.Metric) {
	r.total.Collect(ch)
	r.seconds.Collect(ch)
}

// observe records one finished call.
func (r *RPCs) observe(fullMethod string, req, resp any, err error, took time.Duration) {
	service, method := SplitMethod(fullMethod)
	op := MutationOp(req)
	r.total.WithLabelValues(service, method, op, Code(resp, err)).Inc()
	r.seconds.WithLabelValues(service, method, op).Observe(took.Seconds())
}

// ServerInterceptor is a grpc.UnaryServerInterceptor that records every
// call the server answers.
func (r *RPCs) ServerInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	r.observe(info.FullMethod, req, resp, err, time.Since(start))
	return resp, err
}

// ClientInterceptor is a grpc.UnaryClientInterceptor that records every
// call sent.
func (r *RPCs) ClientInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	r.observe(method, req, reply, err, time.Since(start))
	return err
}

// SplitMethod splits a gRPC method name, /dfs.Master/Mutate, into its
// service (Master) and method (Mutate).
func SplitMethod(full string) (service, method string) {
	dir, method := path.Split(full)
	service = strings.Trim(dir, "/")
	if i := strings.LastIndexByte(service, '.'); i >= 0 {
		service = service[i+1:]
	}
	return service, method
}

// MutationOp names the kind of mutation a MutateRequest carries (Create,
// Write, Rename...); "" for any other request.
func MutationOp(req any) string {
	m, ok := req.(*api.MutateRequest)
	if !ok || m.GetOp().GetOp() == nil {
		return ""
	}
	return strings.TrimPrefix(reflect.TypeOf(m.Op.Op).Elem().Name(), "Op_")
}

// errnoAnswer is an answer that carries an errno, as most dfs answers do.
type errnoAnswer interface{ GetErrno() api.Errno }

// Code is the outcome of one call: "OK"; the errno an answer carries
// (ENOENT, EIO...); "NotLeader" for a master that is not the leader; or
// the gRPC status code of a failed call (Unavailable, DeadlineExceeded...).
func Code(resp any, err error) string {
	if err != nil {
		if _, ok := api.LeaderHint(err); ok {
			return "NotLeader"
		}
		if errors.Is(err, context.Canceled) {
			return "Canceled"
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return "DeadlineExceeded"
		}
		return status.Code(err).String()
	}
	if a, ok := resp.(errnoAnswer); ok { // a nil answer's GetErrno is OK
		if e := a.GetErrno(); e != api.Errno_OK {
			return e.String()
		}
	}
	return "OK"
}
