package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Binary names a Config.Bin directory must hold.
const (
	MasterBinary = "dfsmaster"
	ChunkBinary  = "dfschunk"
	MountBinary  = "dfsmount"
	CtlBinary    = "dfsctl"
)

// ModuleRoot returns the directory of the dfs module's go.mod, found from
// the current directory (tests run in their package directory).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the dfs module")
	}
	return filepath.Dir(gomod), nil
}

// Build compiles every command of the module (./cmd/...) into dir.
func Build(ctx context.Context, dir string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", abs+"/", "./cmd/...")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
	}
	return nil
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

// BuildOnce builds the commands into a fresh temporary directory the first
// time it is called in a process and returns that directory afterwards,
// so that every test of a binary shares one build. The caller that ends
// the process may remove the directory (os.RemoveAll(dir)).
func BuildOnce(ctx context.Context) (string, error) {
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "dfs-bin-")
		if built.err == nil {
			built.err = Build(ctx, built.dir)
		}
	})
	return built.dir, built.err
}
