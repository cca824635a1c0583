package api

import (
	"context"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
)

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
