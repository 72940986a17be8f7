package depot

import (
	"fmt"
	"regexp"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Platform is an OS and CPU architecture in Go's and OCI's names ("linux", "arm64"),
// with an optional variant ("v7" for 32-bit ARM).
type Platform struct {
	OS      string
	Arch    string
	Variant string
}

var platformPart = regexp.MustCompile(`^[a-z0-9_.-]+$`)

// ParsePlatform parses "os/arch" or "os/arch/variant", such as "linux/arm64" or
// "linux/arm/v7".
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant, such as linux/arm64 or linux/arm/v7", s)
	}
	for _, p := range parts {
		if !platformPart.MatchString(p) {
			return Platform{}, fmt.Errorf("platform %q: %q is not an OS, architecture or variant name: want lowercase letters and digits, such as linux/arm64", s, p)
		}
	}
	p := Platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// DefaultPlatform is the platform of this node: linux and the architecture QNet was
// built for.
func DefaultPlatform() Platform { return Platform{OS: "linux", Arch: runtime.GOARCH} }

// String returns "os/arch" or "os/arch/variant".
func (p Platform) String() string {
	if p.Variant != "" {
		return p.OS + "/" + p.Arch + "/" + p.Variant
	}
	return p.OS + "/" + p.Arch
}

// Matches reports whether an image of platform img can serve a request for p. The
// variant counts only when both give one (arm64's "v8" is its only variant).
func (p Platform) Matches(img Platform) bool {
	if p.OS != img.OS || p.Arch != img.Arch {
		return false
	}
	pv, iv := normVariant(p), normVariant(img)
	return pv == "" || iv == "" || pv == iv
}

func normVariant(p Platform) string {
	if p.Arch == "arm64" && p.Variant == "v8" {
		return ""
	}
	return p.Variant
}

func fromV1(p *v1.Platform) Platform {
	if p == nil {
		return Platform{}
	}
	return Platform{OS: p.OS, Arch: p.Architecture, Variant: p.Variant}
}

// chooseManifest picks the manifest of one platform from an image index. want is the
// platform asked for; explicit says whether it was asked for (a Pull always asks, an
// Import only when given WithPlatform). When nothing was asked, an index that holds the
// node's platform gives it, and an index of a single platform gives that one.
func chooseManifest(idx *v1.IndexManifest, want Platform, explicit bool) (v1.Descriptor, error) {
	var images []v1.Descriptor
	var have []string
	for _, m := range idx.Manifests {
		if !m.MediaType.IsImage() && m.MediaType != "" {
			continue // nested indexes, artifacts
		}
		p := fromV1(m.Platform)
		if p.OS == "unknown" && p.Arch == "unknown" {
			continue // attestations that buildx adds beside the images
		}
		if _, err := ParseDigest(m.Digest.String()); err != nil {
			return v1.Descriptor{}, fmt.Errorf("image index entry %s: %v: %w", m.Digest, err, ErrInvalid)
		}
		images = append(images, m)
		if p.OS != "" {
			have = append(have, p.String())
		}
	}
	if len(images) == 0 {
		return v1.Descriptor{}, fmt.Errorf("image index holds no image manifest: %w", ErrInvalid)
	}
	for _, m := range images {
		if m.Platform != nil && want.Matches(fromV1(m.Platform)) {
			return m, nil
		}
	}
	if !explicit && len(images) == 1 {
		return images[0], nil
	}
	if len(have) == 0 {
		have = []string{"platforms not stated"}
	}
	return v1.Descriptor{}, fmt.Errorf("image index has no image for %s (it has %s): choose one of its platforms: %w", want, strings.Join(have, ", "), ErrPlatform)
}
