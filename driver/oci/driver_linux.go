//go:build linux

package oci

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver"
	execdrv "qnet.dev/qnet/driver/exec"
	"qnet.dev/qnet/driver/internal/depotgroup"
	"qnet.dev/qnet/driver/internal/depots"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/internal/shimproc"
	"qnet.dev/qnet/driver/internal/statefile"
	"qnet.dev/qnet/driver/oci/network"
	"qnet.dev/qnet/secret"
)

// Driver runs OCI images through runc, each depot under an exec-driver shim. It is
// safe for concurrent use.
type Driver struct {
	cfg      Config
	depots   *depots.Table[*handle]
	runcRoot string
	runc     string
	helper   []string
	exec     *execdrv.Driver
	images   *imageCache
	net      *network.Network
	hier     cgroup.Hierarchy
	log      *slog.Logger
	services atomic.Pointer[Services] // set once by SetServices; nil until then

	// ctx ends when the driver is closed; it bounds the goroutines that wait for
	// depots to end (bg).
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

var _ driver.Driver = (*Driver)(nil)

// New checks cfg, finds runc, prepares the directories and the exec driver that runs
// the shims, and returns the driver. It starts nothing; call Recover to find the
// depots of a previous agent.
func New(cfg Config) (*Driver, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := cfg.common().Resolve()
	if err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, log: s.Log, hier: s.Hier}
	if d.runc, err = osexec.LookPath(cfg.Runc); err != nil {
		return nil, fmt.Errorf("oci driver: runc %q: %w (install the runc package)", cfg.Runc, err)
	}
	if d.runc, err = filepath.Abs(d.runc); err != nil {
		return nil, fmt.Errorf("oci driver: runc: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("oci driver: Dir: %w", err)
	}
	if d.depots, err = depots.New[*handle](filepath.Join(dir, "depots"), nil); err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	d.runcRoot = filepath.Join(dir, "runc")
	if err := os.MkdirAll(d.runcRoot, 0o700); err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	imageDir := cfg.ImageDir
	if imageDir == "" {
		imageDir = filepath.Join(dir, "images")
	}
	if d.images, err = newImageCache(imageDir, cfg.Images, d.log); err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	netCfg := network.DefaultConfig(filepath.Join(dir, "netns"))
	if cfg.Network != nil {
		netCfg = *cfg.Network
	}
	if d.net, err = network.New(netCfg); err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	helperBin := cfg.HelperBinary
	if helperBin == "" {
		helperBin = cfg.ShimBinary
	}
	if helperBin, err = shimproc.Binary(helperBin); err != nil {
		return nil, fmt.Errorf("oci driver: HelperBinary: %w", err)
	}
	d.helper = append([]string{helperBin}, cfg.HelperArgs...)
	// The shims run runc (or the port helper) as their workload. They make no cgroup of
	// their own: runc puts the container in its cgroup, with the limits, and runc
	// itself stays outside it so that a tight memory limit cannot kill the runtime.
	d.exec, err = execdrv.New(execdrv.Config{
		Dir: filepath.Join(dir, "shims"), ShimBinary: cfg.ShimBinary, ShimArgs: cfg.ShimArgs, ShimEnv: cfg.ShimEnv,
		Cgroup:       &cgroup.Hierarchy{Version: cgroup.None, Parent: cfg.CgroupParent, Reason: "runc puts the container in its cgroup"},
		StartTimeout: cfg.StartTimeout, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// Name returns "oci".
func (d *Driver) Name() string { return Name }

// SetServices has the driver offer the node's services (s) in the network namespace
// of every container it starts or recovers from then on. The node calls it once it
// has built its services, which come after its drivers, and before any depot starts.
func (d *Driver) SetServices(s Services) { d.services.Store(&s) }

// offered returns the node's services, nil when SetServices was not called.
func (d *Driver) offered() Services {
	if p := d.services.Load(); p != nil {
		return *p
	}
	return nil
}

// Cgroups returns the cgroup hierarchy whose limits the driver checks.
func (d *Driver) Cgroups() cgroup.Hierarchy { return d.hier }

// Network returns the configuration of the containers' network.
func (d *Driver) Network() network.Config { return d.net.Config() }

func (d *Driver) cgroupsPath(id string) string { return "/" + d.cfg.CgroupParent + "/" + id }

// Logs returns the paths of the depot's stdout and stderr logs: the container's
// output, as the shim wrote it (rotated files beside them as .1, .2, …).
func (d *Driver) Logs(id string) (stdout, stderr string) { return d.exec.Logs(id) }

// checkSpec returns the image digest of s, or why s cannot be run by this driver.
func checkSpec(s driver.Spec) (depot.Digest, error) {
	if err := s.Validate(); err != nil {
		return "", fmt.Errorf("%w: %w", driver.ErrBadSpec, err)
	}
	if s.Image == nil {
		return "", fmt.Errorf("%w: depot %q has no spec.image: the oci driver runs images", driver.ErrBadSpec, s.ID)
	}
	dg, err := depot.ParseDigest(s.Image.Digest)
	if err != nil {
		return "", fmt.Errorf("%w: spec.image.digest of depot %q: %w", driver.ErrBadSpec, s.ID, err)
	}
	taken := map[string]string{}
	for _, name := range sortedKeys(s.Ports) {
		p := s.Ports[name]
		key := fmt.Sprintf("%d/%s", p.Host, orDefault(p.Protocol, "tcp"))
		if other, ok := taken[key]; ok {
			return "", fmt.Errorf("%w: spec.ports[%q] of depot %q: host port %s is also ports[%q]", driver.ErrBadSpec, name, s.ID, key, other)
		}
		taken[key] = name
		switch {
		case p.Host < 1 || p.Host > 65535 || p.Container < 1 || p.Container > 65535:
			return "", fmt.Errorf("%w: spec.ports[%q] of depot %q is %d->%d: want ports from 1 to 65535", driver.ErrBadSpec, name, s.ID, p.Host, p.Container)
		case p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp":
			return "", fmt.Errorf("%w: spec.ports[%q] of depot %q: protocol %q: want tcp or udp", driver.ErrBadSpec, name, s.ID, p.Protocol)
		}
	}
	return dg, nil
}

// Start runs the depot's image and returns once the container's first process runs:
// the image is unpacked (once per image), the depot gets its overlay, its network and
// its runtime spec, and a shim runs runc for it.
func (d *Driver) Start(ctx context.Context, s driver.Spec) (driver.Handle, error) {
	dg, err := checkSpec(s)
	if err != nil {
		return nil, err
	}
	s = s.WithDefaults()
	dir := d.depots.Dir(s.ID)
	// A restart of a depot that ended: its state goes (its logs stay, with the shim's
	// directory, which the exec driver resets on its own Start). A bundle this driver
	// does not track is a previous agent's depot, to Recover or Remove.
	reset := func(prev *handle) error {
		d.teardown(s.ID, prev.rec) // done when it ended; again in case that failed
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		return os.Mkdir(dir, 0o700)
	}
	if _, err := d.depots.Claim(s.ID, reset, nil); err != nil {
		return nil, err
	}
	h, err := d.start(ctx, s, dg, dir)
	d.depots.Started(s.ID, h, err)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// start does Start's work; on error it leaves nothing behind (no container, network,
// mount, shim state or bundle).
func (d *Driver) start(ctx context.Context, s driver.Spec, dg depot.Digest, dir string) (_ *handle, err error) {
	t0 := time.Now()
	rec := &record{Spec: s}
	rec.Spec.Env = nil
	var eh driver.Handle
	defer func() {
		if err == nil {
			return
		}
		if eh != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			d.killContainer(s.ID, rec)
			eh.Stop(sctx, 0)
			cancel()
			d.exec.Remove(s.ID)
		}
		d.teardown(s.ID, rec)
		os.RemoveAll(dir)
	}()
	if err := statefile.Write(filepath.Join(dir, recordFile), rec); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}

	img, err := d.cfg.Images.Image(dg)
	if errors.Is(err, depot.ErrNotFound) {
		return nil, fmt.Errorf("%w: image %s of depot %q is not in the node's depot store", driver.ErrCommandNotFound, dg, s.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	if img.Kind != "" && img.Kind != depot.KindOCI {
		return nil, fmt.Errorf("%w: image %s of depot %q is a %s image, not a container image", driver.ErrBadSpec, dg, s.ID, img.Kind)
	}
	if (img.OS != "" && img.OS != "linux") || (img.Arch != "" && img.Arch != runtime.GOARCH) {
		return nil, fmt.Errorf("%w: image %s of depot %q is for %s/%s; this node runs linux/%s", driver.ErrBadSpec, dg, s.ID, img.OS, img.Arch, runtime.GOARCH)
	}
	rec.StopSignal = img.Config.StopSignal
	if rec.Lower, err = d.images.rootfs(ctx, img); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}

	userSpec := img.Config.User
	if s.Image.User != "" {
		userSpec = s.Image.User
	}
	passwd, err := readImageFile(rec.Lower, "etc/passwd")
	if err != nil {
		return nil, fmt.Errorf("%w: depot %q: %w", driver.ErrBadSpec, s.ID, err)
	}
	group, err := readImageFile(rec.Lower, "etc/group")
	if err != nil {
		return nil, fmt.Errorf("%w: depot %q: %w", driver.ErrBadSpec, s.ID, err)
	}
	user, err := ResolveUser(userSpec, passwd, group)
	if err != nil {
		return nil, fmt.Errorf("%w: depot %q: %w", driver.ErrBadSpec, s.ID, err)
	}
	in := specInput{Spec: s, Image: img.Config, User: user, CgroupsPath: d.cgroupsPath(s.ID), Swap: d.swapAccounted()}
	// Checked before anything is mounted: a spec that cannot run costs nothing.
	if _, err := processArgs(in); err != nil {
		return nil, err
	}
	if _, err := workingDir(in); err != nil {
		return nil, err
	}
	if err := checkMounts(s); err != nil {
		return nil, err
	}
	if err := givePrivateFiles(s, user); err != nil {
		return nil, err
	}

	if in.Rootfs, err = d.makeRootfs(rec, dir); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	if err := statefile.Write(filepath.Join(dir, recordFile), rec); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	if rec.Endpoint, err = d.net.Attach(ctx, s.ID); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	in.NetNS = rec.Endpoint.NetNS
	if err := statefile.Write(filepath.Join(dir, recordFile), rec); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	if sv := d.offered(); sv != nil {
		// Before the container runs: a program that resolves and dials a service as
		// it starts must find the sockets there.
		offer, err := sv.Offer(ctx, s.ID, *rec.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("start depot %q: offer the node's services in its network: %w", s.ID, err)
		}
		if offer.DNS.IsValid() {
			// The node's own DNS address, which the agent put in $QNET_DNS, is on the
			// node's loopback, out of the container's reach.
			in.Spec.Env = setEnv(in.Spec.Env, "QNET_DNS", offer.DNS.String())
			if conf, ok := resolvConf(offer); ok {
				in.ResolvConf = filepath.Join(dir, resolvFile)
				if err := os.WriteFile(in.ResolvConf, []byte(conf), 0o644); err != nil {
					return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
				}
			}
		}
	}
	in.Hosts, in.Hostname = filepath.Join(dir, hostsFile), filepath.Join(dir, hostnameFile)
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", rec.Endpoint.Addr.Addr(), hostname(s.ID))
	if err := os.WriteFile(in.Hosts, []byte(hosts), 0o644); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	if err := os.WriteFile(in.Hostname, []byte(hostname(s.ID)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	if err := makeWorkingDir(in); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	rs, err := runtimeSpec(in)
	if err != nil {
		return nil, err
	}
	// config.json holds the environment, which may hold secrets: it goes in a tmpfs of
	// its own (the bundle; the root filesystem, on disk, is named by its absolute path),
	// readable by root alone, so the environment never reaches a disk; and it is removed
	// and the tmpfs unmounted as soon as runc has started the container.
	bundle := filepath.Join(dir, bundleDir)
	if err := secret.MountTmpfs(bundle); err != nil {
		return nil, fmt.Errorf("start depot %q: runtime spec: %w", s.ID, err)
	}
	if err := statefile.Write(filepath.Join(bundle, configFile), rs); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}

	es := driver.Spec{
		ID: s.ID, Env: append([]string{"PATH=" + DefaultPath}, d.cfg.HelperEnv...),
		LogMaxBytes: s.LogMaxBytes, LogMaxFiles: s.LogMaxFiles,
	}
	runcArgs := []string{"--root", d.runcRoot, "--log", filepath.Join(dir, runcLog), "--log-format", "json",
		"run", "--keep", "--pid-file", filepath.Join(dir, pidFile), "--bundle", bundle, s.ID}
	if len(s.Ports) == 0 {
		es.Command, es.Args = d.runc, runcArgs
	} else {
		es.Command = d.helper[0]
		es.Args = append(append([]string{}, d.helper[1:]...), "-e", filepath.Join(dir, helperErr))
		for _, name := range sortedKeys(s.Ports) {
			p := s.Ports[name]
			arg := fmt.Sprintf("%d=%s", p.Host, net.JoinHostPort(rec.Endpoint.Addr.Addr().String(), strconv.Itoa(p.Container)))
			if p.Protocol == "udp" {
				arg = fmt.Sprintf("%d/udp=%s", p.Host, net.JoinHostPort(rec.Endpoint.Addr.Addr().String(), strconv.Itoa(p.Container)))
			}
			es.Args = append(es.Args, "-p", arg)
		}
		es.Args = append(append(es.Args, "--", d.runc), runcArgs...)
	}
	if eh, err = d.exec.Start(ctx, es); err != nil {
		return nil, fmt.Errorf("start depot %q: start its shim: %w", s.ID, err)
	}
	if rec.PID, err = d.awaitRunning(ctx, s.ID, dir, eh); err != nil {
		return nil, err
	}
	dropBundle(dir)
	rec.PIDStart, _ = proc.StartTime(rec.PID)
	rec.StartedAt = time.Now()
	rec.Limits = d.limits(s)
	if d.cfg.RequireLimits && ((s.CPU > 0 && !rec.Limits.CPUEnforced) || (s.Memory > 0 && !rec.Limits.MemoryEnforced)) {
		return nil, fmt.Errorf("%w: depot %q asks for limits this node cannot enforce (%s): %s", driver.ErrLimitsUnavailable, s.ID, rec.Limits.Mechanism, rec.Limits.Reason)
	}
	if err := statefile.Write(filepath.Join(dir, recordFile), rec); err != nil {
		return nil, fmt.Errorf("start depot %q: %w", s.ID, err)
	}
	h := newHandle(d, s, dir, rec, eh)
	d.watch(h)
	d.log.Debug("depot started", "depot", s.ID, "image", dg, "pid", rec.PID, "addr", rec.Endpoint.Addr, "took", time.Since(t0))
	return h, nil
}

// awaitRunning waits until runc has started the container's first process (it writes
// the pid file after the process was started) and returns its PID; or, when the shim
// ended first, returns why the container did not start.
func (d *Driver) awaitRunning(ctx context.Context, id, dir string, eh driver.Handle) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	ended := make(chan driver.ExitStatus, 1)
	go func() {
		if st, err := eh.Wait(ctx); err == nil {
			ended <- st
		}
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if pid, err := readPID(filepath.Join(dir, pidFile)); err == nil {
			return pid, nil
		}
		select {
		case st := <-ended:
			if pid, err := readPID(filepath.Join(dir, pidFile)); err == nil {
				return pid, nil // started, and already ended: Wait will tell
			}
			return 0, d.startError(id, dir, st)
		case <-ctx.Done():
			return 0, fmt.Errorf("start depot %q: waiting for runc to start the container: %w", id, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// startError says why a container did not start, from what runc or the helper wrote.
func (d *Driver) startError(id, dir string, st driver.ExitStatus) error {
	if msg, err := os.ReadFile(filepath.Join(dir, helperErr)); err == nil && len(msg) > 0 {
		return fmt.Errorf("start depot %q: %s", id, msg)
	}
	msg := runcError(filepath.Join(dir, runcLog))
	if msg == "" {
		msg = "runc " + st.Reason
	}
	// runc checks the program exists before it starts the container.
	if strings.Contains(msg, "exec:") && (strings.Contains(msg, "no such file") || strings.Contains(msg, "not found") || strings.Contains(msg, "permission denied")) {
		return fmt.Errorf("%w: depot %q: %s", driver.ErrCommandNotFound, id, msg)
	}
	return fmt.Errorf("start depot %q: runc: %s", id, msg)
}

// makeRootfs gives the depot its writable root: an overlay on the image's, or a copy.
func (d *Driver) makeRootfs(rec *record, dir string) (string, error) {
	target := filepath.Join(dir, rootfsDir)
	if err := os.Mkdir(target, 0o755); err != nil {
		return "", err
	}
	if d.cfg.Rootfs != RootfsCopy {
		upper, work := filepath.Join(dir, upperDir), filepath.Join(dir, workDir)
		err := os.Mkdir(upper, 0o755)
		if err == nil {
			err = os.Mkdir(work, 0o700)
		}
		if err == nil {
			err = mountOverlay(rec.Lower, upper, work, target)
		}
		if err == nil {
			rec.Rootfs = RootfsOverlay
			return target, nil
		}
		if d.cfg.Rootfs == RootfsOverlay {
			return "", err
		}
		d.log.Warn("overlay unavailable; copying the image for the depot instead (slower, and costs the image's size per depot)", "depot", rec.Spec.ID, "err", err)
		os.RemoveAll(upper)
		os.RemoveAll(work)
	}
	if err := copyTree(rec.Lower, target); err != nil {
		return "", fmt.Errorf("copy the image's root filesystem: %w", err)
	}
	rec.Rootfs = RootfsCopy
	return target, nil
}

// makeWorkingDir creates the working directory in the container's root when the image
// lacks it, as Docker does (runc would refuse to start).
func makeWorkingDir(in specInput) error {
	wd, err := workingDir(in)
	if err != nil || wd == "/" {
		return err
	}
	root, err := os.OpenRoot(in.Rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.MkdirAll(strings.TrimPrefix(wd, "/"), 0o755); err != nil {
		return fmt.Errorf("working directory %s: %w", wd, err)
	}
	return nil
}

// swapAccounted reports whether the node's memory controller bounds swap, so that a
// memory limit can also forbid swapping.
func (d *Driver) swapAccounted() bool {
	switch d.hier.Version {
	case cgroup.V1:
		return statefile.Exists(filepath.Join(d.hier.Memory, "memory.memsw.limit_in_bytes"))
	case cgroup.V2:
		// The root group has no memory files; any group below it shows whether the
		// kernel accounts swap.
		entries, _ := filepath.Glob(filepath.Join(d.hier.Memory, "*", "memory.swap.max"))
		return len(entries) > 0
	}
	return false
}

// limits reads the container's cgroup back and reports which limits hold: runc
// silently skips a controller the node does not mount, so its word is not enough.
func (d *Driver) limits(s driver.Spec) driver.LimitReport {
	rep := driver.LimitReport{Mechanism: d.hier.Version.String()}
	var why []string
	read := func(dir, file string) string {
		if dir == "" {
			return ""
		}
		data, _ := os.ReadFile(filepath.Join(dir, d.cfg.CgroupParent, s.ID, file))
		return strings.TrimSpace(string(data))
	}
	switch {
	case s.CPU <= 0:
		why = append(why, "no CPU limit requested")
	default:
		q := s.CPU * cfsPeriod / 1000
		if q < minQuota {
			q = minQuota
		}
		var got string
		if d.hier.Version == cgroup.V2 {
			got, _, _ = strings.Cut(read(d.hier.CPU, "cpu.max"), " ")
		} else {
			got = read(d.hier.CPU, "cpu.cfs_quota_us")
		}
		if got == strconv.FormatInt(q, 10) {
			rep.CPUEnforced = true
		} else {
			why = append(why, fmt.Sprintf("CPU not limited: the container's cgroup has quota %q, want %d (%s)", got, q, orDefault(d.hier.Reason, "no cpu controller")))
		}
	}
	switch {
	case s.Memory <= 0:
		why = append(why, "no memory limit requested")
	default:
		file := "memory.limit_in_bytes"
		if d.hier.Version == cgroup.V2 {
			file = "memory.max"
		}
		got, err := strconv.ParseInt(read(d.hier.Memory, file), 10, 64)
		// The kernel rounds the limit down to whole pages.
		if err == nil && got <= s.Memory && got > s.Memory-int64(os.Getpagesize()) {
			rep.MemoryEnforced = true
		} else {
			why = append(why, fmt.Sprintf("memory not limited: the container's cgroup does not hold the limit (%s)", orDefault(d.hier.Reason, "no memory controller")))
		}
	}
	rep.Reason = strings.Join(why, "; ")
	if !rep.CPUEnforced && !rep.MemoryEnforced && d.hier.Version == cgroup.None {
		rep.Mechanism = cgroup.None.String()
	}
	return rep
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// runcCmd runs one runc command (state, kill, delete) and returns its error with what
// runc printed.
func (d *Driver) runcCmd(ctx context.Context, args ...string) error {
	cmd := osexec.CommandContext(ctx, d.runc, append([]string{"--root", d.runcRoot}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// killContainer kills every process of the container: its first process (in its own
// PID namespace, so the kernel takes all the others with it) and, for safety, what is
// left in its cgroup.
func (d *Driver) killContainer(id string, rec *record) {
	if rec.PID > 0 && proc.Alive(rec.PID, rec.PIDStart) {
		syscall.Kill(rec.PID, syscall.SIGKILL)
	} else if statefile.Exists(filepath.Join(d.runcRoot, id)) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.runcCmd(ctx, "kill", id, "KILL")
		cancel()
	}
	if g, err := d.hier.Open(id); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g.Kill(ctx)
		cancel()
	}
}

// teardown releases what a depot holds on the node besides its logs and bundle: the
// runc container (with its cgroup), the network and the root filesystem's mount. It
// may run again, and on a depot that was only half set up.
func (d *Driver) teardown(id string, rec *record) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if statefile.Exists(filepath.Join(d.runcRoot, id)) {
		if err := d.runcCmd(ctx, "delete", "--force", id); err != nil && statefile.Exists(filepath.Join(d.runcRoot, id)) {
			d.log.Warn("runc container not deleted", "depot", id, "err", err)
		}
	}
	depotgroup.Sweep(ctx, d.hier, id, d.log)
	if sv := d.offered(); sv != nil {
		// Its sockets hold the namespace: they go first.
		sv.Withdraw(id)
	}
	ep := rec.Endpoint
	if ep == nil {
		// Attach may have got part of the way before the record was written.
		ep = &network.Endpoint{ID: id, NetNS: filepath.Join(d.net.Config().NetnsDir, id), HostVeth: network.VethName(d.net.Config().NetnsDir, id)}
	}
	if err := d.net.Detach(ep); err != nil {
		d.log.Warn("network not detached", "depot", id, "err", err)
	}
	if err := unmount(filepath.Join(d.depots.Dir(id), rootfsDir)); err != nil {
		d.log.Warn("root filesystem not unmounted", "depot", id, "err", err)
	}
	dropBundle(d.depots.Dir(id))
}

// dropBundle removes the runtime spec (it holds the environment) and unmounts the
// bundle's tmpfs, which frees its memory; runc, whose working directory it is while it
// runs, keeps a detached mount until it exits. It may run again. (Depots started by
// earlier versions had config.json beside the record: it goes too.)
func dropBundle(dir string) {
	bundle := filepath.Join(dir, bundleDir)
	os.Remove(filepath.Join(bundle, configFile))
	os.Remove(filepath.Join(dir, configFile))
	if mounted, _ := isMountPoint(bundle); mounted {
		secret.UnmountTmpfs(bundle)
	}
}

// isMountPoint reports whether p is the root of a mount (its device differs from its
// parent's).
func isMountPoint(p string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(p), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// checkMounts checks that every Spec.Mounts source exists, so a missing file is an error
// naming it rather than runc's.
func checkMounts(s driver.Spec) error {
	for i, m := range s.Mounts {
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("%w: spec.mounts[%d].source of depot %q: %w", driver.ErrBadSpec, i, s.ID, err)
		}
	}
	return nil
}

// givePrivateFiles makes the container's user the owner of its private mounts (secret
// files, mode 0400 and owned by the node's user until now), so a container that does
// not run as root can read them. The file is a depot's own, on its tmpfs, so no one
// else loses it.
func givePrivateFiles(s driver.Spec, u User) error {
	for i, m := range s.Mounts {
		if !m.Private {
			continue
		}
		if err := os.Lchown(m.Source, int(u.UID), int(u.GID)); err != nil {
			return fmt.Errorf("start depot %q: give spec.mounts[%d] (%s) to the container's user %d:%d: %w", s.ID, i, m.Target, u.UID, u.GID, err)
		}
	}
	return nil
}

// watch finishes h once its shim has ended; the goroutine ends with the driver.
func (d *Driver) watch(h *handle) {
	d.bg.Go(func() {
		st, err := h.eh.Wait(d.ctx)
		if err != nil {
			return // the driver is closing; the next agent finishes the depot
		}
		h.finish(st)
	})
}

// Recover finds the depots of a previous agent: a running container is re-adopted
// (its shim and runc keep running; nothing is started), one that ended meanwhile is
// cleaned up after and returned with its exit status, and one whose start was cut
// short, or whose runtime died without a word, is cleaned up and returned as exited
// with a reason starting "lost:". Containers in runc's state that no depot owns are
// deleted. The environment is never stored, so a recovered depot's Spec has Env nil.
func (d *Driver) Recover(ctx context.Context) ([]driver.Handle, error) {
	ehs, err := d.exec.Recover(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover oci depots: %w", err)
	}
	shims := map[string]driver.Handle{}
	for _, eh := range ehs {
		shims[eh.ID()] = eh
	}
	out, err := d.depots.Recover(ctx, func(id string) (*handle, error) { return d.recoverOne(ctx, id, shims[id]) }, d.log)
	if err != nil {
		return out, fmt.Errorf("recover oci depots: %w", err)
	}
	// What is left in the other directories belongs to the depots that are left: those
	// found, and those being started.
	ids, err := d.depots.IDs()
	if err != nil {
		return out, fmt.Errorf("recover oci depots: %w", err)
	}
	known := map[string]bool{}
	for _, id := range ids {
		known[id] = true
	}
	// Shims without a bundle: runc runs for nothing the driver knows.
	for id, eh := range shims {
		if known[id] {
			continue
		}
		if _, err := eh.Wait(expired()); err != nil {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			eh.Stop(sctx, 0)
			cancel()
		}
		d.exec.Remove(id)
	}
	// Containers without a bundle.
	if cs, err := os.ReadDir(d.runcRoot); err == nil {
		for _, c := range cs {
			if c.IsDir() && !known[c.Name()] && depots.ValidID(c.Name()) {
				d.log.Warn("deleting a container no depot owns", "container", c.Name())
				d.runcCmd(ctx, "delete", "--force", c.Name())
			}
		}
	}
	return out, nil
}

// expired is a context that has already ended, for a Wait that must not block.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// recoverOne finds depot id again, with eh, its shim's depot (nil when there is none).
// A depot whose bundle has no record is cleaned up after, and its error says so.
func (d *Driver) recoverOne(ctx context.Context, id string, eh driver.Handle) (*handle, error) {
	dir := d.depots.Dir(id)
	rec := &record{}
	if err := statefile.Read(filepath.Join(dir, recordFile), rec); err != nil {
		// Cut short before the record was written: nothing ran.
		rec = &record{Spec: driver.Spec{ID: id}}
		if eh != nil {
			d.killContainer(id, rec)
		}
		d.teardown(id, rec)
		if eh != nil {
			d.exec.Remove(id)
		}
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w; its state was removed", err)
	}
	// The runtime spec holds the environment: it goes, whatever became of the start.
	dropBundle(dir)
	h := newHandle(d, rec.Spec, dir, rec, eh)
	var ex driver.ExitStatus
	switch {
	case statefile.Read(filepath.Join(dir, exitFile), &ex) == nil:
		h.Set(ex)
	case eh == nil:
		d.killContainer(id, rec)
		h.finish(driver.ExitStatus{Code: -1, Reason: "lost: the agent stopped while the container was starting"})
	default:
		if rec.PID == 0 {
			// The agent stopped before it saw the container run; runc may have.
			if pid, err := readPID(filepath.Join(dir, pidFile)); err == nil {
				rec.PID = pid
				rec.PIDStart, _ = proc.StartTime(pid)
				rec.StartedAt = time.Now()
				rec.Limits = d.limits(rec.Spec)
				statefile.Write(filepath.Join(dir, recordFile), rec)
			}
		}
		if sv := d.offered(); sv != nil && rec.Endpoint != nil {
			// The container keeps what it was told (its resolv.conf, $QNET_DNS): the
			// services answer again where they did.
			if _, err := sv.Offer(ctx, id, *rec.Endpoint); err != nil {
				d.log.Warn("the node's services are not offered in a recovered container's network", "depot", id, "err", err)
			}
		}
		d.watch(h)
	}
	return h, nil
}

// Remove deletes a stopped depot: its bundle, writable layer and logs.
func (d *Driver) Remove(id string) error {
	err := d.depots.Remove(id, func(h *handle, tracked bool) error {
		rec := &record{}
		if tracked {
			rec = h.rec
		} else {
			if err := statefile.Read(filepath.Join(d.depots.Dir(id), recordFile), rec); err != nil {
				rec = &record{Spec: driver.Spec{ID: id}}
			}
			if rec.PID > 0 && proc.Alive(rec.PID, rec.PIDStart) {
				return fmt.Errorf("%w (its container, pid %d, runs); Stop it first", driver.ErrRunning, rec.PID)
			}
		}
		if err := d.exec.Remove(id); err != nil && !errors.Is(err, driver.ErrNotFound) {
			return err
		}
		d.teardown(id, rec)
		return os.RemoveAll(d.depots.Dir(id))
	})
	if errors.Is(err, driver.ErrNotFound) && depots.ValidID(id) {
		// No bundle: only shim state (a start cut short at the wrong moment), or nothing.
		if err := d.exec.Remove(id); err != nil {
			return fmt.Errorf("remove depot %q: %w", id, err)
		}
		return nil
	}
	return err
}

// RemoveImage deletes the unpacked root filesystem of an image no depot uses, to free
// its space; the image stays in the depot store and is unpacked again if needed.
func (d *Driver) RemoveImage(dg depot.Digest) error {
	if _, err := depot.ParseDigest(string(dg)); err != nil {
		return err
	}
	lower := filepath.Join(d.images.path(dg), "rootfs")
	ids, _ := d.depots.IDs()
	for _, id := range ids {
		var rec record
		if statefile.Read(filepath.Join(d.depots.Dir(id), recordFile), &rec) == nil && rec.Lower == lower {
			return fmt.Errorf("remove unpacked image %s: depot %q uses it: %w", dg, id, driver.ErrRunning)
		}
	}
	return d.images.remove(dg)
}

// Close stops the driver's own goroutines and shims held in reserve. Depots keep
// running; the next driver recovers them.
func (d *Driver) Close() error {
	d.cancel()
	d.bg.Wait()
	err := d.exec.Close()
	depotgroup.RemoveParent(d.hier, d.cfg.CgroupParent)
	return err
}

// signalNumber parses an image's StopSignal ("SIGQUIT", "QUIT" or "3"); SIGTERM when
// empty or unknown.
func signalNumber(s string) syscall.Signal {
	if s == "" {
		return syscall.SIGTERM
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n)
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig
	}
	return syscall.SIGTERM
}
