package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the /metrics page: what g gathers (the process's registry),
// in the Prometheus exposition format.
func Metrics(g prometheus.Gatherer) Page {
	return Page{Pattern: "GET /metrics", Handler: promhttp.HandlerFor(g, promhttp.HandlerOpts{})}
}
