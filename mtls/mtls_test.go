package mtls

import (
	"crypto/tls"
	"flag"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki makes a CA in a temporary directory and issues the named
// certificates for 127.0.0.1.
func pki(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := CreateCA(dir, false); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := Issue(dir, n, []string{"127.0.0.1", "localhost"}, 30, false); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t *testing.T, dir, name string) *Identity {
	t.Helper()
	id, err := Load(filepath.Join(dir, CACert), filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// serve accepts TLS connections with conf and answers each one's first
// byte; it returns the address and a channel of the server-side
// handshake results.
func serve(t *testing.T, conf *tls.Config) (string, chan error) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	results := make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				err := c.(*tls.Conn).Handshake()
				if err == nil {
					var b [1]byte
					if _, err = io.ReadFull(c, b[:]); err == nil {
						_, err = c.Write(b[:])
					}
				}
				results <- err
			}()
		}
	}()
	return ln.Addr().String(), results
}

// roundTrip dials addr with conf and exchanges a byte: with TLS 1.3 a
// refused client certificate shows only when the client reads.
func roundTrip(addr string, conf *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{7}); err != nil {
		return err
	}
	var b [1]byte
	_, err = io.ReadFull(c, b[:])
	return err
}

func TestMutualTLS(t *testing.T) {
	dir := pki(t, "srv", "cli")
	other := pki(t, "srv", "cli")
	addr, results := serve(t, load(t, dir, "srv").ServerConfig())

	good := load(t, dir, "cli").ClientConfig()
	if err := roundTrip(addr, good); err != nil {
		t.Fatalf("client of the same CA: %v", err)
	}
	if err := <-results; err != nil {
		t.Fatalf("server side: %v", err)
	}
	noCert := good.Clone()
	noCert.GetClientCertificate = nil
	foreign := load(t, other, "cli").ClientConfig()
	foreign.RootCAs = good.RootCAs // it trusts our server; we must not trust it
	tls12 := good.Clone()
	tls12.MaxVersion = tls.VersionTLS12
	for name, conf := range map[string]*tls.Config{"no certificate": noCert, "another CA's certificate": foreign, "TLS 1.2": tls12} {
		if err := roundTrip(addr, conf); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := <-results; err == nil {
			t.Errorf("%s: server handshake succeeded", name)
		}
	}
	// A plaintext client.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	if err := <-results; err == nil || strings.Contains(string(b), "\x07") {
		t.Errorf("plaintext client: server err %v, answer %q", err, b)
	}

	// The client checks the server: against the CA, and by host name.
	otherAddr, otherResults := serve(t, load(t, other, "srv").ServerConfig())
	if err := roundTrip(otherAddr, good); err == nil {
		t.Error("client accepted a server of another CA")
	}
	<-otherResults
	wrongHost := good.Clone()
	wrongHost.ServerName = "m9.example.com"
	if err := roundTrip(addr, wrongHost); err == nil {
		t.Error("client accepted a server certificate for another host")
	}
	<-results
}

func TestLoadErrors(t *testing.T) {
	dir := pki(t, "a")
	other := pki(t, "b")
	f := func(d, n string) string { return filepath.Join(d, n) }
	for _, tc := range []struct {
		ca, cert, key, want string
	}{
		{f(dir, "nope.crt"), f(dir, "a.crt"), f(dir, "a.key"), "-tls-ca"},
		{f(dir, "a.key"), f(dir, "a.crt"), f(dir, "a.key"), "no PEM certificate"},
		{f(dir, CACert), f(dir, "a.crt"), f(other, "b.key"), "-tls-key"},
		{f(dir, CACert), f(other, "b.crt"), f(other, "b.key"), "does not verify against -tls-ca"},
		{f(dir, CACert), f(dir, "x.crt"), f(dir, "a.key"), "-tls-cert"},
	} {
		if _, err := Load(tc.ca, tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s, %s, %s): %v, want %q", tc.ca, tc.cert, tc.key, err, tc.want)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fl := RegisterFlags(fs)
	if id, err := fl.Load(); id != nil || err != nil {
		t.Errorf("no flags: %v, %v; want plaintext", id, err)
	}
	fs.Parse([]string{"-tls-ca", f(dir, CACert), "-tls-key", f(dir, "a.key")})
	if _, err := fl.Load(); err == nil || !strings.Contains(err.Error(), "-tls-cert") {
		t.Errorf("-tls-cert missing: %v", err)
	}
	var nilID *Identity
	if nilID.ServerConfig() != nil || nilID.ClientConfig() != nil {
		t.Error("a nil Identity must give nil (plaintext) configs")
	}
}

// A node certificate replaced on disk is used for new connections
// without a restart.
func TestCertificateReload(t *testing.T) {
	dir := pki(t, "srv", "cli")
	addr, results := serve(t, load(t, dir, "srv").ServerConfig())
	cli := load(t, dir, "cli").ClientConfig()
	serial := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, cli)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{1})
		io.ReadFull(c, make([]byte, 1))
		if err := <-results; err != nil {
			t.Fatal(err)
		}
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	if err := Issue(dir, "srv", []string{"127.0.0.1"}, 60, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for serial() == before {
		if time.Now().After(deadline) {
			t.Fatal("the server still presents the old certificate 10s after it was replaced")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A broken replacement is ignored: the last good pair stays in use.
	if err := writeFile(filepath.Join(dir, "srv.crt"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if s := serial(); s == "" {
		t.Fatal("no certificate")
	}
}
