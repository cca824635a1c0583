package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"dfs/api"
	"dfs/mtls"

	"google.golang.org/grpc"
)

// ClientCert names the certificate the harness (and dfsctl, for a dev
// cluster) uses in a TLS cluster's certificate directory.
const ClientCert = "client"

// makeCerts makes the CA and every process's certificate under lf.TLS,
// keeping those already there, loads the harness's own identity and
// returns the TLS flags of each process.
func (c *Cluster) makeCerts(lf layoutFile) (func(name string) []string, error) {
	dir := lf.TLS
	if _, err := os.Stat(filepath.Join(dir, mtls.CACert)); errors.Is(err, os.ErrNotExist) {
		if err := mtls.CreateCA(dir, false); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	names := []string{ClientCert}
	for _, m := range lf.Masters {
		names = append(names, m.ID)
	}
	for i := range lf.ChunkServers {
		names = append(names, fmt.Sprintf("c%d", i+1))
	}
	for i := range c.cfg.Mounts {
		names = append(names, fmt.Sprintf("mount%d", i+1))
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dir, name+".crt")); err == nil {
			continue
		}
		hosts := []string{"127.0.0.1", "localhost"}
		if c.cfg.Host != nil && c.cfg.Host(name) != "127.0.0.1" {
			hosts = append(hosts, c.cfg.Host(name))
		}
		if err := mtls.Issue(dir, name, hosts, mtls.DefaultNodeDays, false); err != nil {
			return nil, fmt.Errorf("cluster: certificate for %s: %w", name, err)
		}
	}
	id, err := loadCert(dir, ClientCert)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.tls = id
	return func(name string) []string {
		return []string{"-tls-ca", filepath.Join(dir, mtls.CACert),
			"-tls-cert", filepath.Join(dir, name+".crt"), "-tls-key", filepath.Join(dir, name+".key")}
	}, nil
}

func loadCert(dir, name string) (*mtls.Identity, error) {
	return mtls.Load(filepath.Join(dir, mtls.CACert), filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
}

// DialOption is the transport security of the harness's calls to this
// cluster's servers: mutual TLS with the client certificate in a TLS
// cluster, plaintext otherwise. Pass it to AskMaster, LeaderStatus or
// grpc.NewClient.
func (c *Cluster) DialOption() grpc.DialOption { return api.Credentials(c.tls.ClientConfig()) }

// TLS returns the harness's client identity, nil in a plaintext cluster.
func (c *Cluster) TLS() *mtls.Identity { return c.tls }

// TLSDir returns the certificate directory of a TLS cluster (CA and one
// certificate per process, NAME.crt and NAME.key), "" for a plaintext one.
func (c *Cluster) TLSDir() string {
	if !c.cfg.TLS {
		return ""
	}
	return filepath.Join(c.cfg.Dir, "tls")
}

// ClientTLSIn returns the client identity of the cluster whose base
// directory is dir, as recorded in its cluster.json: nil for a plaintext
// cluster (dfsctl uses it for `dfsctl dev -tls`).
func ClientTLSIn(dir string) (*mtls.Identity, error) {
	lf, err := readLayout(dir)
	if err != nil || lf.TLS == "" {
		return nil, err
	}
	return loadCert(lf.TLS, ClientCert)
}
