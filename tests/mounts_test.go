package tests

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCloseToOpen: a file closed on one mount is read back whole on the
// other, in both directions, including an overwrite that shrinks it.
func TestCloseToOpen(t *testing.T) {
	a, b := testDir(t, 0), filepath.Join(shared(t).MountDir(1), t.Name())
	writeFile(t, filepath.Join(a, "f"), 1, 3<<20+17)
	checkFile(t, filepath.Join(b, "f"), 1, 3<<20+17)
	writeFile(t, filepath.Join(b, "f"), 2, 1<<20+3) // os.Create truncates
	checkFile(t, filepath.Join(a, "f"), 2, 1<<20+3)
	// Appending on one mount while the other has read the old size.
	f, err := os.OpenFile(filepath.Join(a, "f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(b, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1<<20+3+4 || string(got[len(got)-4:]) != "tail" {
		t.Errorf("other mount reads %d bytes ending %q after append, want %d ending \"tail\"", len(got), got[max(0, len(got)-4):], 1<<20+7)
	}
}

// TestNamespaceVisibility: creates, renames and removals on one mount are
// seen on the other within the attribute cache time, even when the other
// mount has just looked the names up.
func TestNamespaceVisibility(t *testing.T) {
	a, b := testDir(t, 0), filepath.Join(shared(t).MountDir(1), t.Name())
	deadline := attrTimeout + 500*time.Millisecond // slack for scheduling on a busy machine
	seen := func(what, path string, want bool) {
		t.Helper()
		start := time.Now()
		for {
			_, err := os.Lstat(path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s: lstat %s: %v", what, path, err)
			}
			if (err == nil) == want {
				return
			}
			if time.Since(start) > deadline {
				t.Errorf("%s: other mount still shows exists=%v after %v", what, !want, time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Prime the other mount's caches, negative and positive.
	os.Lstat(filepath.Join(b, "d"))
	if err := os.Mkdir(filepath.Join(a, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	seen("mkdir", filepath.Join(b, "d"), true)
	if err := os.WriteFile(filepath.Join(a, "d", "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen("create", filepath.Join(b, "d", "x"), true)
	if err := os.Rename(filepath.Join(a, "d", "x"), filepath.Join(a, "y")); err != nil {
		t.Fatal(err)
	}
	seen("rename (old name)", filepath.Join(b, "d", "x"), false)
	seen("rename (new name)", filepath.Join(b, "y"), true)
	if err := os.Remove(filepath.Join(a, "y")); err != nil {
		t.Fatal(err)
	}
	seen("unlink", filepath.Join(b, "y"), false)
	if err := os.Remove(filepath.Join(a, "d")); err != nil {
		t.Fatal(err)
	}
	seen("rmdir", filepath.Join(b, "d"), false)
	// Attributes too: a chmod shows within the attribute time.
	p := filepath.Join(a, "m")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	seen("create", filepath.Join(b, "m"), true)
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		fi, err := os.Stat(filepath.Join(b, "m"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() == 0o640 {
			break
		}
		if time.Since(start) > deadline {
			t.Errorf("chmod: other mount shows mode %v after %v", fi.Mode(), time.Since(start).Round(time.Millisecond))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}
