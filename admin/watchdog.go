package admin

import (
	"log/slog"
	"os"
	"runtime/pprof"
	"time"
)

// Watchdog bounds a graceful stop: unless the returned function is called
// within after, it logs every goroutine's stack (so the hang can be
// found) and exits the process with status 1. State on disk is then as
// after kill -9, which every daemon survives; a service manager's stop
// timeout is never reached.
func Watchdog(after time.Duration, log *slog.Logger) (done func()) {
	t := time.AfterFunc(after, func() {
		log.Error("graceful stop did not finish; exiting now", "after", after)
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		os.Exit(1)
	})
	return func() { t.Stop() }
}
