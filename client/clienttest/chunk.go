package clienttest

import (
	"context"

	"dfs/api"
)

type chunkData struct {
	version uint64
	primary string // this server's id while it holds the lease
	data    []byte
	synced  bool
}

type chunkServer struct {
	api.UnimplementedChunkServerServer
	c    *Cluster
	id   string
	addr string

	chunks map[uint64]*chunkData // guarded by c.mu
}

func (s *chunkServer) Write(ctx context.Context, req *api.WriteRequest) (*api.WriteResponse, error) {
	s.c.mu.Lock()
	s.c.calls["Write"]++
	d := s.chunks[req.Id]
	switch {
	case d == nil || d.version != req.Version:
		s.c.mu.Unlock()
		return &api.WriteResponse{Errno: api.Errno_ESTALE}, nil
	case !req.Forwarded && d.primary != s.id:
		s.c.mu.Unlock()
		return &api.WriteResponse{Errno: api.Errno_EAGAIN, Message: "not primary"}, nil
	}
	if req.ZeroLength > 0 {
		end := req.Offset + req.ZeroLength
		if uint64(len(d.data)) > req.Offset {
			if end >= uint64(len(d.data)) {
				d.data = d.data[:req.Offset]
			} else {
				clear(d.data[req.Offset:end])
			}
		}
	} else {
		end := req.Offset + uint64(len(req.Data))
		if uint64(len(d.data)) < end {
			d.data = append(d.data, make([]byte, end-uint64(len(d.data)))...)
		}
		copy(d.data[req.Offset:], req.Data)
	}
	d.synced = false
	var failed []string
	for _, f := range req.Forward {
		fs := s.c.servers[f.Server]
		fd := fs.chunks[req.Id]
		if fd == nil || fd.version != req.Version {
			failed = append(failed, f.Server)
			continue
		}
		fd.data = append(fd.data[:0:0], d.data...)
		fd.synced = false
	}
	s.c.mu.Unlock()
	if len(failed) > 0 {
		return &api.WriteResponse{Errno: api.Errno_EIO, Failed: failed}, nil
	}
	return &api.WriteResponse{}, nil
}

func (s *chunkServer) Read(ctx context.Context, req *api.ReadRequest) (*api.ReadResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.calls["Read"]++
	d := s.chunks[req.Id]
	if d == nil || d.version < req.Version {
		return &api.ReadResponse{Errno: api.Errno_ESTALE}, nil
	}
	if req.Offset >= uint64(len(d.data)) {
		return &api.ReadResponse{}, nil
	}
	end := min(uint64(len(d.data)), req.Offset+req.Length)
	return &api.ReadResponse{Data: append([]byte(nil), d.data[req.Offset:end]...)}, nil
}

func (s *chunkServer) Sync(ctx context.Context, req *api.SyncRequest) (*api.SyncResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.calls["Sync"]++
	if d := s.chunks[req.Id]; d != nil {
		d.synced = true
	}
	for _, f := range req.Forward {
		if d := s.c.servers[f.Server].chunks[req.Id]; d != nil {
			d.synced = true
		}
	}
	return &api.SyncResponse{}, nil
}
