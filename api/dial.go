package api

import (
	"context"
	"crypto/tls"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Credentials is the dial option that secures a client connection with
// conf (package mtls makes it), or leaves it plaintext when conf is nil.
// gRPC verifies the server's certificate against the host of the dialled
// address.
func Credentials(conf *tls.Config) grpc.DialOption {
	if conf == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(conf))
}

// ServerCredentials is Credentials' counterpart for a gRPC server: with
// conf, only TLS connections that pass conf's checks are served; nil
// leaves the server plaintext.
func ServerCredentials(conf *tls.Config) grpc.ServerOption {
	if conf == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.Creds(credentials.NewTLS(conf))
}

// UnackedTimeout is how long data sent on a dfs connection may stay
// unacknowledged before the kernel drops the connection (TCP_USER_TIMEOUT).
// A peer that vanished without a reset (a crashed host, a partition) then
// fails calls within seconds, and callers retry elsewhere instead of waiting
// out their whole deadline. Idle waits, such as a long poll whose request
// was acknowledged, are not affected.
const UnackedTimeout = 2 * time.Second

// WithUnackedTimeout is the dial option that applies UnackedTimeout; every
// dfs client connection (mounts, chunkservers, masters) uses it.
func WithUnackedTimeout() grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(UnackedTimeout/time.Millisecond))
			})
			if err != nil {
				return err
			}
			return serr
		}}
		return d.DialContext(ctx, "tcp", addr)
	})
}

// Flow-control windows and socket buffers sized for bulk data: a whole
// MaxWrite message flows without stalling for window updates, and the
// transport reads and writes in large pieces. gRPC's defaults (64 KiB
// windows grown by probing, 32 KiB buffers) cost round trips and
// syscalls on every large message.
const (
	streamWindow = MaxWrite
	connWindow   = 4 * MaxWrite
	sockBuffer   = 1 << 20
)

// BulkDialOptions are the dial options of connections that carry file
// data (mounts and chunkservers to chunkservers).
func BulkDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithReadBufferSize(sockBuffer),
		grpc.WithWriteBufferSize(sockBuffer),
	}
}

// BulkServerOptions are BulkDialOptions' counterpart for servers.
func BulkServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.ReadBufferSize(sockBuffer),
		grpc.WriteBufferSize(sockBuffer),
	}
}

// DialData connects to a dfs server for calls that carry file data:
// unacknowledged-data timeout, bulk windows and the largest messages,
// secured with conf (nil: plaintext).
func DialData(addr string, conf *tls.Config, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{
		Credentials(conf),
		WithUnackedTimeout(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessage), grpc.MaxCallSendMsgSize(MaxMessage)),
	}, BulkDialOptions()...)
	return grpc.NewClient(addr, append(opts, extra...)...)
}
