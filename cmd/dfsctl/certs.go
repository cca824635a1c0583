package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"dfs/mtls"
)

// runCerts is `dfsctl certs init|issue`: a cluster CA and node
// certificates for mutual TLS (docs/operations.md, "TLS").
func runCerts(args []string) error {
	if len(args) == 0 {
		return usageError("certs: want init -dir DIR, or issue -dir DIR -name NAME -hosts HOST,...")
	}
	sub := args[0]
	fl := flag.NewFlagSet("certs "+sub, flag.ContinueOnError)
	dir := fl.String("dir", "", "directory of the CA (ca.crt, ca.key) and the node certificates")
	force := fl.Bool("force", false, "overwrite existing files")
	var name, hosts *string
	var days *int
	switch sub {
	case "init":
	case "issue":
		name = fl.String("name", "", "node name: the files are DIR/NAME.crt and DIR/NAME.key")
		hosts = fl.String("hosts", "", "comma-separated host names and IP addresses the node is reached at (its certificate's SANs)")
		days = fl.Int("days", mtls.DefaultNodeDays, "days the certificate is valid")
	default:
		return usageError(fmt.Sprintf("certs: unknown subcommand %q (want init or issue)", sub))
	}
	if err := fl.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError(err.Error())
	}
	if fl.NArg() > 0 {
		return usageError(fmt.Sprintf("certs %s: unexpected argument %q", sub, fl.Arg(0)))
	}
	if *dir == "" {
		return usageError(fmt.Sprintf("certs %s: -dir DIR is required", sub))
	}
	if sub == "init" {
		if err := mtls.CreateCA(*dir, *force); err != nil {
			return err
		}
		fmt.Printf("created CA %s (key %s; keep it off the cluster's machines)\n",
			filepath.Join(*dir, mtls.CACert), filepath.Join(*dir, mtls.CAKey))
		return nil
	}
	if *name == "" {
		return usageError("certs issue: -name NAME is required")
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	if err := mtls.Issue(*dir, *name, hs, *days, *force); err != nil {
		return err
	}
	fmt.Printf("issued %s and %s for %s, valid %d days\n",
		filepath.Join(*dir, *name+".crt"), filepath.Join(*dir, *name+".key"), strings.Join(hs, ","), *days)
	return nil
}
