package fs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"dfs/client"
	"dfs/client/clienttest"
	"dfs/fs"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// mount starts a fake cluster and mounts it in a temporary directory.
func mount(t *testing.T, opts fs.Options) (string, *clienttest.Cluster) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	cl, err := clienttest.Start(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return mountCluster(t, cl, opts), cl
}

// mountCluster mounts cl once more, as another machine would.
func mountCluster(t *testing.T, cl *clienttest.Cluster, opts fs.Options) string {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Masters: cl.Masters, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts.Logf = t.Logf
	srv, err := fs.Mount(ctx, dir, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		c.Close(context.Background())
	})
	return dir
}

func TestCloseToOpen(t *testing.T) {
	opts := fs.DefaultOptions()
	a, cl := mount(t, opts)
	b := mountCluster(t, cl, opts)
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("one"), 0644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(b, "f")); err != nil || string(got) != "one" {
		t.Fatalf("other mount read %q, %v", got, err)
	}
	// Same size, new content: the reader's page cache must not survive
	// the next open.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("two"), 0644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(b, "f")); err != nil || string(got) != "two" {
		t.Fatalf("after rewrite other mount read %q, %v", got, err)
	}
	// fsync reaches every replica's stable storage.
	f, err := os.OpenFile(filepath.Join(a, "f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("three")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if cl.Calls("Sync") == 0 {
		t.Error("fsync sent no Sync")
	}
	f.Close()
	if got, err := os.ReadFile(filepath.Join(b, "f")); err != nil || string(got) != "twothree" {
		t.Fatalf("after append other mount read %q, %v", got, err)
	}
}

func TestPosix(t *testing.T) {
	skip := map[string]bool{
		// Locks come with a later issue.
		"FcntlFlockLocksFile": true, "FcntlFlockSetLk": true, "FcntlFlockSetLkw": true,
		"FlockLocksFile": true, "FlockInterrupt": true,
	}
	for name, fn := range posixtest.All {
		if skip[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			dir, _ := mount(t, fs.Options{})
			fn(t, dir)
		})
	}
}

func TestDataAcrossHandles(t *testing.T) {
	dir, cl := mount(t, fs.DefaultOptions())
	p := filepath.Join(dir, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Small sequential writes are buffered and coalesced.
	chunk := bytes.Repeat([]byte("abcdefgh"), 512)
	for i := 0; i < 64; i++ {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if n := cl.Calls("Write"); n != 0 {
		t.Errorf("%d chunk writes before close, want them buffered", n)
	}
	// fstat sees the buffered size.
	st, err := f.Stat()
	if err != nil || st.Size() != 64*int64(len(chunk)) {
		t.Fatalf("stat: %v size %d", err, st.Size())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := cl.Calls("Write"); n != 1 {
		t.Errorf("%d chunk writes at close, want 1", n)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, bytes.Repeat(chunk, 64)) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	// Unlinked open files stay readable.
	g, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := g.ReadAt(buf, 8); err != nil || string(buf) != "abcdefghab" {
		t.Fatalf("read of unlinked file: %q %v", buf, err)
	}
}

func TestLayoutXattr(t *testing.T) {
	dir, _ := mount(t, fs.Options{})
	if err := syscall.Setxattr(dir, "dfs.layout", []byte("replicated:2,chunk=65536"), 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(dir, "dfs.layout", []byte("bogus"), 0); err != syscall.EINVAL {
		t.Errorf("bad layout: %v, want EINVAL", err)
	}
	p := filepath.Join(dir, "f")
	data := bytes.Repeat([]byte{7}, 200000) // spans 4 chunks
	if err := os.WriteFile(p, data, 0644); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := syscall.Getxattr(p, "dfs.layout", buf)
	if err != nil || string(buf[:n]) != "replicated:2,chunk=65536" {
		t.Fatalf("layout %q, %v", buf[:n], err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	long := string(bytes.Repeat([]byte("n"), 256))
	if _, err := os.Create(filepath.Join(dir, long)); !os.IsNotExist(err) && !isErrno(err, syscall.ENAMETOOLONG) {
		t.Errorf("256-byte name: %v, want ENAMETOOLONG", err)
	}
	_ = time.Second
}

func isErrno(err error, e syscall.Errno) bool {
	pe, ok := err.(*os.PathError)
	return ok && pe.Err == e
}

func TestSharedMmap(t *testing.T) {
	dir, _ := mount(t, fs.DefaultOptions())
	p := filepath.Join(dir, "m")
	if err := os.WriteFile(p, make([]byte, 8192), 0644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// MAP_POPULATE reads the pages in the mmap call: a page fault served
	// by this process's own FUSE server would block its thread outside a
	// system call, and a garbage collection starting then could never
	// stop it - the test would hang (a mount serves other processes).
	m, err := syscall.Mmap(int(f.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		t.Fatal(err)
	}
	copy(m[4000:], "mapped")
	if err := syscall.Munmap(m); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(p)
	if err != nil || string(got[4000:4006]) != "mapped" {
		t.Fatalf("read %q, %v", got[4000:4006], err)
	}
	// O_TRUNC empties it.
	if err := os.WriteFile(p, []byte("x"), 0644); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Size() != 1 {
		t.Fatalf("after O_TRUNC: %v", err)
	}
}
