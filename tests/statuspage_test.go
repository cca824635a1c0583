package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"dfs/cluster"
	"dfs/statuspage/htmlcheck"

	"golang.org/x/net/html"
)

// Screenshot size: the browser window.
const shotW, shotH = 1280, 1024

// TestStatusPage boots a cluster whose masters serve the status page,
// reads the leader's and a follower's page over HTTP, checks their
// content, stops a chunkserver and sees the page report it, and renders
// the page in headless Chromium.
func TestStatusPage(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: `make deps` installs it (Debian package chromium)")
	}
	// A capacity of 1 GiB, well below the disk's, keeps the page's
	// low-space warning off on a machine with a fuller disk.
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 3, Mounts: 1, Zones: []string{"za", "zb", "zc"}, ChunkCapacity: 1 << 30,
		ExtraMasterArgs: []string{"-debug-addr", "127.0.0.1:0", "-server-dead-after", "3s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A file with data, held open and flock'ed by the mount.
	path := filepath.Join(c.MountDir(0), "held")
	if err := os.WriteFile(path, make([]byte, 100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Each master reports its admin listener's address in Status.
	admins := make([]string, 3)
	ids := make([]string, 3)
	for i, addr := range c.MasterAddrs() {
		st, err := cluster.AskMaster(ctx, addr)
		if err != nil {
			t.Fatalf("status of master %d: %v", i, err)
		}
		admins[i], ids[i] = st.AdminAddr, st.SelfId
		if admins[i] == "" {
			t.Fatalf("master %s reports no admin address", ids[i])
		}
	}
	leaderURL := "http://" + admins[leader] + "/status"

	// The leader's page, once every master has registered and answers.
	doc := waitPage(t, leaderURL, "a healthy cluster", func(doc *html.Node) string {
		if h := htmlcheck.Text(htmlcheck.ByID(doc, "health")); h != "cluster health: ok" {
			return h + ": " + htmlcheck.Text(htmlcheck.ByID(doc, "reasons"))
		}
		return ""
	})
	masters := rows(t, doc, "masters")
	if len(masters) != 3 {
		t.Fatalf("masters table: %q", masters)
	}
	for _, r := range masters {
		if role := r[3]; (role == "Leader") != (r[0] == ids[leader]) || r[5] != "yes" {
			t.Errorf("master row %q (leader is %s)", r, ids[leader])
		}
	}
	servers := rows(t, doc, "chunkservers")
	var zones []string
	for _, r := range servers {
		zones = append(zones, r[2])
		if r[8] != "yes" || r[3] != "1.0 GiB" || !strings.HasSuffix(r[9], "ago") {
			t.Errorf("chunkserver row %q", r)
		}
	}
	if slices.Sort(zones); !slices.Equal(zones, []string{"za", "zb", "zc"}) {
		t.Errorf("chunkserver zones %q", zones)
	}
	if h := rows(t, doc, "chunk-health"); h[0][0] == "0" || h[0][1] != "0" || h[0][3] != "0" {
		t.Errorf("chunk health %q", h)
	}
	locks := rows(t, doc, "locks")
	if len(locks) != 1 || !strings.HasPrefix(locks[0][0], "/held ") || locks[0][1] != "FLOCK" || locks[0][2] != "WRITE" || locks[0][7] != "held" {
		t.Errorf("locks table %q", locks)
	}
	if sessions := rows(t, doc, "sessions"); len(sessions) != 1 || !strings.HasSuffix(sessions[0][1], c.MountDir(0)) || sessions[0][5] != "1" {
		t.Errorf("sessions table %q: want the mount's session holding one lock", sessions)
	}
	shot(t, browser, leaderURL, "ok", [3]uint8{0x2e, 0x7d, 0x32})

	// dfsctl lists the same sessions and locks.
	var jl []struct {
		Path    string
		Waiting bool
		Lock    struct{ Kind, Type string }
	}
	if out, code := dfsctl(t, c, "locks", "-json"); code != 0 || json.Unmarshal([]byte(out), &jl) != nil ||
		len(jl) != 1 || jl[0].Path != "/held" || jl[0].Waiting || jl[0].Lock.Type != "WRITE" || jl[0].Lock.Kind != "FLOCK" {
		t.Errorf("dfsctl locks -json: exit %d, %q", code, out)
	}
	if out, code := dfsctl(t, c, "sessions"); code != 0 || !strings.Contains(out, "OPEN FILES") || !strings.Contains(out, c.MountDir(0)) {
		t.Errorf("dfsctl sessions: exit %d, %q", code, out)
	}

	// A follower points to the leader's page.
	follower := (leader + 1) % 3
	fdoc := fetchPage(t, "http://"+admins[follower]+"/")
	if link := htmlcheck.ByID(fdoc, "leader-link"); link == nil || htmlcheck.Attr(link, "href") != leaderURL {
		t.Errorf("follower %s page: banner %q", ids[follower], htmlcheck.Text(htmlcheck.ByID(fdoc, "follower")))
	}
	if htmlcheck.ByID(fdoc, "chunkservers") != nil {
		t.Error("follower page lists chunkservers")
	}

	// A chunkserver stops: its copies are lost to the leader's eyes.
	if err := c.StopChunk(0); err != nil {
		t.Fatal(err)
	}
	waitPage(t, leaderURL, "the stopped chunkserver reported", func(doc *html.Node) string {
		reasons := htmlcheck.Text(htmlcheck.ByID(doc, "reasons"))
		h := rows(t, doc, "chunk-health")
		if !strings.Contains(reasons, "is down") || h[0][1] == "0" || htmlcheck.ByID(doc, "chunk-problems") == nil {
			return fmt.Sprintf("reasons %q, chunk health %q", reasons, h)
		}
		return ""
	})
	shot(t, browser, leaderURL, "warning", [3]uint8{0xef, 0x8f, 0x00})
}

// fetchPage gets url, wants 200 and well-formed HTML, and parses it.
func fetchPage(t *testing.T, url string) *html.Node {
	t.Helper()
	doc, err := getPage(url)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func getPage(url string) (*html.Node, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	pageTime = time.Since(start)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		return nil, fmt.Errorf("GET %s: %s, %s:\n%s", url, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	doc, err := htmlcheck.Parse(string(body))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v\n%s", url, err, body)
	}
	return doc, nil
}

// pageTime is how long the last page took to fetch (for the log).
var pageTime time.Duration

// waitPage fetches url until check finds nothing wrong ("") or 30 s
// pass, and returns the last page.
func waitPage(t *testing.T, url, what string, check func(*html.Node) string) *html.Node {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		doc := fetchPage(t, url)
		wrong := check(doc)
		if wrong == "" {
			return doc
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s on %s: %s", what, url, wrong)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rows returns the data rows of the table with the given id.
func rows(t *testing.T, doc *html.Node, id string) [][]string {
	t.Helper()
	n := htmlcheck.ByID(doc, id)
	if n == nil {
		t.Fatalf("page has no table %q", id)
	}
	return htmlcheck.Rows(n)
}

// shot renders url in headless Chromium and checks the screenshot: a PNG
// of the window's size, not blank, showing the health badge's colour.
func shot(t *testing.T, browser, url, name string, badge [3]uint8) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, name+".png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+out,
		fmt.Sprintf("--window-size=%d,%d", shotW, shotH), url)
	start := time.Now()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, msg)
	}
	t.Logf("page fetched in %v; chromium screenshot %s in %v", pageTime, name, time.Since(start).Round(time.Millisecond))
	fh, err := os.Open(out)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() != shotW || b.Dy() != shotH {
		t.Fatalf("screenshot %s is %v, want %dx%d", name, b, shotW, shotH)
	}
	colours, badgePixels := map[[3]uint8]bool{}, 0
	for y := range shotH {
		for x := range shotW {
			c := rgb(img, x, y)
			colours[c] = true
			if c == badge {
				badgePixels++
			}
		}
	}
	// Text, tables and the badge give a page many colours; a blank or
	// error page has few. The badge is about 170x35 pixels.
	if len(colours) < 20 || badgePixels < 1000 {
		t.Errorf("screenshot %s: %d colours, %d pixels of the %q badge's colour", name, len(colours), badgePixels, name)
	}
	if dst := os.Getenv("DFS_SCREENSHOTS"); dst != "" {
		if b, err := os.ReadFile(out); err == nil {
			os.WriteFile(filepath.Join(dst, "status-"+name+".png"), b, 0o644)
		}
	}
}

func rgb(img image.Image, x, y int) [3]uint8 {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
}
