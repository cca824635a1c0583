// Package sdnotify tells a service manager about a daemon's state with the
// sd_notify protocol: one datagram of NAME=VALUE lines to the unix socket
// named by $NOTIFY_SOCKET. Daemons send Ready once they serve and Stopping
// when asked to stop, so systemd units of Type=notify order and supervise
// them. Without $NOTIFY_SOCKET every call does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Ready says the daemon is serving (READY=1) and what it is doing.
func Ready(status string) error { return Send("READY=1\nSTATUS=" + status) }

// Stopping says the daemon has begun to shut down (STOPPING=1).
func Stopping() error { return Send("STOPPING=1") }

// Send writes state, newline-separated NAME=VALUE assignments, to the
// socket in $NOTIFY_SOCKET. A name starting with @ is an abstract socket,
// which package net maps to the leading NUL byte the kernel expects. It
// returns nil when $NOTIFY_SOCKET is unset: nobody is listening.
func Send(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", name, err)
	}
	return nil
}
