package exec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/shimproc"
)

// envValue returns the value of key in env (the last one wins, as for execve).
func envValue(env []string, key string) (string, bool) {
	val, found := "", false
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}

// resolveCommand finds the program of s: a command with a '/' is a path (relative ones
// are taken from s.Dir, or from "/" when it is empty, since that is where the depot
// runs); a bare name is looked up in the PATH of s.Env, or in the agent's PATH when
// s.Env has none. Empty and relative PATH entries are skipped: the depot's directory is
// not a place to find programs by accident.
func resolveCommand(s driver.Spec) (string, error) {
	if strings.Contains(s.Command, "/") {
		p := s.Command
		if !filepath.IsAbs(p) {
			base := s.Dir
			if base == "" {
				base = "/"
			}
			p = filepath.Join(base, p)
		}
		if err := shimproc.CheckExecutable(p); err != nil {
			return "", fmt.Errorf("%w: depot %q: command %q: %s", driver.ErrCommandNotFound, s.ID, s.Command, err)
		}
		return p, nil
	}
	pathList, ok := envValue(s.Env, "PATH")
	from := "PATH from spec.env"
	if !ok {
		pathList, from = os.Getenv("PATH"), "the agent's PATH, as spec.env sets none"
	}
	var notExec []string
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, s.Command)
		err := shimproc.CheckExecutable(p)
		if err == nil {
			return p, nil
		}
		if !os.IsNotExist(err) {
			notExec = append(notExec, fmt.Sprintf("%s: %v", p, err))
		}
	}
	msg := fmt.Sprintf("%s: depot %q: %q not found in %q (%s)", driver.ErrCommandNotFound, s.ID, s.Command, pathList, from)
	if len(notExec) > 0 {
		msg += "; found but not usable: " + strings.Join(notExec, ", ")
	}
	return "", &commandError{msg}
}

// commandError carries a message and is driver.ErrCommandNotFound.
type commandError struct{ msg string }

func (e *commandError) Error() string        { return e.msg }
func (e *commandError) Is(target error) bool { return target == driver.ErrCommandNotFound }

// checkDir checks that the working directory of s exists.
func checkDir(s driver.Spec) error {
	if s.Dir == "" {
		return nil
	}
	fi, err := os.Stat(s.Dir)
	switch {
	case os.IsNotExist(err):
		return fmt.Errorf("%w: spec.dir %q of depot %q does not exist: the working directory must exist before the depot starts", driver.ErrBadSpec, s.Dir, s.ID)
	case err != nil:
		return fmt.Errorf("%w: spec.dir %q of depot %q: %v", driver.ErrBadSpec, s.Dir, s.ID, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: spec.dir %q of depot %q is not a directory", driver.ErrBadSpec, s.Dir, s.ID)
	}
	return nil
}
