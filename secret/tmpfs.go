package secret

import (
	"fmt"
	"strings"
)

// TmpfsSize is the size limit of the tmpfs MountTmpfs mounts: room for 64 secrets of the
// largest size. tmpfs takes memory only as files are written.
const TmpfsSize = 64 * MaxSize

// FileMode is the mode of the files WriteFile writes: readable by their owner only.
const FileMode = 0o400

// checkFileName reports whether name can name a secret file: one path element that is
// not hidden (WriteFile's temporary files are hidden).
func checkFileName(name string) error {
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("secret file name %s must be 1-255 bytes without '/' or NUL, not starting with '.', like db-password", quote(name))
	}
	return nil
}
