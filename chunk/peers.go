package chunk

import (
	"crypto/tls"
	"fmt"
	"sync"

	"google.golang.org/grpc"

	"dfs/api"
)

// peerPool keeps one client connection per address (replicas and masters),
// reused by every call.
type peerPool struct {
	tls   *tls.Config // nil: plaintext
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerPool(conf *tls.Config) *peerPool {
	return &peerPool{tls: conf, conns: make(map[string]*grpc.ClientConn)}
}

func (p *peerPool) conn(addr string) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, fmt.Errorf("no address")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return nil, fmt.Errorf("%s: server closing", addr)
	}
	if cc := p.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := api.DialData(addr, p.tls)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	p.conns[addr] = cc
	return cc, nil
}

func (p *peerPool) client(addr string) (api.ChunkServerClient, error) {
	cc, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	return api.NewChunkServerClient(cc), nil
}

func (p *peerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cc := range p.conns {
		cc.Close()
	}
	p.conns = nil
}
