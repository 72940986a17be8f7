package health

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// maxOutput bounds how much of a failing command's output goes into the error.
const maxOutput = 512

// waitDelay is how long Run waits for the output pipes of a command that was killed, or
// that exited while something it started still holds them, before it gives up on them.
const waitDelay = 500 * time.Millisecond

// execCheck passes when its command exits 0 within the timeout.
type execCheck struct {
	argv    []string
	env     []string
	dir     string
	timeout time.Duration
}

func newExecCheck(argv, env []string, dir string, timeout time.Duration) (*execCheck, error) {
	if len(argv) == 0 || strings.TrimSpace(argv[0]) == "" {
		return nil, errors.New("no command given; want a program and its arguments, e.g. [\"/bin/check\", \"--quick\"]")
	}
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("argument %d contains a NUL byte", i)
		}
	}
	return &execCheck{
		argv:    append([]string(nil), argv...),
		env:     append([]string(nil), env...),
		dir:     dir,
		timeout: timeout,
	}, nil
}

// Run implements [Check]. The command runs in a process group of its own, which is
// killed as a whole on timeout and once the command exits, so nothing a check starts
// outlives it.
func (c *execCheck) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	if c.env != nil {
		cmd.Env = c.env
	}
	cmd.Dir = c.dir
	out := &prefixBuffer{max: maxOutput}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("command %q: %w", c.argv, err)
	}
	err := cmd.Wait()
	killProcessGroup(cmd)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("command %q: killed after %v without exiting: %w", c.argv, c.timeout, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if snippet := out.String(); snippet != "" {
			return fmt.Errorf("command %q: %v: %q", c.argv, ee, snippet)
		}
		return fmt.Errorf("command %q: %w", c.argv, ee)
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command exited 0 but left something holding its output open; it was killed.
		return nil
	}
	return fmt.Errorf("command %q: %w", c.argv, err)
}

// prefixBuffer keeps the first max bytes written to it and drops the rest, so a chatty
// check command cannot grow the agent's memory.
type prefixBuffer struct {
	max       int
	buf       []byte
	truncated bool
}

func (b *prefixBuffer) Write(p []byte) (int, error) {
	room := b.max - len(b.buf)
	if room >= len(p) {
		b.buf = append(b.buf, p...)
	} else {
		if room > 0 {
			b.buf = append(b.buf, p[:room]...)
		}
		b.truncated = true
	}
	return len(p), nil
}

func (b *prefixBuffer) String() string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b.buf), "?"))
	if b.truncated {
		s += "..."
	}
	return s
}
