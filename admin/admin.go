// Package admin serves a daemon's operator endpoints on a listener of its
// own, apart from the gRPC service: the Go profiler (pprof), expvar
// counters and any pages the daemon adds (Prometheus metrics, the
// master's status page).
package admin

import (
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// Page is one extra endpoint, with a net/http ServeMux pattern.
type Page struct {
	Pattern string
	Handler http.Handler
}

// Serve starts serving the admin endpoints and pages on addr in the
// background and returns the address it listens on; an empty addr serves
// nothing.
func Serve(addr string, log *slog.Logger, pages ...Page) (string, error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("admin listener %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	for _, p := range pages {
		mux.Handle(p.Pattern, p.Handler)
	}
	if log != nil {
		log.Info("admin listener", "addr", ln.Addr().String())
	}
	go func() {
		if err := http.Serve(ln, mux); err != nil && log != nil {
			log.Warn("admin listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr().String(), nil
}
