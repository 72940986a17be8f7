package oci

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver/internal/settings"
	"qnet.dev/qnet/driver/oci/network"
)

// Name is the driver's name.
const Name = "oci"

// Rootfs modes: how a depot gets a writable root filesystem on top of its image.
const (
	// RootfsOverlay mounts an overlay: the image's unpacked root filesystem (shared,
	// never written) as the lower layer, and an upper and work directory of the depot's
	// own. Instant, and costs only what the depot writes.
	RootfsOverlay = "overlay"
	// RootfsCopy copies the image's root filesystem for the depot: for nodes where
	// overlayfs cannot be mounted (no overlay module, an upper directory on a
	// filesystem overlayfs does not take, an unprivileged agent). Slow and costs the
	// image's size per depot.
	RootfsCopy = "copy"
)

// Config configures the oci driver.
type Config struct {
	// Dir is the driver's runtime directory: depots' bundles (depots/), their shims'
	// state and logs (shims/), runc's state (runc/), network namespaces (netns/) and,
	// unless ImageDir says otherwise, unpacked images (images/). It must survive agent
	// restarts.
	Dir string
	// ImageDir holds the unpacked root filesystems of images, one per image, shared
	// by the depots that run it (default Dir/images).
	ImageDir string
	// Images is the node's depot store (required).
	Images Images
	// Runc is the runc binary, a path or a name looked up in PATH (default "runc").
	Runc string
	// ShimBinary, ShimArgs and ShimEnv run the exec driver's shim, which supervises
	// runc for each depot (see exec.Config).
	ShimBinary string
	ShimArgs   []string
	ShimEnv    []string
	// HelperBinary and HelperArgs run HelperMain, the port helper of depots that
	// publish ports (default: ShimBinary, or this program, with ["oci-run"]).
	// HelperEnv is its environment beyond PATH.
	HelperBinary string
	HelperArgs   []string
	HelperEnv    []string
	// Cgroup, when set, is used instead of detecting the node's hierarchy to check the
	// limits runc sets.
	Cgroup *cgroup.Hierarchy
	// CgroupParent is the group under which containers' groups are made (default
	// cgroup.DefaultParent): container <id> runs in <parent>/<id>.
	CgroupParent string
	// RequireLimits makes Start fail with driver.ErrLimitsUnavailable when a depot asks
	// for a limit the node does not enforce.
	RequireLimits bool
	// Network is the containers' bridge and subnet (default: network.DefaultConfig with
	// namespaces under Dir/netns).
	Network *network.Config
	// Rootfs is how a depot's writable root is made: RootfsOverlay, RootfsCopy, or
	// empty for an overlay that falls back to a copy (with a warning) when overlayfs
	// cannot be mounted.
	Rootfs string
	// StartTimeout bounds how long Start waits for a container to run, once its image
	// is unpacked (default 30s).
	StartTimeout time.Duration
	// Logger receives the driver's own logs (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Runc == "" {
		c.Runc = "runc"
	}
	if c.CgroupParent == "" {
		c.CgroupParent = cgroup.DefaultParent
	}
	if c.HelperArgs == nil {
		c.HelperArgs = []string{HelperCommand}
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = defaultStartTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first bad field of c.
func (c Config) Validate() error {
	if err := c.common().Validate(); err != nil {
		return err
	}
	switch {
	case c.Images == nil:
		return errors.New("oci driver: Images is nil: want the node's depot store")
	case c.Rootfs != "" && c.Rootfs != RootfsOverlay && c.Rootfs != RootfsCopy:
		return fmt.Errorf("oci driver: Rootfs %q: want %q, %q or empty (overlay, else copy)", c.Rootfs, RootfsOverlay, RootfsCopy)
	}
	if c.Network != nil {
		if err := c.Network.Validate(); err != nil {
			return fmt.Errorf("oci driver: %w", err)
		}
	}
	return nil
}

// common returns the settings c has alike with the other drivers' Configs.
func (c Config) common() settings.Common {
	return settings.Common{
		Driver: Name, Dir: c.Dir, DirExample: "<data-dir>/oci",
		Cgroup: c.Cgroup, CgroupParent: c.CgroupParent, RequireLimits: c.RequireLimits,
		StartTimeout: c.StartTimeout, DefaultStartTimeout: defaultStartTimeout, Logger: c.Logger,
	}
}

// defaultStartTimeout bounds a start by default, once the image is unpacked.
const defaultStartTimeout = 30 * time.Second

// Services is what the node offers inside each container's network namespace: its
// services' stable addresses (VIP:port) and its DNS server. A container cannot reach
// the node's own loopback, where they answer for the node's processes, so the node
// opens sockets of its own inside the container's namespace instead (see
// network.InNamespace). The driver calls Offer once a container's network is attached
// and before the container runs (and again for a running container it recovers), and
// Withdraw before the network is detached.
type Services interface {
	// Offer starts serving the node's services inside the network namespace of depot
	// id (ep.NetNS) and says what the container is told about them.
	Offer(ctx context.Context, id string, ep network.Endpoint) (Offer, error)
	// Withdraw stops serving depot id's namespace and closes every socket and
	// connection there; it does nothing for a depot not offered.
	Withdraw(id string)
}

// Offer is what a container is told of the node's services in its namespace.
type Offer struct {
	// DNS is where the node's DNS server answers inside the namespace; zero for no
	// DNS. With port 53 it is the container's /etc/resolv.conf nameserver; it is
	// always the container's $QNET_DNS.
	DNS netip.AddrPort
	// Search are the domains the container's resolver tries short names in
	// (NETWORK.qnet, so that "db" finds the service db).
	Search []string
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
