package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/examples"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/state"
)

// fakeNode is an HTTPS server that answers a few API endpoints with fixed documents, so
// the commands' wiring (flags -> client -> output) is tested without a node. The real
// node is the lead's end-to-end tests' business.
type fakeNode struct {
	t      *testing.T
	srv    *httptest.Server
	config string // context file naming the server

	mu     sync.Mutex
	detail api.ServiceDetail
	txs    []*ledger.Tx
}

const fakeToken = "qnet_testtoken"

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	f := &fakeNode{t: t}
	spec := helloSpec(t)
	f.detail = api.ServiceDetail{Service: api.Service{Name: "hello", Revision: 1, AppliedBy: "alice", Desired: 3,
		Placed: 3, Running: 3, Ready: 3, Spec: spec, Created: time.Now().Add(-time.Minute)}}
	for i := range 3 {
		d := fixedDepots()[0]
		d.ID = fmt.Sprintf("hello-%08d", i)
		f.detail.Depots = append(f.detail.Depots, d)
	}
	network := ledger.Hash{1, 2, 3}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, api.Status{Node: "0123456789abcdef", Network: "dev", NetworkID: network.String()})
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.txs) == 0 {
			reply(w, []api.Service{})
			return
		}
		reply(w, []api.Service{f.detail.Service})
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "hello" {
			w.WriteHeader(http.StatusNotFound)
			reply(w, api.Error{Error: fmt.Sprintf("service %q not found", r.PathValue("name"))})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		reply(w, f.detail)
	})
	mux.HandleFunc("GET /v1/depots", func(w http.ResponseWriter, r *http.Request) {
		var out []api.Depot
		for _, d := range fixedDepots() {
			if s := r.URL.Query().Get("service"); s == "" || s == d.Service {
				out = append(out, d)
			}
		}
		reply(w, out)
	})
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		reply(w, []api.Node{{ID: "0123456789abcdef", Name: "laptop", OS: "linux", Arch: "amd64", CPU: 2000, Memory: 4 << 30, Alive: true}})
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		// The recent events, then the stream ends (follow is the live node's business).
		enc := json.NewEncoder(w)
		for _, e := range fakeEvents {
			if s := r.URL.Query().Get("service"); s == "" || s == e.Service {
				enc.Encode(e)
			}
		}
	})
	mux.HandleFunc("GET /v1/services/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		fmt.Fprintf(w, "[hello-1a2b3c4d] follow=%s tail=%s stream=%s depot=%s\n", q.Get("follow"), q.Get("tail"), q.Get("stream"), q.Get("depot"))
	})
	mux.HandleFunc("POST /v1/txs", func(w http.ResponseWriter, r *http.Request) {
		var req api.SubmitRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		var res api.SubmitResponse
		for _, tx := range req.Txs {
			f.txs = append(f.txs, tx)
			res.Results = append(res.Results, api.TxResult{ID: tx.ID().String(), Height: uint64(len(f.txs))})
		}
		reply(w, res)
	})
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fakeToken {
			w.WriteHeader(http.StatusUnauthorized)
			reply(w, api.Error{Error: "bad token"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)

	dir := t.TempDir()
	key, err := identity.Generate(false)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "operator.key")
	if err := key.Save(keyPath); err != nil {
		t.Fatal(err)
	}
	cfg := &client.Config{Contexts: map[string]*client.Context{}}
	cfg.Set("fake", &client.Context{Server: f.srv.URL, Token: fakeToken, OperatorKey: keyPath,
		ServerKey: client.KeyPin(f.srv.Certificate()), Network: "dev"})
	f.config = filepath.Join(dir, "config.yaml")
	if err := cfg.Save(f.config); err != nil {
		t.Fatal(err)
	}
	return f
}

// run runs qnet against the fake node.
func (f *fakeNode) run(args ...string) (int, string, string) {
	f.t.Helper()
	return run(f.t, append([]string{"--config", f.config}, args...)...)
}

func TestGetAgainstNode(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	f.txs = []*ledger.Tx{{}} // the service exists

	code, out, errOut := f.run("get", "services")
	if code != 0 || !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "hello ") || !strings.Contains(out, "3/3") {
		t.Errorf("get services: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = f.run("get", "svc", "hello", "-o", "json")
	var svc api.Service
	if code != 0 || json.Unmarshal([]byte(out), &svc) != nil || svc.Name != "hello" || svc.Spec == nil {
		t.Errorf("get svc hello -o json: exit %d\n%s", code, out)
	}
	code, _, errOut = f.run("get", "svc", "nope")
	if code != 1 || !strings.Contains(errOut, `Error: service "nope" not found`) {
		t.Errorf("get svc nope: exit %d, stderr %q", code, errOut)
	}

	code, out, _ = f.run("get", "depots", "--service", "hello")
	if code != 0 || !strings.Contains(out, "hello-1a2b3c4d") || !strings.Contains(out, "hello-5e6f7a8b") || strings.Contains(out, "web-") {
		t.Errorf("get depots --service hello: exit %d\n%s", code, out)
	}
	code, out, _ = f.run("get", "depot", "web-00000000", "-o", "yaml")
	if code != 0 || !strings.HasPrefix(out, "id: web-00000000\n") {
		t.Errorf("get depot web-00000000 -o yaml: exit %d\n%s", code, out)
	}
	code, _, errOut = f.run("get", "depot", "web-1")
	if code != 1 || !strings.Contains(errOut, `depot "web-1" not found`) {
		t.Errorf("get depot web-1: exit %d, stderr %q", code, errOut)
	}

	code, out, _ = f.run("get", "nodes")
	if code != 0 || !strings.Contains(out, "laptop") || !strings.Contains(out, "0/2") || !strings.Contains(out, "0/4Gi") {
		t.Errorf("get nodes: exit %d\n%s", code, out)
	}

	code, out, _ = f.run("describe", "service", "hello")
	for _, want := range []string{"Name:", "hello", "Replicas:", "3 desired", "Depots:", "hello-00000002", "Events:"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe service hello lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}

func TestLogsPassesOptions(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	code, out, errOut := f.run("logs", "hello", "--tail", "5", "--stream", "stderr", "--depot", "hello-1a2b3c4d")
	if want := "[hello-1a2b3c4d] follow=false tail=5 stream=stderr depot=hello-1a2b3c4d\n"; code != 0 || out != want {
		t.Errorf("logs: exit %d, stdout %q (want %q), stderr %q", code, out, want, errOut)
	}
	code, out, _ = f.run("logs", "hello")
	if want := "[hello-1a2b3c4d] follow=false tail=-1 stream= depot=\n"; code != 0 || out != want {
		t.Errorf("logs: exit %d, stdout %q, want %q", code, out, want)
	}
}

func TestApplyAgainstNode(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "hello.yaml", string(examples.Hello))
	code, out, errOut := f.run("apply", "-f", file, "--wait", "--timeout", "30s")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	want := "service/hello created (revision 1)\n" +
		"service/hello: 3/3 ready, 3/3 up-to-date, 3 running (revision 1)\n" +
		"service/hello ready: 3/3 replicas (revision 1)\n"
	if out != want {
		t.Errorf("apply output:\n%s\nwant:\n%s", out, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.txs) != 1 || f.txs[0].Type != ledger.TxServiceApply || len(f.txs[0].Sig.Ed25519) == 0 {
		t.Errorf("node got %d transactions, want one signed service.apply: %+v", len(f.txs), f.txs)
	}
}

func TestApplyWaitTimeoutSaysWhy(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	f.detail.Ready, f.detail.Running = 1, 1
	f.detail.Unschedulable = "1 replica: no node has 32Mi of memory free"
	f.detail.Depots = append(fixedDepots()[:2], f.detail.Depots[0])
	file := writeFile(t, t.TempDir(), "hello.yaml", string(examples.Hello))
	code, out, errOut := f.run("apply", "-f", file, "--wait", "--timeout", "300ms")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "service/hello created (revision 1)") || !strings.Contains(out, "1/3 ready") {
		t.Errorf("stdout:\n%s", out)
	}
	for _, want := range []string{
		"Error: service/hello not ready after 300ms: 1/3 replicas ready",
		"unschedulable: 1 replica: no node has 32Mi of memory free",
		"depot hello-5e6f7a8b on 0123456789abcdef is exited (exit 1): exited with code 1: bind: address in use",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestUnreachableNode(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	dir := t.TempDir()
	cfg := &client.Config{Contexts: map[string]*client.Context{}}
	cfg.Set("gone", &client.Context{Server: "https://" + addr, Token: "t", ServerKey: "00"})
	path := filepath.Join(dir, "config.yaml")
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "--config", path, "get", "services")
	if code != 1 || !strings.Contains(errOut, "Error: reach qnet API at "+addr) || !strings.Contains(errOut, "is the node running?") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(errOut, "Usage:") {
		t.Errorf("a runtime failure showed usage:\n%s", errOut)
	}
}

func TestNoContext(t *testing.T) {
	t.Parallel()
	code, _, errOut := run(t, "--config", filepath.Join(t.TempDir(), "none.yaml"), "get", "nodes")
	if code != 1 || !strings.Contains(errOut, "no qnet context is set") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestContextCommands(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := &client.Config{Contexts: map[string]*client.Context{}}
	cfg.Set("lab", &client.Context{Server: "https://10.0.0.5:7700", Token: "qnet_secret_lab", Network: "lab"})
	cfg.Set("home", &client.Context{Server: "https://127.0.0.1:7700", Token: "qnet_secret_home", Network: "home"})
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	c := func(args ...string) (int, string, string) {
		return run(t, append([]string{"--config", path}, args...)...)
	}
	code, out, _ := c("context", "list")
	want := "CURRENT   NAME   SERVER                   NETWORK\n" +
		"*         home   https://127.0.0.1:7700   home\n" +
		"          lab    https://10.0.0.5:7700    lab\n"
	if code != 0 || out != want {
		t.Errorf("context list: exit %d\n%s\nwant:\n%s", code, out, want)
	}
	if code, out, _ = c("context", "use", "lab"); code != 0 || out != "Switched to context \"lab\".\n" {
		t.Errorf("context use lab: exit %d, %q", code, out)
	}
	code, out, _ = c("context", "show")
	if code != 0 || !strings.Contains(out, "https://10.0.0.5:7700") || strings.Contains(out, "qnet_secret") {
		t.Errorf("context show (the token must not show): exit %d\n%s", code, out)
	}
	code, out, _ = c("context", "show", "home", "-o", "json")
	if code != 0 || !strings.Contains(out, `"server": "https://127.0.0.1:7700"`) || strings.Contains(out, "qnet_secret") {
		t.Errorf("context show home -o json: exit %d\n%s", code, out)
	}
	if code, _, errOut := c("context", "use", "nope"); code != 1 || !strings.Contains(errOut, `context "nope" is not in`) {
		t.Errorf("context use nope: exit %d, %q", code, errOut)
	}
	if code, _, _ := c("context", "delete", "lab"); code != 0 {
		t.Errorf("context delete lab: exit %d", code)
	}
	after, err := client.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := after.Contexts["lab"]; ok || after.Current != "" || after.Contexts["home"] == nil {
		t.Errorf("after delete: %+v", after)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "qnet ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "version", "-o", "json")
	var v versionInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" || v.Go == "" {
		t.Errorf("version -o json: exit %d, %q", code, out)
	}
}

func TestAPIKeyPinMatchesServedCertificate(t *testing.T) {
	t.Parallel()
	key, err := identity.Generate(true)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := node.APIKeyPin(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := node.ServerTLS(key, "n1").GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := client.KeyPin(cert.Leaf); got != pin {
		t.Errorf("APIKeyPin = %s, the served certificate pins as %s", pin, got)
	}
	other, _ := identity.Generate(false)
	if p2, _ := node.APIKeyPin(other); p2 == pin {
		t.Error("two keys have one pin")
	}
}

func TestLedgerVerifyOfflineNeedsALedger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, _, errOut := run(t, "ledger", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(errOut, "holds no ledger") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, node.StateFile)); !os.IsNotExist(err) {
		t.Errorf("verify created a state store in an empty dir")
	}
}

var fakeEvents = []state.Event{
	{Time: now, Height: 4, Kind: "service.applied", Service: "hello", Message: "revision 1 of hello applied by alice"},
	{Time: now, Height: 5, Kind: "node.updated", Node: "0123456789abcdef", Message: "node laptop updated"},
}

func TestEvents(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	code, out, _ := f.run("events")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[2], "node laptop updated") {
		t.Errorf("events: exit %d\n%s", code, out)
	}
	code, out, _ = f.run("events", "--service", "hello", "-o", "json")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	var e state.Event
	if code != 0 || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &e) != nil || e.Kind != "service.applied" {
		t.Errorf("events --service hello -o json: exit %d\n%s", code, out)
	}
}
