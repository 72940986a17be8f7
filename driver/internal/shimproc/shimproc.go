// Package shimproc starts the supervisors ("shims") of depots: a process per depot that
// runs or watches its workload and outlives the agent. It finds the program they run,
// starts them in a session of their own and reaps them, and ends the ones that will not
// be used.
package shimproc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Binary returns the absolute path of the program that runs the shims: bin, or this
// program (os.Executable) when bin is empty. It must be an executable file.
func Binary(bin string) (string, error) {
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find this program (set the shim binary instead): %w", err)
		}
		bin = self
	}
	p, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	if err := CheckExecutable(p); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return p, nil
}

// CheckExecutable reports why p cannot be executed, or nil. A missing file is
// fs.ErrNotExist.
func CheckExecutable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fs.ErrNotExist
	case err != nil:
		return err
	case fi.IsDir():
		return errors.New("is a directory")
	case !fi.Mode().IsRegular():
		return fmt.Errorf("not a regular file (mode %v)", fi.Mode())
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("not executable (mode %v)", fi.Mode().Perm())
	}
	return nil
}

// NewCommand returns the command that starts shims: bin (see Binary) with args, or with
// defaultArgs when args is nil, and env added to the agent's environment.
func NewCommand(bin string, args, defaultArgs, env []string) (Command, error) {
	path, err := Binary(bin)
	if err != nil {
		return Command{}, err
	}
	if args == nil {
		args = defaultArgs
	}
	return Command{Path: path, Args: args, Env: env}, nil
}

// Command is how a driver starts its shims.
type Command struct {
	// Path is the program (see Binary); Args follow it on every shim's command line.
	Path string
	Args []string
	// Env is added to the agent's environment for the shims.
	Env []string
}

// Proc is a shim this agent started. It is the agent's child until the agent exits,
// and reaped by a goroutine that ends with it.
type Proc struct {
	Cmd *osexec.Cmd
	// Exited is closed once the shim has exited and was reaped.
	Exited chan struct{}
}

// Start starts a shim with args after the command's own, files as its file descriptors
// from 3 on, and its output to out (nil: nowhere). The shim runs in "/" and in a session
// of its own: no signal for the agent's terminal or process group reaches it, and it
// lives on when the agent exits. Start closes files, the shim's ends of its pipes to the
// agent, so that the agent sees the shim's end as the pipes' end.
func (c Command) Start(args []string, files []*os.File, out *os.File) (*Proc, error) {
	cmd := &osexec.Cmd{
		Path:        c.Path,
		Args:        append(append([]string{c.Path}, c.Args...), args...),
		Env:         append(os.Environ(), c.Env...),
		Dir:         "/",
		ExtraFiles:  files,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	err := cmd.Start()
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("start shim %s: %w", c.Path, err)
	}
	p := &Proc{Cmd: cmd, Exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.Exited)
	}()
	return p, nil
}

// Kill kills the shim and waits until it was reaped.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	<-p.Exited
}

// discardGrace is how long a shim that will not be used gets to exit on its own.
const discardGrace = time.Second

// Discard waits for a shim that will not be used to exit, which a real one does at once
// when the caller has closed its end of the connection to it; one that does not is
// killed.
func (p *Proc) Discard() {
	t := time.NewTimer(discardGrace)
	defer t.Stop()
	select {
	case <-p.Exited:
	case <-t.C:
		p.Kill()
	}
}

// Gone reports whether the shim has exited.
func (p *Proc) Gone() bool {
	select {
	case <-p.Exited:
		return true
	default:
		return false
	}
}

// LastLine returns the last line of a shim's log file, for an error that says why the
// shim failed.
func LastLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no " + filepath.Base(path) + ": " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[len(lines)-1] == "" {
		return "(" + filepath.Base(path) + " is empty)"
	}
	return lines[len(lines)-1]
}
