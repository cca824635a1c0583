// Package statuspage renders a master's status as one plain HTML page for
// operators: cluster health, the masters and their Raft roles, the
// chunkservers, chunk health, sessions and locks. It is server-rendered
// and needs no JavaScript; it refreshes itself every few seconds.
//
// The leader shows everything. A follower hears no chunkserver heartbeats
// and would show stale or empty data, so it shows the masters and a link
// to the leader's page instead.
package statuspage

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"time"

	"dfs/admin"
	"dfs/api"
	"dfs/units"
)

// Source returns a master's status; the page asks with Detail set.
type Source func(ctx context.Context, req *api.StatusRequest) (*api.StatusResponse, error)

// RefreshSeconds is how often the page reloads itself.
const RefreshSeconds = 5

// fetchTimeout bounds building one page: the status call asks every
// other master, each with a timeout of its own.
const fetchTimeout = 5 * time.Second

// Handler serves the status page from src.
func Handler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), fetchTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		st, err := src(ctx, &api.StatusRequest{Detail: true})
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			renderError(w, err)
			return
		}
		if err := Render(w, st, time.Now()); err != nil {
			// Headers are gone; the truncated page shows the failure.
			fmt.Fprintf(w, "\n<p>rendering failed: %s</p>\n", template.HTMLEscapeString(err.Error()))
		}
	})
}

//go:embed page.html
var files embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"bytes": units.Bytes,
	"ago":   units.Ago,
	"dur":   units.Duration,
	"pct":   pct,
	"span":  units.Range,
}).ParseFS(files, "page.html"))

// Render writes the page for st as seen at now.
func Render(w io.Writer, st *api.StatusResponse, now time.Time) error {
	return page.Execute(w, newView(st, now))
}

func renderError(w io.Writer, err error) {
	_ = page.Execute(w, &view{Refresh: RefreshSeconds, Error: err.Error()})
}

// Pages are the admin listener's routes for the page: / and /status.
func Pages(src Source) []admin.Page {
	h := Handler(src)
	return []admin.Page{{Pattern: "GET /{$}", Handler: h}, {Pattern: "GET /status", Handler: h}}
}
