package mtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Files of a certificate directory: the CA's pair, and NAME.crt, NAME.key
// for each node.
const (
	CACert = "ca.crt"
	CAKey  = "ca.key"
)

// ErrExists is returned when a file to create exists and force is off.
var ErrExists = errors.New("exists (use -force to overwrite)")

// CAValidity is how long a CA made by CreateCA is valid.
const CAValidity = 10 * 365 * 24 * time.Hour

// DefaultNodeDays is how many days a node certificate is valid by default.
const DefaultNodeDays = 825

// CreateCA makes a new cluster CA in dir (created if needed): an ECDSA
// P-256 key in ca.key (mode 0600) and a self-signed certificate valid for
// ten years in ca.crt. Existing files are an error unless force is set.
func CreateCA(dir string, force bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	crt, key := filepath.Join(dir, CACert), filepath.Join(dir, CAKey)
	if err := checkNew(force, crt, key); err != nil {
		return err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "dfs cluster CA", Organization: []string{"dfs"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return err
	}
	return writePair(crt, key, der, priv)
}

// Issue makes a node certificate NAME.crt and its key NAME.key (0600) in
// dir, signed by the CA there, valid for days days, usable as both TLS
// server and TLS client, for the host names and IP addresses in hosts
// (its subject alternative names). Existing files are an error unless
// force is set.
func Issue(dir, name string, hosts []string, days int, force bool) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("-name %q: want letters, digits, '.', '_' or '-' (it names the files NAME.crt and NAME.key)", name)
	}
	if name == "ca" {
		return errors.New(`-name "ca" would overwrite the CA's own files`)
	}
	if days <= 0 {
		return fmt.Errorf("-days %d: must be positive", days)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"dfs"}},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if len(hosts) == 0 {
		return errors.New("-hosts: need at least one host name or IP address the node is reached at")
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if validHost.MatchString(h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		} else {
			return fmt.Errorf("-hosts: %q is neither an IP address nor a host name", h)
		}
	}
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(time.Duration(days) * 24 * time.Hour)
	if tmpl.NotAfter.After(caCert.NotAfter) {
		return fmt.Errorf("-days %d: the certificate would outlive the CA, which expires %s", days, caCert.NotAfter.Format(time.DateOnly))
	}
	crt, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := checkNew(force, crt, key); err != nil {
		return err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &priv.PublicKey, caKey)
	if err != nil {
		return err
	}
	return writePair(crt, key, der, priv)
}

var (
	validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	validHost = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)
)

func loadCA(dir string) (*x509.Certificate, any, error) {
	crtFile, keyFile := filepath.Join(dir, CACert), filepath.Join(dir, CAKey)
	crtPEM, err := os.ReadFile(crtFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("no CA in %s: %s missing (create one with dfsctl certs init -dir %s)", dir, CACert, dir)
	}
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	b, _ := pem.Decode(crtPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: not a PEM certificate", crtFile)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", crtFile, err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("%s: not a CA certificate", crtFile)
	}
	k, _ := pem.Decode(keyPEM)
	if k == nil {
		return nil, nil, fmt.Errorf("%s: not a PEM key", keyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(k.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	if pk, ok := key.(*ecdsa.PrivateKey); !ok || !pk.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("%s does not match %s", keyFile, crtFile)
	}
	return cert, key, nil
}

func checkNew(force bool, files ...string) error {
	if force {
		return nil
	}
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("%s %w", f, ErrExists)
		}
	}
	return nil
}

// writePair writes the certificate (0644) and the key (0600), each
// through a temporary file renamed into place, so that a daemon that
// reloads them never reads half a file.
func writePair(crtFile, keyFile string, der []byte, priv *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFile(crtFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}
