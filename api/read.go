package api

import (
	"context"
	"fmt"
	"time"
)

// ReadRange reads [off, off+n) of one chunk (or EC shard) from a
// chunkserver in calls of at most MaxWrite bytes, each with its own
// timeout, each carrying token. A short answer means the rest reads as
// zeros.
func ReadRange(ctx context.Context, cs ChunkServerClient, id uint64, shard uint32, version, off, n uint64, token *ChunkToken, timeout time.Duration) ([]byte, error) {
	var out []byte
	for pos := uint64(0); pos < n; {
		l := min(n-pos, MaxWrite)
		actx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := cs.Read(actx, &ReadRequest{Id: id, Shard: shard, Version: version, Offset: off + pos, Length: l, Token: token})
		cancel()
		if err != nil {
			return nil, err
		}
		if resp.Errno != Errno_OK {
			return nil, fmt.Errorf("%w: %s", resp.Errno, resp.Message)
		}
		if uint64(len(resp.Data)) < l || pos+l >= n {
			if out == nil {
				return resp.Data, nil // one piece: no copy
			}
			return append(out, resp.Data...), nil
		}
		out = append(out, resp.Data...)
		pos += l
	}
	return out, nil
}
