package oci

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver"
)

func TestProcessArgs(t *testing.T) {
	t.Parallel()
	img := depot.ImageConfig{Entrypoint: []string{"/bin/app", "--flag"}, Cmd: []string{"serve"}}
	for _, tc := range []struct {
		name  string
		img   depot.ImageConfig
		image *driver.ImageSpec
		want  []string
	}{
		{"image's", img, nil, []string{"/bin/app", "--flag", "serve"}},
		{"args replace cmd", img, &driver.ImageSpec{Args: []string{"check"}}, []string{"/bin/app", "--flag", "check"}},
		{"command drops cmd", img, &driver.ImageSpec{Command: []string{"/bin/sh"}}, []string{"/bin/sh"}},
		{"command and args", img, &driver.ImageSpec{Command: []string{"/bin/sh"}, Args: []string{"-c", "x"}}, []string{"/bin/sh", "-c", "x"}},
		{"cmd only", depot.ImageConfig{Cmd: []string{"/run"}}, nil, []string{"/run"}},
	} {
		got, err := processArgs(specInput{Spec: driver.Spec{ID: "x", Image: tc.image}, Image: tc.img})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	_, err := processArgs(specInput{Spec: driver.Spec{ID: "x"}})
	if !errors.Is(err, driver.ErrBadSpec) || !strings.Contains(err.Error(), "nothing to run") {
		t.Errorf("empty command line: %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	t.Parallel()
	got := mergeEnv([]string{"PATH=/img", "A=1", "B=2", "bad"}, []string{"B=spec", "C=3"}, "/home/x")
	want := []string{"PATH=/img", "A=1", "B=spec", "C=3", "HOME=/home/x"}
	if !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
	got = mergeEnv(nil, []string{"HOME=/h"}, "/ignored")
	if !slices.Equal(got, []string{"HOME=/h", "PATH=" + DefaultPath}) {
		t.Errorf("mergeEnv with no PATH = %q", got)
	}
}

func TestRuntimeSpec(t *testing.T) {
	t.Parallel()
	in := specInput{
		Spec: driver.Spec{ID: "web-1", CPU: 250, Memory: 64 << 20, Env: []string{"X=1"},
			Image: &driver.ImageSpec{WorkingDir: "/srv/", ReadOnlyRoot: true}},
		Image:  depot.ImageConfig{Entrypoint: []string{"/app"}},
		User:   User{UID: 1000, GID: 1000, AdditionalGids: []uint32{50}, Home: "/home/app"},
		Rootfs: "/r", NetNS: "/ns/web-1", CgroupsPath: "/qnet/web-1", Hosts: "/b/hosts", Swap: true,
	}
	s, err := runtimeSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if p.Cwd != "/srv" || p.User.UID != 1000 || !slices.Equal(p.User.AdditionalGids, []uint32{50}) || !p.NoNewPrivileges || p.Terminal {
		t.Errorf("process = %+v", p)
	}
	if !slices.Equal(p.Capabilities.Bounding, DefaultCapabilities) || slices.Contains(p.Capabilities.Bounding, "CAP_SYS_ADMIN") || len(p.Capabilities.Ambient) != 0 {
		t.Errorf("capabilities = %+v", p.Capabilities)
	}
	if !s.Root.Readonly || s.Root.Path != "/r" || s.Hostname != "web-1" {
		t.Errorf("root %+v, hostname %q", s.Root, s.Hostname)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	for _, want := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/hosts"} {
		if !slices.Contains(dests, want) {
			t.Errorf("no mount at %s in %v", want, dests)
		}
	}
	if slices.Contains(dests, "/etc/hostname") || slices.Contains(dests, "/etc/resolv.conf") {
		t.Error("a bind mount for a file that was not given")
	}
	in.ResolvConf = "/b/resolv.conf"
	if s2, err := runtimeSpec(in); err != nil {
		t.Fatal(err)
	} else if i := slices.IndexFunc(s2.Mounts, func(m specs.Mount) bool { return m.Destination == "/etc/resolv.conf" }); i < 0 ||
		s2.Mounts[i].Source != "/b/resolv.conf" || !slices.Contains(s2.Mounts[i].Options, "ro") {
		t.Errorf("resolv.conf mount: %+v", s2.Mounts)
	}
	l := s.Linux
	if *l.Resources.Memory.Limit != 64<<20 || *l.Resources.Memory.Swap != 64<<20 {
		t.Errorf("memory = %+v", l.Resources.Memory)
	}
	if *l.Resources.CPU.Quota != 25000 || *l.Resources.CPU.Period != 100000 {
		t.Errorf("cpu = %+v", l.Resources.CPU)
	}
	var types []string
	for _, ns := range l.Namespaces {
		types = append(types, string(ns.Type))
		if ns.Type == "network" && ns.Path != "/ns/web-1" {
			t.Errorf("network namespace path %q", ns.Path)
		}
	}
	slices.Sort(types)
	if !slices.Equal(types, []string{"ipc", "mount", "network", "pid", "uts"}) {
		t.Errorf("namespaces %v", types)
	}
	if l.CgroupsPath != "/qnet/web-1" || !slices.Contains(l.MaskedPaths, "/proc/kcore") || !slices.Contains(l.ReadonlyPaths, "/proc/sys") {
		t.Errorf("linux = %+v", l)
	}
	// A tiny CPU share still gets the kernel's smallest quota; no limits, no resources.
	in.Spec.CPU, in.Spec.Memory, in.Swap = 1, 0, false
	s, _ = runtimeSpec(in)
	if *s.Linux.Resources.CPU.Quota != minQuota || s.Linux.Resources.Memory != nil {
		t.Errorf("resources = %+v", s.Linux.Resources)
	}
	// Spec.Mounts come last, as bind mounts: nosuid, nodev, read-only when asked.
	in.Spec.Mounts = []driver.Mount{{Source: "/q/configs/web-1/app", Target: "/etc/app.conf", ReadOnly: true}, {Source: "/srv/shared", Target: "/shared"}}
	s, _ = runtimeSpec(in)
	got := s.Mounts[len(s.Mounts)-2:]
	want := []specs.Mount{
		{Destination: "/etc/app.conf", Type: "bind", Source: "/q/configs/web-1/app", Options: []string{"rbind", "nosuid", "nodev", "ro"}},
		{Destination: "/shared", Type: "bind", Source: "/srv/shared", Options: []string{"rbind", "nosuid", "nodev"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the spec's mounts became %+v, want %+v", got, want)
	}
	if long := hostname(strings.Repeat("a", 62) + "-bcd"); len(long) > 63 || strings.HasSuffix(long, "-") {
		t.Errorf("hostname of a long ID = %q", long)
	}
}

func TestResolveUser(t *testing.T) {
	t.Parallel()
	passwd := []byte("# users\nroot:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nbroken line\nweird:x:notanumber:1::/:/\nnohome:x:1001:1001\n")
	group := []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwheel:x:10:app\nempty:x:60:\n")
	for _, tc := range []struct {
		spec string
		want User
	}{
		{"", User{UID: 0, GID: 0, Home: "/root"}},
		{"app", User{UID: 1000, GID: 1000, AdditionalGids: []uint32{50, 10}, Home: "/home/app"}},
		{"1000", User{UID: 1000, GID: 1000, AdditionalGids: []uint32{50, 10}, Home: "/home/app"}},
		{"app:staff", User{UID: 1000, GID: 50, AdditionalGids: []uint32{10}, Home: "/home/app"}},
		{"app:60", User{UID: 1000, GID: 60, AdditionalGids: []uint32{50, 10}, Home: "/home/app"}},
		{"4000:4001", User{UID: 4000, GID: 4001, Home: "/"}},
		{"4000", User{UID: 4000, GID: 0, Home: "/"}},
		{"nohome", User{UID: 1001, GID: 1001, Home: "/"}},
	} {
		got, err := ResolveUser(tc.spec, passwd, group)
		if err != nil || got.UID != tc.want.UID || got.GID != tc.want.GID || got.Home != tc.want.Home || !slices.Equal(got.AdditionalGids, tc.want.AdditionalGids) {
			t.Errorf("ResolveUser(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
	for _, bad := range []string{"nobody", "app:nogroup", "weird", ":", "app:", ":50", "4294967295", "-1"} {
		if u, err := ResolveUser(bad, passwd, group); err == nil {
			t.Errorf("ResolveUser(%q) = %+v, want an error", bad, u)
		}
	}
	if u, err := ResolveUser("", nil, nil); err != nil || u.UID != 0 || u.Home != "/" {
		t.Errorf("root without /etc/passwd = %+v, %v", u, err)
	}
}

// FuzzResolveUser: an image's user string and its /etc/passwd and /etc/group are
// outside input. Whatever they hold, ResolveUser returns an error or a user whose IDs
// are valid Linux IDs, and never panics.
func FuzzResolveUser(f *testing.F) {
	f.Add("app", "app:x:1000:1000::/home/app:/bin/sh\n", "staff:x:50:app\n")
	f.Add("1000:staff", "", "staff:x:50:\n")
	f.Add("x:y", "x:x:1:2\n\n#c\n", "y:x:3:x,x,x\n")
	f.Add("", "root:x:0:0:root:/root:/bin/sh", "")
	f.Fuzz(func(t *testing.T, spec, passwd, group string) {
		u, err := ResolveUser(spec, []byte(passwd), []byte(group))
		if err != nil {
			return
		}
		if u.UID > 1<<31-2 || u.GID > 1<<31-2 || u.Home == "" {
			t.Fatalf("ResolveUser(%q) = %+v", spec, u)
		}
		for _, g := range u.AdditionalGids {
			if g > 1<<31-2 || g == u.GID {
				t.Fatalf("additional gid %d of %+v", g, u)
			}
		}
	})
}

// TestResolvConf checks the resolv.conf of a container the node offers DNS to, and
// that an offer resolv.conf cannot express (a port other than 53) writes none.
func TestResolvConf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		offer Offer
		want  string // lines after the comment; "" for no file
	}{
		{"search", Offer{DNS: netip.MustParseAddrPort("127.0.0.11:53"), Search: []string{"prod.qnet"}}, "nameserver 127.0.0.11\nsearch prod.qnet\n"},
		{"no search", Offer{DNS: netip.MustParseAddrPort("127.0.0.11:53")}, "nameserver 127.0.0.11\n"},
		{"bad search left out", Offer{DNS: netip.MustParseAddrPort("127.0.0.11:53"), Search: []string{"a b\nnameserver 1.2.3.4", "", "ok.qnet"}}, "nameserver 127.0.0.11\nsearch ok.qnet\n"},
		{"other port", Offer{DNS: netip.MustParseAddrPort("127.0.0.11:5353")}, ""},
		{"no DNS", Offer{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := resolvConf(tc.offer)
			if ok != (tc.want != "") {
				t.Fatalf("resolvConf = %q, %v", got, ok)
			}
			var lines []string
			for l := range strings.Lines(got) {
				if !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			if strings.Join(lines, "") != tc.want {
				t.Errorf("resolvConf = %q, want %q after the comment", got, tc.want)
			}
		})
	}
}

func TestSetEnv(t *testing.T) {
	t.Parallel()
	env := []string{"A=1", "QNET_DNS=127.0.0.1:7753", "B=2"}
	got := setEnv(env, "QNET_DNS", "127.0.0.11:53")
	if !slices.Equal(got, []string{"A=1", "B=2", "QNET_DNS=127.0.0.11:53"}) {
		t.Errorf("setEnv = %v", got)
	}
	if env[1] != "QNET_DNS=127.0.0.1:7753" {
		t.Errorf("setEnv changed its input: %v", env)
	}
	if got := setEnv(nil, "K", "v"); !slices.Equal(got, []string{"K=v"}) {
		t.Errorf("setEnv(nil) = %v", got)
	}
}
