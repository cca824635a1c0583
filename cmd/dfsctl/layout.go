package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"dfs/api"

	"golang.org/x/sys/unix"
)

// layoutXattr is the extended attribute through which a mount shows and
// sets layouts, as CephFS does with ceph.dir.layout.
const layoutXattr = "dfs.layout"

func runLayout(args []string) error {
	if len(args) == 0 {
		return usageError("usage: dfsctl layout get PATH | layout set PATH LAYOUT | layout convert PATH LAYOUT")
	}
	switch args[0] {
	case "get":
		if len(args) != 2 {
			return usageError("usage: dfsctl layout get PATH")
		}
		v, err := getLayout(args[1])
		if err != nil {
			return err
		}
		fmt.Println(v)
		return nil
	case "set":
		if len(args) != 3 {
			return usageError("usage: dfsctl layout set PATH LAYOUT")
		}
		l, err := api.ParseLayout(args[2])
		if err != nil {
			return fmt.Errorf("invalid layout: %v", err)
		}
		return setLayout(args[1], api.FormatLayout(l))
	case "convert":
		if len(args) != 3 {
			return usageError("usage: dfsctl layout convert PATH LAYOUT")
		}
		l, err := api.ParseLayout(args[2])
		if err != nil {
			return fmt.Errorf("invalid layout: %v", err)
		}
		return convertTree(args[1], api.FormatLayout(l), os.Stdout)
	default:
		return usageError(fmt.Sprintf("layout: unknown subcommand %q (want get, set or convert)", args[0]))
	}
}

func getLayout(path string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(path, layoutXattr, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return "", layoutErr("get", path, err)
		}
		return strings.TrimRight(string(buf[:n]), "\x00\n"), nil
	}
}

func setLayout(path, layout string) error {
	if err := unix.Setxattr(path, layoutXattr, []byte(layout), 0); err != nil {
		return layoutErr("set", path, err)
	}
	return nil
}

// layoutErr explains the errors people hit: a path outside any dfs mount
// has no dfs.layout attribute.
func layoutErr(op, path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.ENODATA) && op == "get":
		return fmt.Errorf("layout %s %s: %v (is %s on a dfs mount?)", op, path, err, path)
	case errors.Is(err, unix.EINVAL) && op == "set":
		return fmt.Errorf("layout set %s: the filesystem rejected the layout: %v", path, err)
	}
	return fmt.Errorf("layout %s %s: %v", op, path, err)
}
