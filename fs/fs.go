// Package fs is the dfs FUSE mount: a dynamic go-fuse node tree that turns
// POSIX calls into calls of the dfs client library, with write-back
// buffering and readahead per open file and kernel cache control for
// close-to-open consistency. Mount serves a directory in-process;
// cmd/dfsmount wraps it in a command.
package fs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"dfs/api"
	"dfs/client"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Options configure a mount. The zero value disables kernel caching of
// attributes and entries; DefaultOptions gives the usual settings.
type Options struct {
	// AttrTimeout and EntryTimeout bound how long the kernel may trust
	// attributes and names (and absent names) it has seen: changes made
	// by other mounts become visible within them.
	AttrTimeout  time.Duration
	EntryTimeout time.Duration
	// AllowOther lets users other than the mounter use the mount. A
	// mount made by root always allows them, as a local disk or NFS
	// does: the kernel checks every access against the mode bits and
	// ACLs (default_permissions), and the master checks every call again
	// against the caller the mount names, so this exposes nothing a
	// local disk would not.
	AllowOther bool
	// ReadOnly mounts read-only.
	ReadOnly bool
	// Debug logs every FUSE request.
	Debug bool
	// NoAtime leaves access times alone on reads (noatime); by default
	// reads update them as a relatime mount does.
	NoAtime bool
	// StatfsRaw makes statfs (df) count raw chunkserver bytes, every
	// replica and parity shard included. By default it counts file data
	// once, as CephFS counts a pool: capacity, used and free space are
	// the raw ones divided by the overhead of the layout of the
	// directory asked about (3 for replicated:3, 1.5 for ec:4+2).
	StatfsRaw bool
	// FsName is shown as the device in /proc/mounts; default "dfs".
	FsName string
	// WriteBuffer is how many dirty bytes an open file buffers before
	// writing them out; default 16 MiB.
	WriteBuffer int
	// Readahead is how far sequential reads fetch ahead; default 16 MiB,
	// negative disables.
	Readahead int
	// Logf receives diagnostics; nil means log.Printf.
	Logf func(format string, args ...any)
}

// DefaultOptions returns the options dfsmount uses without flags.
func DefaultOptions() Options {
	return Options{AttrTimeout: time.Second, EntryTimeout: time.Second}
}

// filesystem is what every node of one mount shares.
type filesystem struct {
	client *client.Client
	opts   Options
	locks  mountLocks
	// open maps the inode number of every file open on this mount to
	// its node, which holds the buffered writes: go-fuse settles which
	// node answers for an inode only after Lookup returns, and Lookup's
	// answer must already count them.
	open sync.Map
	// reqs holds what raw requests carry beyond the node API (acl.go).
	reqs sync.Map
	// acls says the kernel enforces POSIX ACLs (FUSE_POSIX_ACL); without
	// that, storing them would grant or deny the wrong access, so their
	// xattrs answer EOPNOTSUPP, as on a file system mounted noacl.
	acls bool

	// held counts the opens of each inode made with no record in Raft
	// (client.OpenUnrecorded), for the session's keepalives to report.
	heldMu sync.Mutex
	held   map[uint64]int

	lists listings // directories holding a listing (listing.go)
	// atimes: access times this mount set lately, which listings
	// fetched before do not show (listing.go)
	atimes atimeLog
}

func (fsys *filesystem) hold(ino uint64) {
	fsys.heldMu.Lock()
	fsys.held[ino]++
	fsys.heldMu.Unlock()
}

func (fsys *filesystem) unhold(ino uint64) {
	fsys.heldMu.Lock()
	if fsys.held[ino]--; fsys.held[ino] <= 0 {
		delete(fsys.held, ino)
	}
	fsys.heldMu.Unlock()
}

func (fsys *filesystem) heldList() []uint64 {
	fsys.heldMu.Lock()
	defer fsys.heldMu.Unlock()
	out := make([]uint64, 0, len(fsys.held))
	for ino := range fsys.held {
		out = append(out, ino)
	}
	return out
}

// Mount serves the dfs namespace of c at dir until the returned server is
// unmounted (server.Unmount()). It returns once the kernel has the mount.
// The caller keeps ownership of c and closes it after unmounting.
func Mount(ctx context.Context, dir string, c *client.Client, opts Options) (*fuse.Server, error) {
	if opts.WriteBuffer <= 0 {
		opts.WriteBuffer = 8 << 20
	}
	if opts.Readahead == 0 {
		opts.Readahead = 16 << 20
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if opts.FsName == "" {
		opts.FsName = "dfs"
	}
	fsys := &filesystem{client: c, opts: opts, held: map[uint64]int{}}
	c.SetHeld(fsys.heldList)
	root := &node{fsys: fsys}
	attr, err := c.GetAttr(ctx, api.RootIno)
	if err != nil {
		return nil, fmt.Errorf("dfs: root directory: %w", err)
	}
	root.attr = attr

	attrTimeout, entryTimeout := opts.AttrTimeout, opts.EntryTimeout
	mopts := []string{"default_permissions"}
	if opts.ReadOnly {
		mopts = append(mopts, "ro")
	}
	gopts := &gofs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:   opts.AllowOther || os.Geteuid() == 0,
			Options:      mopts,
			FsName:       opts.FsName,
			Name:         "dfs",
			Debug:        opts.Debug,
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			DirectMount:  os.Geteuid() == 0,
			// The kernel enforces POSIX ACLs that the master stores.
			EnableAcl:         true,
			ExtraCapabilities: aclCaps,
		},
		AttrTimeout:     &attrTimeout,
		EntryTimeout:    &entryTimeout,
		NegativeTimeout: &entryTimeout,
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: api.RootIno, Gen: attr.Generation},
	}
	if opts.ReadOnly {
		gopts.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_RDONLY
	}
	if opts.Debug {
		gopts.Logger = log.Default()
	}
	server, err := mountWithLocks(dir, root, gopts, fsys)
	if err != nil {
		return nil, fmt.Errorf("dfs: mount %s: %w", dir, err)
	}
	return server, nil
}

// reqCtx turns a FUSE request context into the context of the calls made
// for it: it carries the caller, so the master attributes new inodes to
// them and checks the call against their uid, gid and groups, and it
// ignores FUSE interrupts. The kernel interrupts a request for any
// signal, and Go programs get SIGURG all the time; every client call has
// a deadline instead, so nothing waits forever.
func reqCtx(ctx context.Context) context.Context {
	if fc, ok := ctx.(*fuse.Context); ok {
		return client.WithCaller(context.WithoutCancel(ctx), callerOf(&fc.Caller))
	}
	return ctx
}

// callerOf is the caller of a FUSE request with its supplementary
// groups, which the request does not carry: they are read from /proc
// (none if the caller is gone) and kept for a second per (pid, uid, gid),
// since reading them costs more than most requests (groupCache). Root
// needs none: it may do anything a group would let it.
func callerOf(fc *fuse.Caller) *api.Caller {
	c := &api.Caller{Uid: fc.Uid, Gid: fc.Gid, Pid: fc.Pid}
	if fc.Uid != 0 {
		c.Groups = groups.of(fc)
	}
	return c
}

// groupCache keeps the supplementary groups of recent callers. A process
// that changes its groups but neither its uid nor its gid (only
// privileged programs can) may be judged by its old groups for up to
// groupTTL; the kernel's own check (default_permissions) uses the new
// ones.
type groupCache struct {
	mu sync.Mutex
	m  map[groupKey]groupEntry
}

type groupKey struct{ pid, uid, gid uint32 }

type groupEntry struct {
	groups []uint32
	until  time.Time
}

const groupTTL = time.Second

var groups = &groupCache{m: map[groupKey]groupEntry{}}

func (gc *groupCache) of(fc *fuse.Caller) []uint32 {
	k := groupKey{fc.Pid, fc.Uid, fc.Gid}
	now := time.Now()
	gc.mu.Lock()
	e, ok := gc.m[k]
	gc.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.groups
	}
	var gs []uint32
	for _, f := range strings.Fields(procStatus(fc, "Groups")) {
		if g, err := strconv.ParseUint(f, 10, 32); err == nil {
			gs = append(gs, uint32(g))
		}
	}
	gc.mu.Lock()
	if len(gc.m) >= 4096 {
		for k, e := range gc.m {
			if !now.Before(e.until) {
				delete(gc.m, k)
			}
		}
		if len(gc.m) >= 4096 {
			clear(gc.m)
		}
	}
	gc.m[k] = groupEntry{gs, now.Add(groupTTL)}
	gc.mu.Unlock()
	return gs
}

// errno maps an error from the client to what the kernel should see: the
// errno the cluster gave, EINTR for an interrupted call, EIO otherwise.
func (fsys *filesystem) errno(op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	e := syscall.Errno(api.ErrnoOf(err))
	if e == syscall.EIO {
		fsys.opts.Logf("dfs: %s: %v", op, err)
	}
	return e
}

// fillAttr copies master attributes into a FUSE reply; size is the size
// to report (the master's, or larger with buffered writes).
func fillAttr(a *api.Attr, size uint64, out *fuse.Attr) {
	out.Ino = a.Ino
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Uid, out.Gid = a.Uid, a.Gid
	out.Size = size
	out.Rdev = a.Rdev
	out.Blksize = api.BlockSize
	out.Blocks = a.Blocks
	if out.Blocks == 0 && a.Mode&syscall.S_IFMT == syscall.S_IFREG {
		out.Blocks = (size + 511) / 512
	}
	if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		// As on ext4, a directory occupies a block: programs that size
		// buffers from st_size expect it.
		out.Size = 4096
		out.Blocks = 8
	}
	setTime(a.AtimeNs, &out.Atime, &out.Atimensec)
	setTime(a.MtimeNs, &out.Mtime, &out.Mtimensec)
	setTime(a.CtimeNs, &out.Ctime, &out.Ctimensec)
}

func setTime(ns int64, sec *uint64, nsec *uint32) {
	*sec = uint64(ns / 1e9)
	*nsec = uint32(ns % 1e9)
	if ns < 0 && ns%1e9 != 0 {
		*sec = uint64(ns/1e9 - 1)
		*nsec = uint32(ns%1e9 + 1e9)
	}
}

func validName(name string) syscall.Errno {
	if len(name) > api.MaxNameLen {
		return syscall.ENAMETOOLONG
	}
	return 0
}
