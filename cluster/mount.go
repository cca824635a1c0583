package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

const fuseSuperMagic = 0x65735546

// isMounted reports whether dir is a mount point, per /proc/self/mountinfo.
func isMounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountPath(fields[4]) == dir {
			return true
		}
	}
	return false
}

// unescapeMountPath undoes the octal escapes (\040 for space, ...) that
// mountinfo uses in paths.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// forceUnmount detaches dir even if its FUSE server is stuck or gone, so
// that no stale mount outlives a cluster.
func forceUnmount(dir string) error {
	if !isMounted(dir) {
		return nil
	}
	var msgs []string
	for _, argv := range [][]string{
		{"fusermount3", "-u", "-z", dir},
		{"fusermount", "-u", "-z", dir},
		{"umount", "-l", dir},
	} {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err == nil && !isMounted(dir) {
			return nil
		}
		msgs = append(msgs, fmt.Sprintf("%s: %v %s", argv[0], err, strings.TrimSpace(string(out))))
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err == nil && !isMounted(dir) {
		return nil
	}
	return fmt.Errorf("cannot unmount %s: %s", dir, strings.Join(msgs, "; "))
}

// mountAnswers reports whether dir is a FUSE mount whose server answers
// stat and statfs within timeout. A hung server must not hang the caller,
// so the calls run in a goroutine that may be abandoned.
func mountAnswers(dir string, timeout time.Duration) error {
	if !isMounted(dir) {
		return fmt.Errorf("%s is not mounted", dir)
	}
	res := make(chan error, 1)
	go func() {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			res <- fmt.Errorf("stat %s: %w", dir, err)
			return
		}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(dir, &fs); err != nil {
			res <- fmt.Errorf("statfs %s: %w", dir, err)
			return
		}
		if fs.Type != fuseSuperMagic {
			res <- fmt.Errorf("%s is mounted but not by FUSE (fs type %#x)", dir, fs.Type)
			return
		}
		res <- nil
	}()
	select {
	case err := <-res:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("stat %s: no answer within %v", dir, timeout)
	}
}

// CleanStaleMounts detaches FUSE mounts at or below dir whose server is
// gone (stat fails with ENOTCONN), which is what a killed test process
// leaves behind, and returns the mount points it detached. Live mounts,
// including other processes' clusters, are left alone.
func CleanStaleMounts(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var candidates []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Fields after " - " are fstype, source, options.
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) || !strings.HasPrefix(fields[sep+1], "fuse") {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, strings.TrimSuffix(dir, "/")+"/") {
			candidates = append(candidates, mp)
		}
	}
	f.Close()
	var cleaned []string
	var errs []error
	for _, mp := range candidates {
		// A live but stuck server would hang stat: give up on it.
		res := make(chan error, 1)
		go func() {
			var st syscall.Stat_t
			res <- syscall.Stat(mp, &st)
		}()
		select {
		case err := <-res:
			if !errors.Is(err, syscall.ENOTCONN) {
				continue
			}
		case <-time.After(2 * time.Second):
			continue
		}
		if err := forceUnmount(mp); err != nil {
			errs = append(errs, err)
			continue
		}
		cleaned = append(cleaned, mp)
	}
	return cleaned, errors.Join(errs...)
}
