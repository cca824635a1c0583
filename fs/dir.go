package fs

import (
	"context"
	"sync"
	"syscall"

	"dfs/api"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Directory offsets as the kernel sees them: 1 is after ".", 2 after
// "..", and cookie+2 after the entry with that master cookie. Master
// cookies are stable, so seekdir/telldir work across concurrent changes.
const (
	offDot    = 1
	offDotDot = 2
)

// dirHandle is one open directory stream. It pages through the master's
// listing by cookie and keeps the attributes that came with each page so
// READDIRPLUS needs no extra lookups.
type dirHandle struct {
	n *node

	mu     sync.Mutex
	pos    uint64 // kernel offset of the last entry returned
	ents   []*api.DirEntry
	attrs  []*api.Attr
	eof    bool
	start  uint64        // attrSeq when the page in ents was asked for
	last   *api.DirEntry // the entry Readdirent returned last
	lastAt *api.Attr
}

var _ = (gofs.FileReaddirenter)((*dirHandle)(nil))

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	ctx = reqCtx(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last, d.lastAt = nil, nil
	switch d.pos {
	case 0:
		d.pos = offDot
		return &fuse.DirEntry{Name: ".", Ino: d.n.ino(), Mode: syscall.S_IFDIR, Off: offDot}, 0
	case offDot:
		d.pos = offDotDot
		ino := uint64(api.RootIno)
		if _, p := d.n.Parent(); p != nil {
			ino = p.StableAttr().Ino
		}
		return &fuse.DirEntry{Name: "..", Ino: ino, Mode: syscall.S_IFDIR, Off: offDotDot}, 0
	}
	if len(d.ents) == 0 {
		if d.eof {
			return nil, 0
		}
		d.start = attrSeq.Load()
		resp, err := d.n.fsys.client.ReadDir(ctx, d.n.ino(), d.pos-offDotDot, 0, true)
		if err != nil {
			return nil, d.n.fsys.errno("readdir", err)
		}
		if d.pos == offDotDot {
			d.n.accessed()
		}
		d.ents, d.attrs, d.eof = resp.Entries, resp.Attrs, resp.Eof || len(resp.Entries) == 0
		if len(d.attrs) != len(d.ents) {
			d.attrs = nil
		}
		if len(d.ents) == 0 {
			return nil, 0
		}
	}
	e := d.ents[0]
	d.ents = d.ents[1:]
	if d.attrs != nil {
		d.lastAt = d.attrs[0]
		d.attrs = d.attrs[1:]
	}
	d.last = e
	d.pos = e.Cookie + offDotDot
	return &fuse.DirEntry{Name: e.Name, Ino: e.Ino, Mode: e.Mode & syscall.S_IFMT, Off: d.pos}, 0
}

var _ = (gofs.FileSeekdirer)((*dirHandle)(nil))

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	ctx = reqCtx(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pos, d.ents, d.attrs, d.eof, d.last, d.lastAt = off, nil, nil, false, nil, nil
	return 0
}

var _ = (gofs.FileLookuper)((*dirHandle)(nil))

// Lookup answers READDIRPLUS from the attributes that came with the
// listing.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = reqCtx(ctx)
	d.mu.Lock()
	last, a, start := d.last, d.lastAt, d.start
	d.mu.Unlock()
	if last == nil || last.Name != name || a == nil {
		return d.n.Lookup(ctx, name, out)
	}
	return d.n.child(ctx, a, start, out), 0
}

var _ = (gofs.FileFsyncdirer)((*dirHandle)(nil))

// Fsyncdir has nothing to do: namespace changes are committed when their
// call returns.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return 0 }

var _ = (gofs.FileReleasedirer)((*dirHandle)(nil))

func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {}
