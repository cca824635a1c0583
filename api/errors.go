package api

import (
	"errors"
	"syscall"
)

func asErrno(err error, e *Errno) bool           { return errors.As(err, e) }
func asSyscall(err error, e *syscall.Errno) bool { return errors.As(err, e) }
