package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// A proc is one dfs process: its command line is fixed when the cluster is
// laid out, so that restarting it reuses the same data directory and ports.
type proc struct {
	name string   // m1, c2, mount1: also the log file's name
	bin  string   // path of the binary
	args []string // arguments, without the binary
	// prefix, if set, is a command that runs the binary (nsenter ...).
	prefix []string
	log    string // log file, appended to across restarts
	// deathSig is what the kernel sends the process if the cluster's owner
	// dies without stopping it (a test that times out, a dfsctl dev that is
	// killed): daemons are killed, mounts get SIGTERM so they unmount.
	deathSig syscall.Signal

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	err  error         // exit status, valid after done is closed
}

func (p *proc) start() error {
	if p.running() {
		return fmt.Errorf("%s is already running", p.name)
	}
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "==== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(p.args, " "))
	argv := append(append(append([]string{}, p.prefix...), p.bin), p.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: p.deathSig}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	lf.Close() // the child holds its own copy
	p.cmd = cmd
	p.done = make(chan struct{})
	p.err = nil
	go func(done chan struct{}) {
		p.err = cmd.Wait()
		close(done)
	}(p.done)
	return nil
}

// running reports whether the process was started and has not exited.
func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exited reports whether the process was started and then exited, with
// how it exited.
func (p *proc) exited() (bool, error) {
	if p.done == nil {
		return false, nil
	}
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends sig and waits up to grace for the process to exit, then
// kills it. It returns whether the process had to be killed.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) (killed bool) {
	if !p.running() {
		return false
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
	}
	p.cmd.Process.Kill()
	<-p.done
	return true
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() {
	if p.running() {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// describe says how the process ended, with the tail of its log, for
// errors that must explain why a cluster did not come up.
func (p *proc) describe() string {
	state := "running"
	if ok, err := p.exited(); ok {
		state = fmt.Sprintf("exited (%v)", err)
	} else if p.done == nil {
		state = "not started"
	}
	return fmt.Sprintf("%s %s; log %s ends:\n%s", p.name, state, p.log, indent(p.tail(15)))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
