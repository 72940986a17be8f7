package depot

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// The reference grammar of Docker's distribution/reference, which OCI tools share:
// [domain[:port]/]path[/path...][:tag].
var namePattern = func() *regexp.Regexp {
	const (
		domainComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
		domain          = domainComponent + `(?:\.` + domainComponent + `)*(?::[0-9]+)?`
		pathComponent   = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
		tag             = `[\w][\w.-]{0,127}`
	)
	return regexp.MustCompile(`^(?:` + domain + `/)?` + pathComponent + `(?:/` + pathComponent + `)*(?::` + tag + `)?$`)
}()

// MaxNameLen bounds a name, as Docker bounds a repository name.
const MaxNameLen = 255

// checkName refuses what is not a valid image name.
func checkName(n string) error {
	switch {
	case n == "":
		return errors.New("image name is empty: want a name such as web:1.2 or registry.example:5000/team/web:1.2")
	case len(n) > MaxNameLen:
		return fmt.Errorf("image name %.40q… is %d characters: at most %d", n, len(n), MaxNameLen)
	case strings.HasPrefix(n, digestPrefix) || n == "sha256":
		return fmt.Errorf("image name %q reads as a digest: a name is repository[:tag] with a repository other than sha256, such as web:1.2", n)
	case strings.Contains(n, "@"):
		return fmt.Errorf("image name %q contains a digest (@): a name is repository[:tag], such as web:1.2", n)
	case !namePattern.MatchString(n):
		return fmt.Errorf("image name %q is not valid: want [registry[:port]/]repository[:tag] with a lowercase repository of [a-z0-9._-/] and a tag of [A-Za-z0-9_.-], such as web:1.2", n)
	}
	return nil
}

// normalizeName checks n and gives it the tag "latest" when it has none, as Docker does.
func normalizeName(n string) (string, error) {
	if err := checkName(n); err != nil {
		return "", err
	}
	if !hasTag(n) {
		n += ":latest"
	}
	return n, nil
}

func hasTag(n string) bool {
	return strings.Contains(n[strings.LastIndex(n, "/")+1:], ":")
}

// canonical is the fully qualified form of a name ("web" and
// "index.docker.io/library/web:latest" are one name), or "" if it has none.
func canonical(n string) string {
	t, err := name.NewTag(n)
	if err != nil {
		return ""
	}
	return t.Name()
}

// Resolve returns the image ref names: a digest ("sha256:…"), a name given here by an
// import, pull, build or Tag ("web:1.2"; "web" means "web:latest"), a reference with a
// digest ("registry/x@sha256:…"), or a unique prefix of at least 6 hex digits of an
// image digest, as `docker` accepts image IDs.
func (s *Store) Resolve(ref string) (Digest, error) {
	d, _, err := s.resolve(ref)
	return d, err
}

// resolve also returns the name ref matched, if it matched a name.
func (s *Store) resolve(ref string) (Digest, string, error) {
	if ref == "" {
		return "", "", errors.New("image reference is empty: want a name (web:1.2) or a digest (sha256:…)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasPrefix(ref, digestPrefix) && len(ref) == len(digestPrefix)+64 {
		d, err := ParseDigest(ref)
		if err != nil {
			return "", "", err
		}
		if _, ok := s.images[d]; !ok {
			return "", "", fmt.Errorf("no image %s in the depot store: %w", d, ErrNotFound)
		}
		return d, "", nil
	}
	if _, dig, ok := strings.Cut(ref, "@"); ok {
		d, err := ParseDigest(dig)
		if err != nil {
			return "", "", fmt.Errorf("image reference %q: %w", ref, err)
		}
		if _, ok := s.images[d]; !ok {
			return "", "", fmt.Errorf("no image %s in the depot store: %w", d, ErrNotFound)
		}
		return d, "", nil
	}
	if d, ok := s.names[ref]; ok {
		return d, ref, nil
	}
	if !hasTag(ref) {
		if d, ok := s.names[ref+":latest"]; ok {
			return d, ref + ":latest", nil
		}
	}
	if c := canonical(ref); c != "" {
		for n, d := range s.names {
			if canonical(n) == c {
				return d, n, nil
			}
		}
	}
	if h := strings.TrimPrefix(ref, digestPrefix); len(h) >= 6 && isHex(h) {
		var found []Digest
		for d := range s.images {
			if strings.HasPrefix(d.Hex(), h) {
				found = append(found, d)
			}
		}
		switch len(found) {
		case 1:
			return found[0], "", nil
		case 0:
		default:
			sort.Slice(found, func(i, j int) bool { return found[i] < found[j] })
			return "", "", fmt.Errorf("image reference %q is ambiguous: it begins %d image digests (%s, …): give more digits", ref, len(found), found[0])
		}
	}
	return "", "", fmt.Errorf("no image %q in the depot store (import, pull or build it first): %w", ref, ErrNotFound)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Names returns the names of image d, sorted.
func (s *Store) Names(d Digest) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.namesByImageLocked()[d]
}

// Tag gives image d the name n (moving n from another image if it had it).
func (s *Store) Tag(n string, d Digest) error {
	n, err := normalizeName(n)
	if err != nil {
		return err
	}
	if _, err := ParseDigest(string(d)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.images[d]; !ok {
		return fmt.Errorf("tag %s: no image %s in the depot store: %w", n, d, ErrNotFound)
	}
	if s.names[n] == d {
		return nil
	}
	old, had := s.names[n]
	s.names[n] = d
	if err := s.saveNamesLocked(); err != nil {
		if had {
			s.names[n] = old
		} else {
			delete(s.names, n)
		}
		return err
	}
	return nil
}

// Untag removes the name n. The image stays (see Remove and GC).
func (s *Store) Untag(n string) error {
	n, err := normalizeName(n)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.names[n]
	if !ok {
		return fmt.Errorf("untag: no name %q in the depot store: %w", n, ErrNotFound)
	}
	delete(s.names, n)
	if err := s.saveNamesLocked(); err != nil {
		s.names[n] = d
		return err
	}
	return nil
}

func (s *Store) saveNamesLocked() error {
	b, err := json.MarshalIndent(namesFile{Names: s.names}, "", "  ")
	if err != nil {
		return err
	}
	if err := s.writeFileAtomic(s.namesPath(), append(b, '\n')); err != nil {
		return fmt.Errorf("depot store: saving names: %w", err)
	}
	return nil
}
