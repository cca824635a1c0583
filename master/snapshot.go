package master

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"

	"dfs/api"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// Snapshot format: the magic, a SnapshotHeader, then header.inodes
// SnapshotInode and header.sessions SnapshotSession records, each
// length-delimited. Raft's snapshot store adds its own checksum.
const (
	snapshotMagic  = "DFSSNAP\n"
	snapshotFormat = 1
)

type fsmSnapshot struct{ data []byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// snapshot encodes the state; the caller holds f.mu.
func (f *FSM) snapshot() *fsmSnapshot {
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	h := &api.SnapshotHeader{
		Format: snapshotFormat, NextIno: f.nextIno, NextChunk: f.nextChunk, NextSession: f.nextSession,
		Inodes: uint64(len(f.inodes)), Sessions: uint64(len(f.sessions)),
	}
	for _, s := range f.servers {
		h.Servers = append(h.Servers, &api.RegisterServerCmd{Id: s.id, Addr: s.addr, Zone: s.zone,
			Draining: s.draining, DrainTotal: s.drainTotal})
	}
	sort.Slice(h.Servers, func(i, j int) bool { return h.Servers[i].Id < h.Servers[j].Id })
	for id, addr := range f.masters {
		h.Masters = append(h.Masters, &api.RegisterMasterOp{Id: id, Addr: addr})
	}
	sort.Slice(h.Masters, func(i, j int) bool { return h.Masters[i].Id < h.Masters[j].Id })
	f.snapshotLocks(h)
	h.ChunkKeys = f.keys
	write := func(m proto.Message) {
		if _, err := protodelim.MarshalTo(&buf, m); err != nil {
			panic(err) // writing to a bytes.Buffer cannot fail
		}
	}
	write(h)
	for _, n := range f.inodes {
		rec := &api.SnapshotInode{Attr: n.attr.proto(), Xattrs: n.xattrs, Opens: n.opens}
		if n.dir != nil {
			rec.Parent, rec.NextCookie = n.parent, n.nextCookie
			n.order.Ascend(func(d *dirent) bool {
				rec.Entries = append(rec.Entries, &api.SnapshotDirEntry{Name: d.name, Ino: d.ino, Cookie: d.cookie})
				return true
			})
		}
		for _, ch := range n.chunks {
			rec.Chunks = append(rec.Chunks, &api.SnapshotChunk{
				Index: ch.index, Id: ch.id, Version: ch.version, Replicas: ch.replicas,
				Primary: ch.primary, LeaseExpiryNs: ch.leaseExpiry,
			})
		}
		write(rec)
	}
	for _, s := range f.sessions {
		rec := &api.SnapshotSession{Id: s.id, Client: s.client, TtlNs: s.ttl, Acked: s.acked, Opens: s.opens}
		for seq, r := range s.responses {
			rec.Responses = append(rec.Responses, &api.SnapshotResponse{Seq: seq, Response: r})
		}
		write(rec)
	}
	return &fsmSnapshot{data: buf.Bytes()}
}

// readSnapshot decodes a snapshot into a fresh FSM, checking that it is
// whole and self-consistent; a bad snapshot is an error naming the
// problem, never a partially restored state.
func readSnapshot(r io.Reader) (*FSM, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, fmt.Errorf("snapshot: not a dfs master snapshot (bad magic)")
	}
	opts := protodelim.UnmarshalOptions{MaxSize: 1 << 30}
	var h api.SnapshotHeader
	if err := opts.UnmarshalFrom(br, &h); err != nil {
		return nil, fmt.Errorf("snapshot: header: %w", err)
	}
	if h.Format != snapshotFormat {
		return nil, fmt.Errorf("snapshot: format %d, this master reads %d", h.Format, snapshotFormat)
	}
	f := &FSM{}
	f.reset()
	f.nextIno, f.nextChunk, f.nextSession = h.NextIno, h.NextChunk, h.NextSession
	for _, s := range h.Servers {
		f.servers[s.Id] = &serverInfo{id: s.Id, addr: s.Addr, zone: s.Zone, draining: s.Draining, drainTotal: s.DrainTotal}
	}
	for _, m := range h.Masters {
		f.masters[m.Id] = m.Addr
	}
	locks, err := restoreLocks(&h)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	f.locks = locks
	if err := checkChunkKeys(h.ChunkKeys); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	f.keys = h.ChunkKeys
	for i := uint64(0); i < h.Inodes; i++ {
		var rec api.SnapshotInode
		if err := opts.UnmarshalFrom(br, &rec); err != nil {
			return nil, fmt.Errorf("snapshot: inode record %d of %d: %w", i+1, h.Inodes, err)
		}
		if rec.Attr == nil || rec.Attr.Ino == 0 || f.inodes[rec.Attr.Ino] != nil {
			return nil, fmt.Errorf("snapshot: inode record %d: missing or duplicate inode number", i+1)
		}
		a := attrsOf(rec.Attr)
		if a.Layout != nil {
			a.Layout = f.internLayout(a.Layout)
		}
		n := &inode{attr: a, xattrs: rec.Xattrs, opens: rec.Opens}
		if isDir(&a) {
			n = newDir(a, rec.Parent)
			n.xattrs, n.opens = rec.Xattrs, rec.Opens
			n.nextCookie = rec.NextCookie
			for _, e := range rec.Entries {
				d := &dirent{name: e.Name, ino: e.Ino, cookie: e.Cookie}
				n.entries[e.Name] = d
				n.order.ReplaceOrInsert(d)
			}
		}
		if isReg(&a) && len(rec.Chunks) > 0 {
			n.chunks = make(map[uint64]*chunk, len(rec.Chunks))
		}
		if isReg(&a) {
			f.logical += a.Size
			for _, c := range rec.Chunks {
				ch := &chunk{id: c.Id, version: c.Version, index: c.Index, ino: a.Ino,
					replicas: c.Replicas, primary: c.Primary, leaseExpiry: c.LeaseExpiryNs}
				n.chunks[c.Index] = ch
				f.chunks[c.Id] = ch
			}
		}
		f.inodes[a.Ino] = n
		if isOrphan(n) {
			f.orphans[a.Ino] = true
		}
	}
	for i := uint64(0); i < h.Sessions; i++ {
		var rec api.SnapshotSession
		if err := opts.UnmarshalFrom(br, &rec); err != nil {
			return nil, fmt.Errorf("snapshot: session record %d of %d: %w", i+1, h.Sessions, err)
		}
		s := &session{id: rec.Id, client: rec.Client, ttl: rec.TtlNs, acked: rec.Acked,
			responses: map[uint64]*api.MutateResponse{}, opens: rec.Opens}
		if s.opens == nil {
			s.opens = map[uint64]uint32{}
		}
		for _, r := range rec.Responses {
			s.responses[r.Seq] = r.Response
		}
		f.sessions[s.id] = s
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("snapshot: trailing data after %d inodes and %d sessions", h.Inodes, h.Sessions)
	}
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return f, nil
}

// check verifies the namespace's referential integrity.
func (f *FSM) check() error {
	root := f.inodes[api.RootIno]
	if root == nil || !isDir(&root.attr) {
		return fmt.Errorf("no root directory")
	}
	for ino, n := range f.inodes {
		if isDir(&n.attr) != (n.dir != nil) {
			return fmt.Errorf("inode %d: mode %#o does not match its directory state", ino, n.attr.Mode)
		}
		for name, d := range n.dirEntries() {
			if f.inodes[d.ino] == nil {
				return fmt.Errorf("directory %d entry %q points at missing inode %d", ino, name, d.ino)
			}
			if d.cookie >= n.nextCookie {
				return fmt.Errorf("directory %d entry %q has cookie %d beyond next %d", ino, name, d.cookie, n.nextCookie)
			}
		}
		if ino >= f.nextIno {
			return fmt.Errorf("inode %d beyond next inode %d", ino, f.nextIno)
		}
		for _, name := range []string{ACLAccessXattr, ACLDefaultXattr} {
			if v, ok := n.xattrs[name]; ok {
				if _, err := parseACL(v); err != nil {
					return fmt.Errorf("inode %d: %s: %w", ino, name, err)
				}
			}
		}
		if _, ok := n.xattrs[ACLDefaultXattr]; ok && !isDir(&n.attr) {
			return fmt.Errorf("inode %d: a default ACL on a non-directory", ino)
		}
		if n.attr.Acls != n.aclBits() {
			return fmt.Errorf("inode %d: ACL bits %#x do not match its ACLs", ino, n.attr.Acls)
		}
	}
	for id := range f.chunks {
		if id >= f.nextChunk {
			return fmt.Errorf("chunk %d beyond next chunk %d", id, f.nextChunk)
		}
	}
	return nil
}
