package admin

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServePages(t *testing.T) {
	if addr, err := Serve("", nil); addr != "" || err != nil {
		t.Errorf("empty address: %q, %v; want nothing served", addr, err)
	}
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello page") })
	addr, err := Serve("127.0.0.1:0", nil, Page{Pattern: "GET /{$}", Handler: page})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/"); code != 200 || body != "hello page" {
		t.Errorf("GET /: %d %q", code, body)
	}
	if code, body := get("/debug/vars"); code != 200 || !strings.Contains(body, "memstats") {
		t.Errorf("GET /debug/vars: %d", code)
	}
	if code, _ := get("/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", code)
	}
	if _, err := Serve(addr, nil); err == nil || !strings.Contains(err.Error(), "admin listener "+addr) {
		t.Errorf("address in use: %v", err)
	}
}

func TestMetricsPage(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "dfs_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	addr, err := Serve("127.0.0.1:0", nil, Metrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "\ndfs_test_things_total 3\n") {
		t.Errorf("GET /metrics: %d\n%s", resp.StatusCode, b)
	}
}
