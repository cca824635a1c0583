package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"dfs/api"

	"golang.org/x/sys/unix"
)

// runRelease force-releases a session (`sessions release ID`) or the
// locks on a file (`locks release INODE`), after a confirmation.
func runRelease(mastersFlag, what string, args []string) error {
	fl := flag.NewFlagSet(what+" release", flag.ContinueOnError)
	yes := fl.Bool("yes", false, "do not ask for confirmation")
	session := fl.Uint64("session", 0, "locks release: only this session's locks")
	owner := fl.String("owner", "", "locks release: only this lock owner's locks (the OWNER column of dfsctl locks; with -session)")
	pos, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		if what == "sessions" {
			return usageError("sessions release ID [-yes]: one session id (see dfsctl sessions)")
		}
		return usageError("locks release INODE [-session ID] [-owner OWNER] [-yes]: one inode number (the INO column of dfsctl locks)")
	}
	id, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil || id == 0 {
		return usageError(fmt.Sprintf("%s release: %q is not a positive number", what, pos[0]))
	}
	req := &api.ReleaseLocksRequest{Ino: id, Session: *session}
	var prompt string
	switch what {
	case "sessions":
		if *session != 0 || *owner != "" {
			return usageError("sessions release takes no -session or -owner")
		}
		prompt = fmt.Sprintf("End session %d as if it had expired: its locks are released and its open files closed; the mount's next calls fail until it opens a new session.", id)
	default:
		if *owner != "" {
			o, err := strconv.ParseUint(*owner, 0, 64)
			if err != nil {
				return usageError(fmt.Sprintf("-owner %q: want a number such as 0x1f (the OWNER column of dfsctl locks)", *owner))
			}
			if *session == 0 {
				return usageError("-owner needs -session: lock owners are numbered within a session")
			}
			req.Owner, req.HasOwner = o, true
		}
		prompt = fmt.Sprintf("Release the locks held on inode %d%s; the holders are not told and may go on as if they held them.", id, ownerDesc(req))
	}
	if err := confirm(prompt, *yes); err != nil {
		return err
	}
	addrs, err := masterAddrs(mastersFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var resp *api.ReleaseResponse
	err = onLeader(ctx, addrs, func(ctx context.Context, m api.MasterClient) error {
		var err error
		if what == "sessions" {
			resp, err = m.ReleaseSession(ctx, &api.ReleaseSessionRequest{Session: id})
		} else {
			resp, err = m.ReleaseLocks(ctx, req)
		}
		return err
	})
	if err != nil {
		return refused(err)
	}
	if what == "sessions" {
		fmt.Printf("session %d released\n", id)
	} else {
		fmt.Printf("%d locks on inode %d released\n", resp.Released, id)
	}
	return nil
}

func ownerDesc(r *api.ReleaseLocksRequest) string {
	switch {
	case r.HasOwner:
		return fmt.Sprintf(" by owner %#x of session %d", r.Owner, r.Session)
	case r.Session != 0:
		return fmt.Sprintf(" by session %d", r.Session)
	}
	return " (every holder)"
}

// confirm asks the operator to type yes, unless -yes was given. Without
// a terminal to ask on, it refuses: a script must say -yes.
func confirm(prompt string, yes bool) error {
	if yes {
		return nil
	}
	if !isTerminal(os.Stdin) {
		return usageError("not a terminal to confirm on: add -yes to do this from a script")
	}
	fmt.Printf("%s\nType yes to go on: ", prompt)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("not confirmed; nothing done")
	}
	return nil
}

// isTerminal says whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
