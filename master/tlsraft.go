package master

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStream is a Raft stream layer whose connections are mutual TLS:
// masters accept Raft traffic only from holders of the cluster CA's
// certificates, and verify the master they dial by its Raft address.
type tlsStream struct {
	net.Listener // a tls.Listener
	advertise    net.Addr
	client       *tls.Config
}

var _ raft.StreamLayer = (*tlsStream)(nil)

// newTLSStream listens on addr for TLS connections checked by server and
// dials others with client.
func newTLSStream(addr string, advertise net.Addr, server, client *tls.Config) (*tlsStream, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &tlsStream{Listener: tls.NewListener(ln, server), advertise: advertise, client: client}, nil
}

// Addr is the address other masters reach this one at.
func (t *tlsStream) Addr() net.Addr { return t.advertise }

// Dial connects to the master at address and completes the handshake, so
// that a peer that is not one of ours fails the dial, not a later call.
func (t *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conf := t.client.Clone()
	if host, _, err := net.SplitHostPort(string(address)); err == nil {
		conf.ServerName = host
	}
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(address), conf)
}
