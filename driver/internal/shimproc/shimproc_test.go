package shimproc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCheckExecutable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "exe"), filepath.Join(dir, "plain")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(plain, []byte("x"), 0o644)
	for _, tc := range []struct {
		path string
		want string // "" for executable
	}{
		{exe, ""},
		{plain, "not executable"},
		{dir, "is a directory"},
		{filepath.Join(dir, "missing"), fs.ErrNotExist.Error()},
	} {
		err := CheckExecutable(tc.path)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckExecutable(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
	if err := CheckExecutable(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat("/dev/null"); err == nil {
		if err := CheckExecutable("/dev/null"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("CheckExecutable(/dev/null) = %v", err)
		}
	}
}

func TestBinary(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Skip("os.Executable:", err)
	}
	if got, err := Binary(""); err != nil || !filepath.IsAbs(got) || got != self {
		t.Errorf(`Binary("") = %q, %v; want this program %s`, got, err, self)
	}
	if _, err := Binary("/nonexistent/qnet"); err == nil || !strings.Contains(err.Error(), "/nonexistent/qnet") {
		t.Errorf("Binary of a missing file = %v, want an error naming it", err)
	}
	cmd, err := NewCommand(self, nil, []string{"shim"}, []string{"A=1"})
	if err != nil || cmd.Path != self || len(cmd.Args) != 1 || cmd.Args[0] != "shim" || cmd.Env[0] != "A=1" {
		t.Errorf("NewCommand with default args = %+v, %v", cmd, err)
	}
	if cmd, _ := NewCommand(self, []string{}, []string{"shim"}, nil); len(cmd.Args) != 0 {
		t.Errorf("NewCommand with empty args took the defaults: %+v", cmd)
	}
}

func needSh(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
}

// TestStart: a shim gets its arguments, environment, working directory, files from fd 3
// and a session of its own, and its output goes to out.
func TestStart(t *testing.T) {
	t.Parallel()
	needSh(t)
	dir := t.TempDir()
	outPath := filepath.Join(dir, "out")
	out, _ := os.Create(outPath)
	r, w, _ := os.Pipe()
	defer r.Close()
	script := `echo "$0 $QNET_SHIMPROC_TEST $(pwd)"; ps -o sid= -p $$ 2>/dev/null || echo nops; echo from-fd3 >&3`
	c := Command{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"QNET_SHIMPROC_TEST=yes"}}
	p, err := c.Start([]string{"arg1"}, []*os.File{w}, out)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited:
	case <-time.After(20 * time.Second):
		t.Fatal("shim did not exit")
	}
	if !p.Gone() {
		t.Error("Gone is false after Exited closed")
	}
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "from-fd3\n" {
		t.Errorf("fd 3 carried %q", buf[:n])
	}
	data, _ := os.ReadFile(outPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 || lines[0] != "arg1 yes /" {
		t.Fatalf("shim output %q", data)
	}
	if sid := strings.TrimSpace(lines[1]); sid != "nops" && sid != strconv.Itoa(p.Cmd.Process.Pid) {
		t.Errorf("shim's session %s, want its own (%d)", sid, p.Cmd.Process.Pid)
	}
	// Start closed the agent's copy of the file it handed over.
	if err := w.Close(); err == nil || !errors.Is(err, os.ErrClosed) {
		t.Errorf("the file handed to the shim is still open in the agent: %v", err)
	}
}

func TestStartFails(t *testing.T) {
	t.Parallel()
	c := Command{Path: filepath.Join(t.TempDir(), "missing")}
	f, _ := os.Open(os.DevNull)
	if _, err := c.Start(nil, []*os.File{f}, nil); err == nil || !strings.Contains(err.Error(), "start shim") {
		t.Errorf("Start of a missing program = %v", err)
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Error("Start did not close the files when it failed")
	}
}

// TestDiscard: a shim that exits when its pipe closes is waited for; one that does not
// is killed after the grace.
func TestDiscard(t *testing.T) {
	t.Parallel()
	needSh(t)
	r, w, _ := os.Pipe()
	polite, err := Command{Path: "/bin/sh", Args: []string{"-c", "read x <&3"}}.Start(nil, []*os.File{r}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	t0 := time.Now()
	polite.Discard()
	if !polite.Gone() || time.Since(t0) >= discardGrace {
		t.Errorf("a shim that exits on end of file took %v to discard", time.Since(t0))
	}
	stubborn, err := Command{Path: "/bin/sh", Args: []string{"-c", "exec sleep 100"}}.Start(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stubborn.Discard()
	ws, _ := stubborn.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !stubborn.Gone() || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("a shim that does not exit: %v, want killed", stubborn.Cmd.ProcessState)
	}
}

func TestLastLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "shim.log")
	if got := LastLine(p); !strings.HasPrefix(got, "(no shim.log: ") {
		t.Errorf("LastLine of a missing log = %q", got)
	}
	os.WriteFile(p, nil, 0o600)
	if got := LastLine(p); got != "(shim.log is empty)" {
		t.Errorf("LastLine of an empty log = %q", got)
	}
	os.WriteFile(p, []byte("starting\nexec: no such file\n\n"), 0o600)
	if got := LastLine(p); got != "exec: no such file" {
		t.Errorf("LastLine = %q", got)
	}
}
