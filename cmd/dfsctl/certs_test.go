package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dfs/mtls"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: not a PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertsInitIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := runCerts([]string{"init", "-dir", dir}); err != nil {
		t.Fatal(err)
	}
	if err := runCerts([]string{"issue", "-dir", dir, "-name", "m1", "-hosts", "m1.example.com, 10.0.0.1,::1", "-days", "30"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.key", "m1.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA %v, usage %v", ca.IsCA, ca.KeyUsage)
	}
	if pk, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pk.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", ca.PublicKey)
	}
	if life := ca.NotAfter.Sub(time.Now()); life < 10*364*24*time.Hour || life > 10*366*24*time.Hour {
		t.Errorf("CA valid for %v more, want about 10 years", life)
	}
	node := readCert(t, filepath.Join(dir, "m1.crt"))
	if pk, ok := node.PublicKey.(*ecdsa.PublicKey); !ok || pk.Curve != elliptic.P256() {
		t.Errorf("node key %T, want ECDSA P-256", node.PublicKey)
	}
	if life := node.NotAfter.Sub(time.Now()); life < 29*24*time.Hour || life > 30*24*time.Hour {
		t.Errorf("node certificate valid for %v more, want 30 days", life)
	}
	if node.NotBefore.After(time.Now()) {
		t.Errorf("node certificate not valid before %v", node.NotBefore)
	}
	if !slices.Equal(node.DNSNames, []string{"m1.example.com"}) {
		t.Errorf("DNS SANs %q", node.DNSNames)
	}
	if len(node.IPAddresses) != 2 || !node.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) || !node.IPAddresses[1].Equal(net.ParseIP("::1")) {
		t.Errorf("IP SANs %v", node.IPAddresses)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := node.Verify(x509.VerifyOptions{Roots: roots, DNSName: "m1.example.com", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("chain for usage %v: %v", u, err)
		}
	}
	if _, err := node.Verify(x509.VerifyOptions{Roots: roots, DNSName: "m2.example.com"}); err == nil {
		t.Error("certificate verifies for a host it was not issued for")
	}
	if err := node.VerifyHostname("10.0.0.1"); err != nil {
		t.Errorf("IP SAN: %v", err)
	}
	// The files load as a node identity.
	if _, err := mtls.Load(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "m1.crt"), filepath.Join(dir, "m1.key")); err != nil {
		t.Errorf("Load: %v", err)
	}
}

func TestCertsErrors(t *testing.T) {
	dir := t.TempDir()
	noCA := t.TempDir()
	if err := runCerts([]string{"init", "-dir", dir}); err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err := runCerts([]string{"issue", "-dir", dir, "-name", "c1", "-hosts", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	var ue usageError
	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{nil, true, "want init"},
		{[]string{"frob"}, true, "unknown subcommand"},
		{[]string{"init"}, true, "-dir DIR is required"},
		{[]string{"init", "-dir", dir, "extra"}, true, "unexpected argument"},
		{[]string{"issue", "-dir", dir, "-hosts", "h"}, true, "-name NAME is required"},
		{[]string{"init", "-dir", dir}, false, "exists (use -force"},
		{[]string{"issue", "-dir", dir, "-name", "c1", "-hosts", "127.0.0.1"}, false, "exists (use -force"},
		{[]string{"issue", "-dir", noCA, "-name", "c1", "-hosts", "127.0.0.1"}, false, "no CA in"},
		{[]string{"issue", "-dir", dir, "-name", "c2", "-hosts", "bad host!"}, false, `"bad host!" is neither an IP address nor a host name`},
		{[]string{"issue", "-dir", dir, "-name", "c2", "-hosts", ""}, false, "need at least one host"},
		{[]string{"issue", "-dir", dir, "-name", "../x", "-hosts", "h"}, false, "-name"},
		{[]string{"issue", "-dir", dir, "-name", "ca", "-hosts", "h"}, false, "CA's own files"},
		{[]string{"issue", "-dir", dir, "-name", "c2", "-hosts", "h", "-days", "0"}, false, "-days 0"},
		{[]string{"issue", "-dir", dir, "-name", "c2", "-hosts", "h", "-days", "5000"}, false, "outlive the CA"},
	} {
		err := runCerts(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("certs %q: %v, want an error containing %q", tc.args, err, tc.want)
			continue
		}
		if tc.usage != errors.As(err, &ue) {
			t.Errorf("certs %q: usage error %v, want %v", tc.args, !tc.usage, tc.usage)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "c2.crt")); err == nil {
		t.Error("a refused issue wrote c2.crt")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); string(after) != string(caBefore) {
		t.Error("a refused init changed ca.crt")
	}
	// -force replaces.
	if err := runCerts([]string{"issue", "-dir", dir, "-name", "c1", "-hosts", "c1.local", "-force"}); err != nil {
		t.Fatal(err)
	}
	if c := readCert(t, filepath.Join(dir, "c1.crt")); !slices.Equal(c.DNSNames, []string{"c1.local"}) {
		t.Errorf("after -force, SANs %q", c.DNSNames)
	}
}
