package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRolloutsUnderLoad: while a client loop hits a service through its stable address
// (found through a node's DNS, served by the agent's proxy), roll out a good revision,
// then one whose depots crash at start (the rollout stops and reverts), then undo to the
// first revision: not one request fails. Real processes: a one-node testnet and the
// qnet CLI.
func TestRolloutsUnderLoad(t *testing.T) {
	u := newUser(t)
	tn := upTestnet(u, 1)
	spec, err := os.ReadFile(filepath.Join("testdata", "rollout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(version, command string) string {
		s := strings.Replace(string(spec), `VERSION: "1"`, `VERSION: "`+version+`"`, 1)
		if command != "" {
			s = strings.Replace(s, "command: qnet\n      args: [example-hello]", "command: "+command, 1)
		}
		p := filepath.Join(u.dir, "web-"+version+".yaml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctxName := "testnet-e2e"
	r := u.ok("--context", ctxName, "apply", "-f", write("1", ""), "--wait", "--timeout", "60s")
	if !strings.Contains(r.stdout, "ready") {
		t.Fatalf("apply of revision 1:\n%s", r)
	}

	// The service's stable address, as a depot would find it.
	st := tn.status()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, st[0].DNS)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	addrs, err := res.LookupHost(ctx, "web.e2e.qnet")
	cancel()
	if err != nil || len(addrs) != 1 {
		t.Fatalf("DNS for web.e2e.qnet: %v %v", addrs, err)
	}
	url := "http://" + net.JoinHostPort(addrs[0], "8080") + "/"

	var (
		mu     sync.Mutex
		served int
		failed []string
		wg     sync.WaitGroup
	)
	done := make(chan struct{})
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond) // the client's pace
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			resp, err := hc.Get(url)
			mu.Lock()
			switch {
			case err != nil:
				failed = append(failed, err.Error())
			case resp.StatusCode != 200:
				failed = append(failed, resp.Status)
			default:
				served++
			}
			mu.Unlock()
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	})
	stopLoop := func() {
		select {
		case <-done:
		default:
			close(done)
		}
		wg.Wait()
	}
	defer stopLoop()

	// A good revision.
	r = u.ok("--context", ctxName, "apply", "-f", write("2", ""), "--wait", "--timeout", "60s")
	if !strings.Contains(r.stdout, "revision 2") {
		t.Fatalf("apply of revision 2:\n%s", r)
	}
	// A revision whose depots exit at once: apply --wait fails, the rollout reverts.
	r = u.qnet("--context", ctxName, "apply", "-f", write("3", "'false'"), "--wait", "--timeout", "60s")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "revert") {
		t.Fatalf("apply of a broken revision: want a failure that says it was reverted\n%s", r)
	}
	// Back to the first revision.
	r = u.ok("--context", ctxName, "rollout", "undo", "web", "--to-revision", "1", "--wait", "--timeout", "60s")
	h := u.ok("--context", ctxName, "rollout", "history", "web")
	if !strings.Contains(h.stdout, "undo to revision 1") {
		t.Fatalf("rollout history after undo:\n%s\n%s", r, h)
	}
	stopLoop()
	mu.Lock()
	defer mu.Unlock()
	if len(failed) > 0 || served < 50 {
		t.Fatalf("%d requests served, %d failed during the rollouts: %v", served, len(failed), failed)
	}
	t.Logf("%d requests through the stable address during three rollouts, none failed", served)
}
