package client

import (
	"context"
	"fmt"

	"dfs/api"
)

// Errors returned by Client methods for conditions the master or a
// chunkserver reported carry an api.Errno: api.ErrnoOf(err) gives it and
// errors.Is(err, syscall.ENOENT) works. Other errors (no leader within
// the call timeout, unreachable chunkservers) carry none.

func errnoErr(e api.Errno, msg string) error {
	if e == api.Errno_OK {
		return nil
	}
	if msg != "" {
		return fmt.Errorf("%w: %s", e, msg)
	}
	return e
}

// Mutate sends op as one mutation of this session, retried with the same
// sequence number until answered, and returns the answer. An errno in the
// answer is returned as the error, with the response.
func (c *Client) Mutate(ctx context.Context, op *api.Op) (*api.MutateResponse, error) {
	resp, err := c.mutate(ctx, op)
	if err != nil {
		return nil, err
	}
	return resp, errnoErr(resp.Errno, resp.Message)
}

func (c *Client) mutateAttr(ctx context.Context, op *api.Op) (*api.Attr, error) {
	resp, err := c.Mutate(ctx, op)
	if err != nil {
		return nil, err
	}
	return resp.Attr, nil
}

// Create makes a file (or device, fifo, socket: mode carries the type)
// named name in parent. Unless exclusive, an existing file is answered
// with its attributes. open records an open by this session, to be ended
// by Release.
func (c *Client) Create(ctx context.Context, parent uint64, name string, mode, rdev uint32, exclusive, open bool) (*api.Attr, error) {
	return c.mutateAttr(ctx, &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{
		Parent: parent, Name: name, Mode: mode, Rdev: rdev, Exclusive: exclusive, Open: open}}})
}

// Mkdir makes a directory.
func (c *Client) Mkdir(ctx context.Context, parent uint64, name string, mode uint32) (*api.Attr, error) {
	return c.mutateAttr(ctx, &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: parent, Name: name, Mode: mode}}})
}

// Symlink makes a symbolic link to target.
func (c *Client) Symlink(ctx context.Context, parent uint64, name, target string) (*api.Attr, error) {
	return c.mutateAttr(ctx, &api.Op{Op: &api.Op_Symlink{Symlink: &api.SymlinkOp{Parent: parent, Name: name, Target: target}}})
}

// Link adds a hard link to ino and returns its new attributes.
func (c *Client) Link(ctx context.Context, ino, newParent uint64, newName string) (*api.Attr, error) {
	return c.mutateAttr(ctx, &api.Op{Op: &api.Op_Link{Link: &api.LinkOp{Ino: ino, NewParent: newParent, NewName: newName}}})
}

// Unlink removes a non-directory entry.
func (c *Client) Unlink(ctx context.Context, parent uint64, name string) error {
	_, err := c.Mutate(ctx, &api.Op{Op: &api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: parent, Name: name}}})
	return err
}

// Rmdir removes an empty directory.
func (c *Client) Rmdir(ctx context.Context, parent uint64, name string) error {
	_, err := c.Mutate(ctx, &api.Op{Op: &api.Op_Rmdir{Rmdir: &api.RmdirOp{Parent: parent, Name: name}}})
	return err
}

// Rename moves an entry atomically; flags are api.RenameNoReplace or
// api.RenameExchange.
func (c *Client) Rename(ctx context.Context, parent uint64, name string, newParent uint64, newName string, flags uint32) error {
	_, err := c.Mutate(ctx, &api.Op{Op: &api.Op_Rename{Rename: &api.RenameOp{
		Parent: parent, Name: name, NewParent: newParent, NewName: newName, Flags: flags}}})
	return err
}

// SetAttr changes what op.Valid selects and returns the new attributes.
// Shrinking a file's data goes through Truncate, not here.
func (c *Client) SetAttr(ctx context.Context, op *api.SetAttrOp) (*api.Attr, error) {
	return c.mutateAttr(ctx, &api.Op{Op: &api.Op_SetAttr{SetAttr: op}})
}

// SetXattr sets an extended attribute; flags are api.XattrCreate or
// api.XattrReplace.
func (c *Client) SetXattr(ctx context.Context, ino uint64, name string, value []byte, flags uint32) error {
	_, err := c.Mutate(ctx, &api.Op{Op: &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: ino, Name: name, Value: value, Flags: flags}}})
	return err
}

// RemoveXattr removes an extended attribute.
func (c *Client) RemoveXattr(ctx context.Context, ino uint64, name string) error {
	_, err := c.Mutate(ctx, &api.Op{Op: &api.Op_RemoveXattr{RemoveXattr: &api.RemoveXattrOp{Ino: ino, Name: name}}})
	return err
}

// AllocChunk returns the chunk at (ino, index), created if absent, with a
// fresh write lease on its primary.
func (c *Client) AllocChunk(ctx context.Context, ino, index uint64) (*api.Chunk, error) {
	resp, err := c.Mutate(ctx, &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: ino, Index: index}}})
	if err != nil {
		return nil, err
	}
	return resp.Chunk, nil
}

// ReportFailure tells the master that writing chunk ch failed on the
// replicas in failed, and returns the chunk as the master now has it: a
// smaller replica set with a new version and lease.
func (c *Client) ReportFailure(ctx context.Context, ino uint64, ch *api.Chunk, failed []string) (*api.Chunk, error) {
	resp, err := c.Mutate(ctx, &api.Op{Op: &api.Op_ReportFailure{ReportFailure: &api.ReportFailureOp{
		Ino: ino, Index: ch.Index, ChunkId: ch.Id, Version: ch.Version, Failed: failed}}})
	if err != nil {
		return nil, err
	}
	return resp.Chunk, nil
}

// CommitWrite records that data up to size reached the chunkservers: the
// file's size becomes at least size and its mtime/ctime now (or
// mtimeNs if not zero).
func (c *Client) CommitWrite(ctx context.Context, ino, size uint64, mtimeNs int64) (*api.Attr, error) {
	return c.mutateAttr(ctx, &api.Op{Op: &api.Op_CommitWrite{CommitWrite: &api.CommitWriteOp{Ino: ino, Size: size, MtimeNs: mtimeNs}}})
}

// Open records an open of ino by this session (so it outlives unlink) and
// returns its current attributes.
func (c *Client) Open(ctx context.Context, ino uint64) (*api.Attr, error) {
	return c.mutateAttr(ctx, &api.Op{Op: &api.Op_Open{Open: &api.OpenOp{Ino: ino}}})
}

// Lookup finds name in directory parent.
func (c *Client) Lookup(ctx context.Context, parent uint64, name string) (*api.Attr, error) {
	var resp *api.AttrResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) (err error) {
		resp, err = m.Lookup(ctx, &api.LookupRequest{Parent: parent, Name: name, Caller: callerOf(ctx)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Attr, errnoErr(resp.Errno, "")
}

// GetAttr returns an inode's attributes.
func (c *Client) GetAttr(ctx context.Context, ino uint64) (*api.Attr, error) {
	var resp *api.AttrResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) (err error) {
		resp, err = m.GetAttr(ctx, &api.GetAttrRequest{Ino: ino, Caller: callerOf(ctx)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Attr, errnoErr(resp.Errno, "")
}

// ReadDir lists directory ino after cookie (0: from the start). With plus
// the response carries one Attr per entry.
func (c *Client) ReadDir(ctx context.Context, ino, cookie uint64, limit uint32, plus bool) (*api.ReadDirResponse, error) {
	var resp *api.ReadDirResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) (err error) {
		resp, err = m.ReadDir(ctx, &api.ReadDirRequest{Ino: ino, Cookie: cookie, Limit: limit, Plus: plus, Caller: callerOf(ctx)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, errnoErr(resp.Errno, "")
}

// GetXattr returns an extended attribute's value (ENODATA when absent).
func (c *Client) GetXattr(ctx context.Context, ino uint64, name string) ([]byte, error) {
	var resp *api.GetXattrResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) (err error) {
		resp, err = m.GetXattr(ctx, &api.GetXattrRequest{Ino: ino, Name: name, Caller: callerOf(ctx)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Value, errnoErr(resp.Errno, "")
}

// ListXattr returns the names of an inode's extended attributes.
func (c *Client) ListXattr(ctx context.Context, ino uint64) ([]string, error) {
	var resp *api.ListXattrResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) (err error) {
		resp, err = m.ListXattr(ctx, &api.ListXattrRequest{Ino: ino, Caller: callerOf(ctx)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Names, errnoErr(resp.Errno, "")
}

// GetChunks returns the chunks present in [first, first+count) and the
// file's attributes.
func (c *Client) GetChunks(ctx context.Context, ino, first uint64, count uint32) ([]*api.Chunk, *api.Attr, error) {
	var resp *api.GetChunksResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) (err error) {
		resp, err = m.GetChunks(ctx, &api.GetChunksRequest{Ino: ino, FirstIndex: first, Count: count, Session: c.Session(), Caller: callerOf(ctx)})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.Chunks, resp.Attr, errnoErr(resp.Errno, "")
}

// StatFS returns the cluster's capacity and usage.
func (c *Client) StatFS(ctx context.Context) (*api.StatFSResponse, error) {
	var resp *api.StatFSResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) (err error) {
		resp, err = m.StatFS(ctx, &api.StatFSRequest{})
		return err
	})
	return resp, err
}
