package oci

import (
	"fmt"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver"
)

// DefaultPath is the PATH a container gets when neither its image nor its spec sets
// one (Docker's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultCapabilities is the capability set of a container's process: Docker's
// default, which lets a process run as root inside its container change file owners,
// bind low ports and so on, but not administer the node (no CAP_SYS_ADMIN,
// CAP_NET_ADMIN, CAP_SYS_MODULE, ...).
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// maskedPaths and readonlyPaths are runc's (and Docker's) defaults: kernel interfaces
// that leak information about the node or could change it.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// cfsPeriod is the CPU accounting period in µs (the kernel's default); minQuota the
// smallest quota the kernel takes.
const (
	cfsPeriod = 100000
	minQuota  = 1000
)

// specInput is everything the runtime spec of one container is made from.
type specInput struct {
	// Spec is the depot's; Spec.Image says how to run the image.
	Spec  driver.Spec
	Image depot.ImageConfig
	User  User
	// Rootfs is the container's root filesystem (the depot's overlay).
	Rootfs string
	// NetNS is the path of the network namespace to join; empty gives the container
	// a namespace of its own with only a loopback device.
	NetNS string
	// CgroupsPath is the container's cgroup, e.g. "/qnet/web-1".
	CgroupsPath string
	// Hosts and Hostname are files bind-mounted at /etc/hosts and /etc/hostname;
	// ResolvConf, when set, at /etc/resolv.conf (otherwise the image's is kept).
	Hosts, Hostname, ResolvConf string
	// Swap says whether the node accounts swap, so the memory limit can bound
	// memory+swap (no swap for the container).
	Swap bool
}

// processArgs is the command line: the entrypoint, then the arguments. Spec.Image's
// Command replaces the image's entrypoint, and its Args the image's cmd; a Command
// without Args drops the image's cmd too (as docker run --entrypoint and Kubernetes
// do: the image's arguments were meant for its own entrypoint).
func processArgs(in specInput) ([]string, error) {
	entry, cmd := in.Image.Entrypoint, in.Image.Cmd
	if is := in.Spec.Image; is != nil {
		if len(is.Command) > 0 {
			entry, cmd = is.Command, nil
		}
		if len(is.Args) > 0 {
			cmd = is.Args
		}
	}
	args := append(append([]string{}, entry...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: depot %q: the image has no entrypoint or cmd, and spec.image gives no command or args: nothing to run", driver.ErrBadSpec, in.Spec.ID)
	}
	for i, a := range args {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("%w: depot %q: argument %d of the command line contains a NUL byte", driver.ErrBadSpec, in.Spec.ID, i)
		}
	}
	return args, nil
}

// mergeEnv is the image's environment overridden, key by key, by the spec's; PATH and
// HOME are set when neither has them.
func mergeEnv(image, spec []string, home string) []string {
	var out []string
	at := map[string]int{}
	for _, list := range [][]string{image, spec} {
		for _, e := range list {
			k, _, ok := strings.Cut(e, "=")
			if !ok || k == "" {
				continue
			}
			if i, seen := at[k]; seen {
				out[i] = e
				continue
			}
			at[k] = len(out)
			out = append(out, e)
		}
	}
	if _, ok := at["PATH"]; !ok {
		out = append(out, "PATH="+DefaultPath)
	}
	if _, ok := at["HOME"]; !ok {
		out = append(out, "HOME="+home)
	}
	return out
}

// workingDir is Spec.Image's WorkingDir, else the image's, else "/".
func workingDir(in specInput) (string, error) {
	switch {
	case in.Spec.Image != nil && in.Spec.Image.WorkingDir != "":
		wd := in.Spec.Image.WorkingDir
		if !path.IsAbs(wd) || strings.ContainsRune(wd, 0) {
			return "", fmt.Errorf("%w: spec.image.workingDir %q of depot %q: want an absolute path inside the container", driver.ErrBadSpec, wd, in.Spec.ID)
		}
		return path.Clean(wd), nil
	case in.Image.WorkingDir != "":
		return path.Join("/", in.Image.WorkingDir), nil
	}
	return "/", nil
}

// setEnv returns env with key set to value: in place of an earlier setting, else
// added. env itself is not changed.
func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k != key {
			out = append(out, e)
		}
	}
	return append(out, key+"="+value)
}

// resolvConf is the /etc/resolv.conf of a container the node offers DNS to: its DNS
// server as the only nameserver, and the offer's search domains that are plain domain
// names (others are left out). false when the offer cannot be written there:
// resolv.conf has no port, so the server must answer on 53.
func resolvConf(o Offer) (string, bool) {
	if !o.DNS.IsValid() || o.DNS.Port() != 53 {
		return "", false
	}
	var b strings.Builder
	b.WriteString("# Written by QNet: the node's DNS server, which answers for the network's\n# services (SERVICE.NETWORK.qnet) and forwards other names.\n")
	fmt.Fprintf(&b, "nameserver %s\n", o.DNS.Addr())
	var search []string
	for _, d := range o.Search {
		if d == "" || len(d) > 253 || strings.ContainsFunc(d, func(r rune) bool {
			return !(r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			continue
		}
		search = append(search, d)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.String(), true
}

// hostname is the depot ID, cut to the 63 characters a host name may have.
func hostname(id string) string {
	if len(id) > 63 {
		id = strings.TrimRight(id[:63], "-")
	}
	return id
}

// runtimeSpec makes the container's config.json.
func runtimeSpec(in specInput) (*specs.Spec, error) {
	args, err := processArgs(in)
	if err != nil {
		return nil, err
	}
	cwd, err := workingDir(in)
	if err != nil {
		return nil, err
	}
	caps := append([]string(nil), DefaultCapabilities...)
	s := &specs.Spec{
		Version: specs.Version,
		// No rlimits: the container keeps the node's (the agent's), which a process
		// without CAP_SYS_RESOURCE could not raise anyway.
		Process: &specs.Process{
			User: specs.User{UID: in.User.UID, GID: in.User.GID, AdditionalGids: in.User.AdditionalGids},
			Args: args,
			Env:  mergeEnv(in.Image.Env, in.Spec.Env, in.User.Home),
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
		},
		Root:        &specs.Root{Path: in.Rootfs, Readonly: in.Spec.Image != nil && in.Spec.Image.ReadOnlyRoot},
		Hostname:    hostname(in.Spec.ID),
		Annotations: map[string]string{"dev.qnet.depot": in.Spec.ID},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			// runc fills a tmpfs /dev with the standard devices (null, zero, full,
			// random, urandom, tty) and the /dev/fd links.
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: in.CgroupsPath,
			Resources: &specs.LinuxResources{
				// Deny every device; runc allows the standard ones it creates.
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace, Path: in.NetNS},
			},
			MaskedPaths:   append([]string(nil), maskedPaths...),
			ReadonlyPaths: append([]string(nil), readonlyPaths...),
		},
	}
	for _, f := range []struct{ dst, src string }{{"/etc/hosts", in.Hosts}, {"/etc/hostname", in.Hostname}, {"/etc/resolv.conf", in.ResolvConf}} {
		if f.src != "" {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	// The spec's mounts come last, so they are shown over the image's files and over
	// one another in order. runc resolves their targets inside the root, so a symlink of
	// the image cannot lead them out of it.
	for _, m := range in.Spec.Mounts {
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: opts})
	}
	if in.Spec.Memory > 0 {
		m := in.Spec.Memory
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &m}
		if in.Swap {
			sw := m // memory+swap = memory: no swap
			s.Linux.Resources.Memory.Swap = &sw
		}
	}
	if in.Spec.CPU > 0 {
		q := in.Spec.CPU * cfsPeriod / 1000
		if q < minQuota {
			q = minQuota
		}
		p := uint64(cfsPeriod)
		s.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	return s, nil
}
