// Package mtls is how dfs processes authenticate each other: every
// connection between masters, chunkservers, mounts and dfsctl uses mutual
// TLS 1.3 with certificates issued by the cluster's own CA. Load reads a
// node's CA, certificate and key (the -tls-ca, -tls-cert and -tls-key
// flags) into an Identity, which gives the TLS configurations of servers
// (client certificate required and verified) and of clients (server
// certificate verified against the CA and the dialled host). A nil
// Identity means plaintext, as before TLS existed. certs.go creates the
// CA and node certificates (dfsctl certs, the test cluster).
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

// Identity is a node's certificate and key and the CA it trusts. The
// certificate and key files are read again when they change (checked at
// each new connection), so a renewed node certificate takes effect
// without a restart; a new CA file needs one.
type Identity struct {
	pool *x509.CertPool
	pair *keyPair
}

// Flags are the -tls-ca, -tls-cert and -tls-key flags of one command.
type Flags struct {
	CA, Cert, Key *string
}

// RegisterFlags adds -tls-ca, -tls-cert and -tls-key to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	return &Flags{
		CA:   fs.String("tls-ca", "", "cluster CA certificate (PEM): turns on mutual TLS for every connection (empty: plaintext)"),
		Cert: fs.String("tls-cert", "", "this node's certificate (PEM), issued by the -tls-ca CA (dfsctl certs issue)"),
		Key:  fs.String("tls-key", "", "the private key of -tls-cert (PEM)"),
	}
}

// Load returns the Identity the flags name, or nil (plaintext) when none
// is set. Setting some but not all of them is an error.
func (f *Flags) Load() (*Identity, error) {
	if *f.CA == "" && *f.Cert == "" && *f.Key == "" {
		return nil, nil
	}
	var missing []string
	for _, m := range []struct{ name, val string }{{"-tls-ca", *f.CA}, {"-tls-cert", *f.Cert}, {"-tls-key", *f.Key}} {
		if m.val == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("TLS needs -tls-ca, -tls-cert and -tls-key together; %v not set", missing)
	}
	return Load(*f.CA, *f.Cert, *f.Key)
}

// PlaintextWarning is what a daemon logs at start when it runs without
// TLS.
const PlaintextWarning = "TLS is off (no -tls-ca): connections are neither authenticated nor encrypted; anyone who can reach the ports can read and change the data"

// Load reads the CA certificate(s) in caFile and the node's certificate and
// key, and checks that they fit: the key matches the certificate, the
// certificate is valid now, chains to the CA and may serve as both a TLS
// server and a TLS client. caFile may hold several CA certificates (for a
// CA rotation, the old and the new one).
func Load(caFile, certFile, keyFile string) (*Identity, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", caFile)
	}
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	if err := kp.load(pool, time.Now()); err != nil {
		return nil, err
	}
	return &Identity{pool: pool, pair: kp}, nil
}

// ServerConfig is the TLS configuration of a dfs server: TLS 1.3 only,
// and a client certificate issued by the CA is required. nil for a nil
// Identity.
func (id *Identity) ServerConfig() *tls.Config {
	if id == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  id.pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.pair.current(), nil
		},
	}
}

// ClientConfig is the TLS configuration of a dfs client: TLS 1.3 only,
// the server's certificate verified against the CA (and the host name,
// which the caller or gRPC sets as ServerName), this node's certificate
// presented. nil for a nil Identity.
func (id *Identity) ClientConfig() *tls.Config {
	if id == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    id.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.pair.current(), nil
		},
	}
}

// keyPair is a certificate and key read from files, read again when
// either file changes.
type keyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time // modification times of certFile and keyFile when read
	pool    *x509.CertPool
	checked time.Time
}

// load reads and checks the pair, replacing the current one.
func (kp *keyPair) load(pool *x509.CertPool, now time.Time) error {
	st, err := stamps(kp.certFile, kp.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		return fmt.Errorf("-tls-cert %s, -tls-key %s: %w", kp.certFile, kp.keyFile, err)
	}
	leaf := cert.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:       pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fmt.Errorf("-tls-cert %s does not verify against -tls-ca: %w", kp.certFile, err)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !hasUsage(leaf, u) {
			return fmt.Errorf("-tls-cert %s: not usable as both TLS server and client (issue it with dfsctl certs issue)", kp.certFile)
		}
	}
	kp.mu.Lock()
	defer kp.mu.Unlock()
	kp.cert, kp.stamp, kp.pool = &cert, st, pool
	return nil
}

// current returns the pair, reading the files again if they changed since
// (looked at most once a second). A changed pair that does not load is
// ignored: the old one stays in use, and Load's checks run on the next
// change.
func (kp *keyPair) current() *tls.Certificate {
	kp.mu.Lock()
	cert, stamp, pool := kp.cert, kp.stamp, kp.pool
	now := time.Now()
	fresh := now.Sub(kp.checked) < time.Second
	if !fresh {
		kp.checked = now
	}
	kp.mu.Unlock()
	if fresh {
		return cert
	}
	if st, err := stamps(kp.certFile, kp.keyFile); err == nil && st != stamp {
		if kp.load(pool, now) == nil {
			kp.mu.Lock()
			cert = kp.cert
			kp.mu.Unlock()
		}
	}
	return cert
}

func stamps(certFile, keyFile string) ([2]time.Time, error) {
	var st [2]time.Time
	for i, f := range []struct{ flag, path string }{{"-tls-cert", certFile}, {"-tls-key", keyFile}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return st, fmt.Errorf("%s: %w", f.flag, err)
		}
		st[i] = fi.ModTime()
	}
	return st, nil
}

func hasUsage(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, have := range c.ExtKeyUsage {
		if have == u || have == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
