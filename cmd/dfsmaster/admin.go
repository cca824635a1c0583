package main

import (
	"log/slog"

	"dfs/admin"
	"dfs/master"
	"dfs/statuspage"

	"github.com/prometheus/client_golang/prometheus"
)

// serveAdmin starts the admin listener (-debug-addr) with pprof, expvar,
// the metrics in reg and the status page, and tells srv its address,
// which Status reports so that followers can link to the leader's page.
func serveAdmin(addr string, log *slog.Logger, srv *master.Server, reg prometheus.Gatherer) error {
	bound, err := admin.Serve(addr, log, append(statuspage.Pages(srv.Status), admin.Metrics(reg))...)
	if err != nil {
		return err
	}
	srv.SetAdminAddr(bound)
	return nil
}
