// Package statefile reads and writes the small files through which the agent and the
// supervisors of its depots share state across restarts of either: JSON records
// (a depot's spec, state and exit) and empty markers (a stop was requested).
//
// Records are replaced atomically (written aside, then renamed), so a reader sees a
// whole file or none, whichever process dies when. There is no fsync: the files matter
// only while the processes they describe can still run, which a machine crash ends
// anyway, and start latency counts.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with v encoded as JSON, atomically. The file is readable by its
// owner alone, whatever the umask: some records are for root's eyes only (the oci
// driver's runtime spec holds the depot's environment until runc has read it).
func Write(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	// A temporary name of its own, so two writers (a supervisor and an agent finishing
	// a lost depot) can never rename each other's half-written file into place.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		// CreateTemp's mode is 0600 less the umask: make it 0600 whatever the umask.
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Read decodes the JSON file path into v. A missing file is an error wrapping
// fs.ErrNotExist.
func Read(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// Touch creates the empty marker file path, if it is not there yet.
func Touch(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("mark %s: %w", filepath.Base(path), err)
	}
	return f.Close()
}

// Exists reports whether path exists.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
