package chunk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LockedError reports a data directory held by another process (or by
// another open store in this one).
type LockedError struct {
	Dir string
	PID int // the holder's pid as it recorded it, 0 if unknown
}

func (e *LockedError) Error() string { return e.Dir + ": " + e.detail() }

func (e *LockedError) detail() string {
	if e.PID > 0 {
		return fmt.Sprintf("already in use by another dfschunk (pid %d)", e.PID)
	}
	return "already in use by another dfschunk"
}

// lockDir takes an exclusive flock on DIR/LOCK, records our pid in it and
// returns the open file; closing it releases the lock. The lock is per
// open file description, so a second open in the same process is refused
// too.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("%s: lock: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}
