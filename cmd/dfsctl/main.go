// Command dfsctl is the dfs admin tool: cluster status from the master
// leader, file layouts through a mount's dfs.layout attribute, and `dev`,
// which runs a whole local cluster (3 masters, 4 chunkservers, a mount on
// ./mnt) until Ctrl-C.
//
//	dfsctl [-masters ADDR,...] status [-json]
//	dfsctl layout get PATH
//	dfsctl layout set PATH LAYOUT      (replicated:R or ec:K+M[,chunk=BYTES])
//	dfsctl layout convert PATH LAYOUT  (rewrite a file or tree into LAYOUT)
//	dfsctl dev [-dir ./.dfs] [-mnt ./mnt] [-masters 3] [-chunkservers 4] [-- COMMAND...]
//	dfsctl fsck [-json] [-limit N]     exit status 4 when data is at risk
//	dfsctl members list | add ID RAFTADDR [-non-voter] | remove ID
//	dfsctl sessions [-json]            client sessions
//	dfsctl sessions release ID [-yes]  end a session as if it expired
//	dfsctl locks [-json]               held locks and waiting requests
//	dfsctl locks release INODE [-session ID [-owner OWNER]] [-yes]
//	dfsctl chunkservers [list] [-json] chunkservers and their drain state
//	dfsctl chunkservers drain ID [-no-wait] [-json] | undrain ID
//	dfsctl snapshot save FILE [-json]  back up the master state
//	dfsctl certs init -dir DIR         a cluster CA for mutual TLS
//	dfsctl certs issue -dir DIR -name NAME -hosts HOST,... [-days N]
//
// Exit status: 0 done; 1 failed (no leader, an RPC error, not
// confirmed); 2 the command line is wrong (or a force-release without a
// terminal and without -yes); 3 the masters refused (a drain the other
// chunkservers cannot hold, an unknown chunkserver, session or lock);
// 4 fsck found data at risk.
//
// Without -masters, dfsctl uses $DFS_MASTERS, then the masters of the dev
// cluster in ./.dfs. In a TLS cluster give -tls-ca, -tls-cert and
// -tls-key (or $DFS_TLS_CA, $DFS_TLS_CERT, $DFS_TLS_KEY); the dev
// cluster's are found in ./.dfs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"dfs/api"
	"dfs/cluster"
	"dfs/mtls"

	"google.golang.org/grpc"
)

// exitUsage is the status of a command line that cannot be run, which
// scripts can tell apart from failures (1).
const exitUsage = 2

func usage() {
	fmt.Fprint(os.Stderr, `usage: dfsctl [-masters ADDR,...] COMMAND [ARGS]

commands:
  status [-json]             masters, chunkservers and counts, from the leader
  layout get PATH            the layout of a file or directory on a mount
  layout set PATH LAYOUT     set a layout: replicated:R or ec:K+M[,chunk=BYTES]
  layout convert PATH LAYOUT rewrite a file, or every file in a tree, into LAYOUT
  dev [flags] [-- CMD...]    run a local cluster until Ctrl-C (see dfsctl dev -h)
  fsck [-json] [-limit N]    chunks under-replicated, missing, stale or corrupt
                             (exit status 4 when any file's data is at risk)
  members list               the masters' Raft group
  members add ID RAFTADDR    add a master started with -join (-non-voter: no vote)
  members remove ID          remove a master (a dead one, or one being retired)
  sessions [-json]           client sessions: TTL, lease, open files, locks
  sessions release ID        end a session as if it expired (asks; -yes: do not)
  locks [-json]              held locks and waiting lock requests, with paths
  locks release INODE        release the locks on a file (asks; -yes: do not;
                             -session ID, -owner OWNER: only theirs)
  chunkservers [-json]       chunkservers: state, capacity, chunks, heartbeat
  chunkservers drain ID      move every chunk off a server, with progress
                             (-no-wait: return at once)
  chunkservers undrain ID    stop a drain; the server takes chunks again
  snapshot save FILE         back up the master state (restore: dfsmaster -restore)
  certs init -dir DIR        create a cluster CA (DIR/ca.crt, DIR/ca.key) for mutual TLS
  certs issue -dir DIR -name NAME -hosts HOST,IP,... [-days N]
                             a node certificate DIR/NAME.crt, DIR/NAME.key signed by the CA

exit status: 0 done, 1 failed, 2 bad command line, 3 refused by the
masters, 4 fsck found data at risk

flags:
`)
	flag.PrintDefaults()
}

func main() {
	masters := flag.String("masters", "", "master client addresses, comma-separated (default $DFS_MASTERS, else the dev cluster in ./.dfs)")
	jsonOut := flag.Bool("json", false, "print machine-readable JSON")
	tlsFlags := mtls.RegisterFlags(flag.CommandLine)
	flag.Usage = usage
	flag.Parse()
	for env, v := range map[string]*string{"DFS_TLS_CA": tlsFlags.CA, "DFS_TLS_CERT": tlsFlags.Cert, "DFS_TLS_KEY": tlsFlags.Key} {
		if *v == "" {
			*v = os.Getenv(env)
		}
	}
	var err error
	if secure, err = tlsFlags.Load(); err != nil {
		fmt.Fprintf(os.Stderr, "dfsctl: %v\n", err)
		os.Exit(exitUsage)
	}
	if flag.NArg() == 0 {
		usage()
		os.Exit(exitUsage)
	}
	cmd, args := flag.Arg(0), flag.Args()[1:]
	switch cmd {
	case "status":
		err = runStatus(*masters, *jsonOut, args)
	case "layout":
		err = runLayout(args)
	case "dev":
		err = runDev(args)
	case "fsck":
		err = runFsck(*masters, *jsonOut, args)
	case "members":
		err = runMembers(*masters, args)
	case "sessions", "locks":
		switch {
		case len(args) > 0 && args[0] == "release":
			err = runRelease(*masters, cmd, args[1:])
		case cmd == "sessions":
			err = runSessions(*masters, *jsonOut, args)
		default:
			err = runLocks(*masters, *jsonOut, args)
		}
	case "chunkservers":
		err = runChunkservers(*masters, *jsonOut, args)
	case "snapshot":
		err = runSnapshot(*masters, *jsonOut, args)
	case "certs":
		err = runCerts(args)
	case "help", "-h", "--help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "dfsctl: unknown command %q\n", cmd)
		usage()
		os.Exit(exitUsage)
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "dfsctl: %v\n", err)
			os.Exit(exitUsage)
		}
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintf(os.Stderr, "dfsctl: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a command line that cannot be run.
type usageError string

func (e usageError) Error() string { return string(e) }

// exitError carries a child's exit status through to dfsctl's own.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// secure is the identity dfsctl's calls present: from -tls-* or
// $DFS_TLS_*, else the dev cluster's (masterAddrs); nil is plaintext.
var secure *mtls.Identity

// dialOption secures a connection to the cluster as secure says.
func dialOption() grpc.DialOption { return api.Credentials(secure.ClientConfig()) }

// masterAddrs resolves the -masters default. For the dev cluster in
// ./.dfs it also takes that cluster's TLS client identity, if it has one
// and no -tls-* flags were given.
func masterAddrs(flagValue string) ([]string, error) {
	v := flagValue
	if v == "" {
		v = os.Getenv("DFS_MASTERS")
	}
	if v == "" {
		addrs, err := cluster.MasterAddrsIn(defaultDevDir)
		if err != nil {
			return nil, usageError("no masters given: use -masters ADDR,... or $DFS_MASTERS, or start `dfsctl dev` here")
		}
		if secure == nil {
			if secure, err = cluster.ClientTLSIn(defaultDevDir); err != nil {
				return nil, fmt.Errorf("dev cluster in %s: %w", defaultDevDir, err)
			}
		}
		return addrs, nil
	}
	var addrs []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, usageError("-masters: no addresses")
	}
	return addrs, nil
}

// parseArgs parses fl's flags wherever they appear among args, so that
// `chunkservers drain ID -no-wait` works as well as `-no-wait ID`, and
// returns the other arguments in order.
func parseArgs(fl *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, usageError(err.Error())
		}
		if fl.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fl.Arg(0))
		args = fl.Args()[1:]
	}
}
