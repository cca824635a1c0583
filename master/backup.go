package master

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"dfs/api"

	"github.com/hashicorp/raft"
)

// Backups (dfsctl snapshot save, dfsmaster -restore). A backup file is a
// short text header, then the FSM snapshot exactly as Raft would store
// it:
//
//	DFSBACKUP 1
//	applied-index 1234
//	size 56789
//	sha256 0123...
//	(a blank line)
//	DFSSNAP ... (size bytes)
//
// Restoring writes the snapshot into an empty data directory's Raft
// snapshot store, with the -cluster members as its configuration, so the
// master starts as if it had taken that snapshot itself.
const backupMagic = "DFSBACKUP 1"

// restoreChunkGap is added to the next chunk id on restore: chunks made
// after the backup are unknown to it, and their ids must not be handed
// out again, so the chunkservers' copies of them are deleted as garbage
// instead of being mistaken for new chunks.
const restoreChunkGap = 1 << 32

// backup returns the encoded state and the Raft index it reflects.
func (f *FSM) backup() (data []byte, applied uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.snapshot().data, f.applied
}

// SaveSnapshot streams a consistent snapshot of the leader's state: taken
// under the FSM's read lock after a leadership check, so it holds every
// change committed before the call.
func (v *service) SaveSnapshot(req *api.SaveSnapshotRequest, stream api.Master_SaveSnapshotServer) error {
	if err := v.linearize(stream.Context()); err != nil {
		return err
	}
	// Apply what is committed, so the copy is not behind a write that
	// returned before this call.
	if err := v.raft.Barrier(applyTimeout).Error(); err != nil {
		return v.notLeader()
	}
	data, applied := v.fsm.backup()
	if applied == 0 {
		// Nothing applied since this master restored from a snapshot:
		// the state is the snapshot's, at Raft's applied index.
		applied = max(v.raft.AppliedIndex(), 1)
	}
	sum := sha256.Sum256(data)
	const piece = 1 << 20
	for off := 0; ; off += piece {
		p := &api.SnapshotPiece{Data: data[off:min(off+piece, len(data))]}
		if off == 0 {
			p.AppliedIndex, p.Size = applied, uint64(len(data))
		}
		last := off+piece >= len(data)
		if last {
			p.Sha256 = sum[:]
		}
		if err := stream.Send(p); err != nil {
			return err
		}
		if last {
			break
		}
	}
	v.srv.log.Info("snapshot saved by a client", "applied_index", applied, "bytes", len(data))
	return nil
}

// WriteBackup writes a backup file atomically: a temporary file in the
// same directory, synced, then renamed over path.
func WriteBackup(path string, applied uint64, data []byte) error {
	sum := sha256.Sum256(data)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	fmt.Fprintf(w, "%s\napplied-index %d\nsize %d\nsha256 %s\n\n", backupMagic, applied, len(data), hex.EncodeToString(sum[:]))
	w.Write(data)
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ReadBackup reads and checks a backup file: header, size, checksum and
// that the snapshot in it decodes to a consistent state.
func ReadBackup(path string) (applied uint64, data []byte, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	head, body, found := bytes.Cut(raw, []byte("\n\n"))
	lines := strings.Split(string(head), "\n")
	if !found || len(lines) != 4 || lines[0] != backupMagic {
		return 0, nil, fmt.Errorf("%s: not a dfs master backup (want a %q header)", path, backupMagic)
	}
	fields := map[string]string{}
	for _, l := range lines[1:] {
		k, val, _ := strings.Cut(l, " ")
		fields[k] = val
	}
	applied, err1 := strconv.ParseUint(fields["applied-index"], 10, 64)
	size, err2 := strconv.ParseUint(fields["size"], 10, 64)
	if err1 != nil || err2 != nil || applied == 0 {
		return 0, nil, fmt.Errorf("%s: bad backup header (applied-index %q, size %q)", path, fields["applied-index"], fields["size"])
	}
	if uint64(len(body)) != size {
		return 0, nil, fmt.Errorf("%s: truncated or padded: %d bytes of snapshot, header says %d", path, len(body), size)
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != fields["sha256"] {
		return 0, nil, fmt.Errorf("%s: checksum mismatch (sha256 %s, header says %s): the file is corrupt", path, got, fields["sha256"])
	}
	if _, err := readSnapshot(bytes.NewReader(body)); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	return applied, body, nil
}

// restoreBackup seeds an empty data directory from a backup: the
// snapshot, with the next chunk id moved past any chunk made after the
// backup, becomes the Raft snapshot at the backup's index, with conf as
// the group's configuration.
func restoreBackup(path string, snaps raft.SnapshotStore, trans raft.Transport, conf raft.Configuration) error {
	applied, data, err := ReadBackup(path)
	if err != nil {
		return fmt.Errorf("-restore: %w", err)
	}
	f, err := readSnapshot(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("-restore: %w", err)
	}
	f.nextChunk += restoreChunkGap
	sink, err := snaps.Create(raft.SnapshotVersionMax, applied, 1, conf, applied, trans)
	if err != nil {
		return fmt.Errorf("-restore: %w", err)
	}
	if err := f.snapshot().Persist(sink); err != nil {
		return fmt.Errorf("-restore: writing the snapshot: %w", err)
	}
	return nil
}
