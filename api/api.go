// Package api is dfs's wire vocabulary: the protobuf messages and gRPC
// services spoken between mounts, masters and chunkservers (dfs.proto,
// generated into dfs.pb.go and dfs_grpc.pb.go by `make proto`), plus the
// few constants and helpers every side shares. It imports nothing else
// from the project.
package api

import (
	"fmt"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sizes every side agrees on.
const (
	BlockSize        = 64 << 10 // checksum unit of chunk data
	DefaultChunkSize = 64 << 20
	MaxMessage       = 16 << 20 // gRPC message limit, both directions
	MaxWrite         = 8 << 20  // data bytes in one Write or Read call
	MaxNameLen       = 255
	MaxSymlinkLen    = 4095
	MaxXattrValue    = 64 << 10
	MaxXattrName     = 255
	RootIno          = 1
)

// Rename flags, as in renameat2(2).
const (
	RenameNoReplace = 1
	RenameExchange  = 2
)

// Xattr flags, as in setxattr(2).
const (
	XattrCreate  = 1
	XattrReplace = 2
)

// POSIX ACLs are the xattrs the kernel reads them by, in its binary
// format; Attr.Acls has a bit for each the inode has.
const (
	ACLAccessXattr  = "system.posix_acl_access"
	ACLDefaultXattr = "system.posix_acl_default"

	AttrACLAccess  = 1
	AttrACLDefault = 2
)

// Access bits, as the kernel's MAY_EXEC, MAY_WRITE and MAY_READ: what a
// caller asks of an inode (CreateOp.access, GetChunksRequest.access).
const (
	MayExec  = 1
	MayWrite = 2
	MayRead  = 4
)

// fmodeExec is __FMODE_EXEC, which the kernel sets in the flags of the
// open execve makes.
const fmodeExec = 0x20

// OpenAccess is the access an open with flags asks, as the kernel
// reckons it: the access mode, plus write for O_TRUNC; execute for
// execve's open.
func OpenAccess(flags uint32) uint32 {
	var a uint32
	switch {
	case flags&fmodeExec != 0:
		a = MayExec
	case flags&syscall.O_ACCMODE == syscall.O_RDONLY:
		a = MayRead
	case flags&syscall.O_ACCMODE == syscall.O_WRONLY:
		a = MayWrite
	default:
		a = MayRead | MayWrite
	}
	if flags&syscall.O_TRUNC != 0 {
		a |= MayWrite
	}
	return a
}

// Error lets an Errno travel as a Go error; errors.Is(err, syscall.ENOENT)
// works on it.
func (e Errno) Error() string { return syscall.Errno(e).Error() }

// Is reports whether target is the same errno.
func (e Errno) Is(target error) bool {
	if t, ok := target.(syscall.Errno); ok {
		return uint32(t) == uint32(e)
	}
	return false
}

// Err returns nil for OK and the errno as an error otherwise.
func (e Errno) Err() error {
	if e == Errno_OK {
		return nil
	}
	return e
}

// ErrnoOf returns the errno err carries, EIO for errors that carry none.
func ErrnoOf(err error) Errno {
	if err == nil {
		return Errno_OK
	}
	var e Errno
	if asErrno(err, &e) {
		return e
	}
	var se syscall.Errno
	if asSyscall(err, &se) {
		return Errno(se)
	}
	return Errno_EIO
}

// NotLeaderError is what a master that is not the leader answers.
func NotLeaderError(leader string, masters []string) error {
	st := status.New(codes.Unavailable, fmt.Sprintf("not the leader (leader: %q)", leader))
	if d, err := st.WithDetails(&NotLeader{LeaderAddr: leader, Masters: masters}); err == nil {
		st = d
	}
	return st.Err()
}

// LeaderHint extracts the NotLeader detail from an error, if present.
func LeaderHint(err error) (*NotLeader, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		if nl, ok := d.(*NotLeader); ok {
			return nl, true
		}
	}
	return nil, false
}

// ParseLayout parses "replicated:R", "replicated", "ec:K+M", with an
// optional ",chunk=BYTES" suffix.
func ParseLayout(s string) (*Layout, error) {
	l := &Layout{ChunkSize: DefaultChunkSize}
	main, opts, _ := strings.Cut(strings.TrimSpace(s), ",")
	kind, arg, hasArg := strings.Cut(main, ":")
	switch kind {
	case "replicated":
		l.Kind = Layout_REPLICATED
		l.Replicas = 3
		if hasArg {
			var r uint32
			if _, err := fmt.Sscanf(arg, "%d", &r); err != nil || fmt.Sprint(r) != arg || r < 1 || r > 16 {
				return nil, fmt.Errorf("layout %q: replica count must be 1..16", s)
			}
			l.Replicas = r
		}
	case "ec":
		var k, m uint32
		if _, err := fmt.Sscanf(arg, "%d+%d", &k, &m); err != nil || fmt.Sprintf("%d+%d", k, m) != arg {
			return nil, fmt.Errorf("layout %q: want ec:K+M, e.g. ec:4+2", s)
		}
		if k < 1 || m < 1 || k+m > 32 {
			return nil, fmt.Errorf("layout %q: need K >= 1, M >= 1, K+M <= 32", s)
		}
		l.Kind = Layout_EC
		l.DataShards, l.ParityShards = k, m
	default:
		return nil, fmt.Errorf("layout %q: want replicated:R or ec:K+M", s)
	}
	if opts != "" {
		key, val, _ := strings.Cut(opts, "=")
		var cs uint64
		if key != "chunk" {
			return nil, fmt.Errorf("layout %q: unknown option %q", s, key)
		}
		if _, err := fmt.Sscanf(val, "%d", &cs); err != nil || cs < BlockSize || cs%BlockSize != 0 || cs > 1<<30 {
			return nil, fmt.Errorf("layout %q: chunk size must be a multiple of %d up to 1 GiB", s, BlockSize)
		}
		l.ChunkSize = cs
	}
	return l, nil
}

// FormatLayout is ParseLayout's inverse.
func FormatLayout(l *Layout) string {
	var s string
	if l.GetKind() == Layout_EC {
		s = fmt.Sprintf("ec:%d+%d", l.DataShards, l.ParityShards)
	} else {
		s = fmt.Sprintf("replicated:%d", l.GetReplicas())
	}
	if l.GetChunkSize() != 0 && l.GetChunkSize() != DefaultChunkSize {
		s += fmt.Sprintf(",chunk=%d", l.ChunkSize)
	}
	return s
}
