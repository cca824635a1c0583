package main

import (
	"log/slog"

	"dfs/admin"
	"dfs/master"
	"dfs/statuspage"
)

// serveAdmin starts the admin listener (-debug-addr) with pprof, expvar
// and the status page, and tells srv its address, which Status reports
// so that followers can link to the leader's page.
func serveAdmin(addr string, log *slog.Logger, srv *master.Server) error {
	bound, err := admin.Serve(addr, log, statuspage.Pages(srv.Status)...)
	if err != nil {
		return err
	}
	srv.SetAdminAddr(bound)
	return nil
}
