package health

import (
	"net/url"
	"strconv"
	"testing"

	"qnet.dev/qnet/manifest"
)

// FuzzNewCheck feeds NewCheck the parts of a probe that come from a manifest: the port
// (a name or a number) and the HTTP path. It must never panic, and an HTTP check it
// accepts must go to the depot's host and a port of the depot, whatever the path says.
func FuzzNewCheck(f *testing.F) {
	for _, s := range [][2]string{
		{"http", "/healthz"}, {"", "/"}, {"8080", "/ready?x=1"}, {"9999", ""},
		{"0", "/"}, {"65536", "/"}, {"-1", "/"}, {"web", "healthz"}, {"http", "//evil.example/"},
		{"http", "/@evil.example"}, {"http", "/a b"}, {"http", "/%zz"}, {"http", "/\x00"},
		{"99999999999999999999", "/"}, {" http ", "/#frag"},
	} {
		f.Add(s[0], s[1])
	}
	target := Target{
		Ports:        map[string]int{"http": 20001, "metrics": 20002},
		ServicePorts: map[int]int{8080: 20001},
		DefaultPort:  20001,
	}
	f.Fuzz(func(t *testing.T, port, path string) {
		c, err := NewCheck(&manifest.Probe{HTTP: &manifest.HTTPCheck{Path: path, Port: port}}, target)
		if err != nil {
			if c != nil {
				t.Fatalf("NewCheck returned a check and an error %v", err)
			}
			return
		}
		hc, ok := c.(*httpCheck)
		if !ok {
			t.Fatalf("NewCheck with an http probe returned %T", c)
		}
		u, err := url.Parse(hc.url)
		if err != nil {
			t.Fatalf("check URL %q does not parse: %v", hc.url, err)
		}
		if u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
			t.Fatalf("check URL %q leaves the depot's host", hc.url)
		}
		p, err := strconv.Atoi(u.Port())
		if err != nil || p < 1 || p > 65535 {
			t.Fatalf("check URL %q has port %q", hc.url, u.Port())
		}
		if _, err := NewCheck(&manifest.Probe{TCP: &manifest.TCPCheck{Port: port}}, target); err != nil {
			t.Fatalf("port %q resolves for http but not for tcp: %v", port, err)
		}
	})
}
