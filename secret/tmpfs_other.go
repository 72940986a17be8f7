//go:build !linux

package secret

import (
	"errors"
	"fmt"
	"runtime"
)

func errNoTmpfs(what string) error {
	return fmt.Errorf("%s: %w: secret files on tmpfs need Linux, this is %s; give the secret as an environment variable instead", what, errors.ErrUnsupported, runtime.GOOS)
}

// MountTmpfs mounts a tmpfs for secret files on Linux; here it returns an error.
func MountTmpfs(dir string) error { return errNoTmpfs("mount secret tmpfs at " + dir) }

// UnmountTmpfs unmounts a secret tmpfs on Linux; here it returns an error.
func UnmountTmpfs(dir string) error { return errNoTmpfs("unmount secret tmpfs at " + dir) }

// WriteFile writes a secret file to a tmpfs on Linux; here it returns an error.
func WriteFile(dir, name string, v Value) error {
	if err := checkFileName(name); err != nil {
		return fmt.Errorf("write secret %s: %w", v, err)
	}
	return errNoTmpfs("write secret " + v.String())
}
