// Package oci is the driver that runs a depot's OCI image as a container, through
// runc.
//
// # How a depot runs
//
// Start takes driver.Spec.Image (the image's digest in the node's depot store and what
// overrides its config) and:
//
//  1. unpacks the image once per node into an image cache (package unpack: layers in
//     order, OCI whiteouts, no entry ever written outside the root), shared read-only
//     by every depot of the image;
//  2. gives the depot its own writable root: an overlay with the image as its lower
//     layer (or, where overlayfs cannot be mounted, a copy, with a warning);
//  3. gives it a network namespace on the node's bridge (package network), with an
//     address, a default route, and its Spec.Ports reachable on the node; and has the
//     node offer its services there (Services, set by SetServices): the services'
//     stable addresses and the node's DNS server answer inside the namespace;
//  4. writes the runtime spec (config.json) from the image config and the spec;
//  5. has the exec driver's shim run "runc run" as the depot's workload, in the
//     foreground: the shim owns the container's stdout and stderr (the same rotated
//     log files as exec depots), waits for runc, and records its exit, whatever
//     becomes of the agent. A depot that publishes ports has the port helper
//     (HelperMain, "qnet oci-run") between the shim and runc, which holds the host
//     ports and forwards them for as long as the container runs.
//
// Start returns once runc has started the container's first process (runc writes its
// PID file then); Handle.PID is that process, in the node's PID namespace.
//
// # What a container gets
//
//   - Args: the image's entrypoint and cmd; Spec.Image.Command replaces the entrypoint
//     (and drops the cmd), Spec.Image.Args replace the cmd.
//   - Env: the image's environment, then Spec.Env, key by key; PATH (DefaultPath) and
//     HOME (from the image's /etc/passwd, else "/") when neither sets them; and
//     QNET_DNS, when the node offers DNS, set to the server's address inside the
//     container (the node's own address is out of the container's reach). Nothing
//     else is added.
//   - User: Spec.Image.User, else the image's, resolved with the image's /etc/passwd
//     and /etc/group (ResolveUser); supplementary groups from /etc/group.
//   - Working directory: Spec.Image.WorkingDir, else the image's, else "/"; created
//     when the image lacks it.
//   - Namespaces: PID, mount, IPC, UTS (host name = the depot ID) and network.
//   - Mounts: /proc, a tmpfs /dev with the standard devices, /dev/pts, /dev/shm,
//     /dev/mqueue, a read-only /sys, and /etc/hosts and /etc/hostname. When the node
//     offers DNS on port 53, a read-only /etc/resolv.conf naming that server (and the
//     network's domain as search domain) replaces the image's; otherwise the image's
//     is kept.
//     Then Spec.Mounts, in order: each a bind mount of its Source (a file or a
//     directory of the node) at its Target, nosuid and nodev, read-only when ReadOnly
//     says so; runc creates the target in the depot's root when the image lacks it,
//     and resolves it inside the root (an image's symlink cannot lead it out). A
//     missing source is an ErrBadSpec naming it.
//   - Security: Docker's default capabilities (DefaultCapabilities), no new
//     privileges, runc's masked and read-only /proc and /sys paths, every device
//     denied but the standard ones. No seccomp profile yet. The root is read-only when
//     Spec.Image.ReadOnlyRoot says so. Resource limits (rlimits) are the node's.
//   - Limits: Spec.CPU as a CFS quota and Spec.Memory as a memory limit (with no swap
//     where the node accounts swap), set by runc on the cgroup <CgroupParent>/<id>,
//     then read back: Handle.Limits reports what the cgroup actually holds.
//
// # Ends, stops and restarts of the agent
//
// runc exits with the container's exit code, or 128+n when signal n killed the
// container's first process; the driver reports the latter as killed by that signal
// (a program that exits with 137 by itself is reported as killed by SIGKILL, as
// Docker does). runc keeps the container's cgroup (run --keep) until the driver has
// read its OOM kills, so an OOM kill is reported as such even when it happened while
// no agent was running. runc itself killed, or its shim, leaves the container's end
// unknown: the driver kills the container and reports the depot as lost.
//
// Stop sends the image's stop signal (SIGTERM by default) to the container's first
// process, which, as PID 1 of its namespace, gets only signals it handles; after the
// grace period it is killed, and every process of the container with it.
//
// Recover re-adopts running containers through their shims (nothing is started
// again), reports the ones that ended meanwhile, cleans up after starts that were cut
// short, and deletes runc containers that no depot owns. Remove deletes the bundle,
// the writable layer, the network namespace, the address lease, the cgroup, runc's
// state and the logs.
//
// Secrets: the environment reaches runc in config.json, which is written to the
// bundle, a small tmpfs of the depot's own (<Dir>/depots/<id>/bundle, mode 0700,
// noswap where the kernel has it; the root filesystem stays on disk, named in
// config.json by its absolute path), so the environment is never on a disk. The file
// is removed and the tmpfs unmounted as soon as the container runs (runc, whose
// working directory it is, keeps a detached mount until it exits), and again by
// Recover and Remove whatever became of the start. The driver's own record never
// holds the environment. Files mounted from the node keep their owner and mode: the
// agent's secret files (root's, 0400) are readable by a container running as root
// only.
package oci
