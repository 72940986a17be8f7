package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/qnettest"
)

// TestServiceDiscovery runs a service on one node and reaches it from another by name:
// the other node's DNS answers its stable address and its ready replicas, and its proxy
// carries a connection through the tunnel to the node that runs a replica.
func TestServiceDiscovery(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 2, qnettest.Options{})
	ctx := context.Background()
	applyHello(t, nodes[0], "web", 2, fmt.Sprintf(`  ports: [{name: http, port: 8080}]
  placement: {constraints: ["id == %s"]}
`, nodes[1].ID()))
	d := waitReady(t, nodes[0], "web")
	client := nodes[0]
	svc, _, err := client.Store().Service("web")
	if err != nil || svc.VIP == "" {
		t.Fatalf("web has no stable address: %+v %v", svc, err)
	}

	// DNS on the node that runs no replica.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, network, client.DNSAddr())
	}}
	qnettest.WaitFor(t, 10*time.Second, "DNS to answer web's address", func() bool {
		addrs, err := r.LookupHost(ctx, "web.test.qnet")
		return err == nil && len(addrs) == 1 && addrs[0] == svc.VIP
	})
	_, srvs, err := r.LookupSRV(ctx, "http", "tcp", "web.test.qnet")
	if err != nil || len(srvs) != len(d.Depots) {
		t.Fatalf("SRV of web: %v %+v, want %d replicas", err, srvs, len(d.Depots))
	}

	// The proxy of node 0 reaches the replicas on node 1 through the tunnel.
	addr := proxyAddr(t, client, "web", "http")
	seen := map[string]bool{}
	for range 20 {
		code, body := get(t, addr, "/")
		if code != 200 {
			t.Fatalf("through the proxy: %d %q\n%+v", code, body, client.Proxy().Stats())
		}
		for _, dp := range d.Depots {
			if strings.Contains(body, dp.ID) {
				seen[dp.ID] = true
			}
		}
	}
	if len(seen) == 0 {
		t.Fatalf("no answer named a replica of web")
	}
}

// TestIngress exposes a service and reaches it through the ingress of a node that runs
// no replica: by host name, under the manifest's rate limit, with request bodies
// checked against its schema before they reach the service.
func TestIngress(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 2, qnettest.Options{})
	applyHello(t, nodes[0], "web", 1, fmt.Sprintf(`  ports: [{name: http, port: 8080, expose: true}]
  placement: {constraints: ["id == %s"]}
  ingress:
    rateLimit: 5/s
    burst: 5
    schemaJSON: {type: object, required: [qty], properties: {qty: {type: integer}}}
`, nodes[1].ID()))
	d := waitReady(t, nodes[0], "web")
	in := nodes[0].IngressAddr()
	do := func(method, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+in+"/", strings.NewReader(body))
		req.Host = "web.test.qnet"
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var code int
	var body string
	qnettest.WaitFor(t, 10*time.Second, "the ingress to route web", func() bool {
		code, body = do("GET", "")
		return code == 200
	})
	if !strings.Contains(body, d.Depots[0].ID) {
		t.Fatalf("ingress answer %q does not name the replica %s", body, d.Depots[0].ID)
	}
	if code, body := do("POST", `{"qty": "many"}`); code != 400 || !strings.Contains(body, "qty") {
		t.Fatalf("a body the schema refuses: %d %q, want 400 naming qty", code, body)
	}
	limited := 0
	for range 30 {
		if code, _ := do("GET", ""); code == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("30 requests at once under a limit of 5/s burst 5: none was limited")
	}
	st := nodes[0].Ingress().Stats()
	if len(st.Routes) != 1 || st.Routes[0].SchemaRejected != 1 || st.Routes[0].Limited == 0 {
		t.Fatalf("ingress counters: %+v", st.Routes)
	}
}

// TestReceiptsAndAudit sends traffic from one node's proxy to a replica on another:
// both ends co-sign a receipt of each connection, commit batch roots to the ledger,
// and the audit finds every flow agreed. A receipt altered afterwards in one node's
// log is found out, and that node named.
func TestReceiptsAndAudit(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 2, qnettest.Options{})
	ctx := context.Background()
	applyHello(t, nodes[0], "web", 1, fmt.Sprintf(`  ports: [{name: http, port: 8080}]
  placement: {constraints: ["id == %s"]}
`, nodes[1].ID()))
	waitReady(t, nodes[0], "web")
	addr := proxyAddr(t, nodes[0], "web", "http")
	const flows = 3
	for range flows {
		// A connection of its own each time: one flow, one receipt.
		tr := &http.Transport{DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
	}
	var rep *api.AuditReport
	var err error
	qnettest.WaitFor(t, 20*time.Second, "every flow's receipt committed and agreed", func() bool {
		rep, err = nodes[0].Client.Audit(ctx)
		return err == nil && rep.Flows >= flows && rep.Agreed == rep.Flows && len(rep.Findings) == 0 && committed(t, nodes[0], 2)
	})

	// Alter what node 1 says it received in one of its receipts.
	files, _ := filepath.Glob(filepath.Join(nodes[1].DataDir, "receipts", "*.jsonl"))
	if len(files) == 0 {
		t.Fatal("node 1 keeps no receipt log")
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	altered := regexp.MustCompile(`"bytesOut":(\d+)`).ReplaceAll(data, []byte(`"bytesOut":1${1}`))
	if bytes.Equal(altered, data) {
		t.Fatalf("no receipt to alter in %s", files[0])
	}
	if err := os.WriteFile(files[0], altered, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = nodes[0].Client.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, f := range rep.Findings {
		named = named || slices.Contains(f.Nodes, nodes[1].ID())
	}
	if !named {
		t.Fatalf("the altered receipt of node %s went unnoticed: %+v", nodes[1].ID(), rep.Findings)
	}
}

// committed reports whether at least n nodes have a receipt batch on the ledger.
func committed(t *testing.T, n *qnettest.Node, nodes int) bool {
	bs, err := n.Store().ReceiptBatches()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, b := range bs {
		seen[b.Node] = true
	}
	return len(seen) >= nodes
}

// TestFlowsAllow has a depot whose manifest allows it to reach only another service
// connect (and hold the connection two seconds) to a third through its node's proxy: the proxy refuses it and records the
// refusal, which the audit lists; the node's own users pass.
func TestFlowsAllow(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("the calling depot is a bash loop; bash is not installed")
	}
	n := qnettest.StartNode(t, qnettest.Options{})
	ctx := context.Background()
	applyHello(t, n, "db", 1, "  ports: [{name: http, port: 8080}]\n")
	waitReady(t, n, "db")
	addr := applyProber(t, n, "web", "db", "http", "tcp", "")
	refused := func() bool {
		rep, err := n.Client.Audit(ctx)
		if err != nil {
			return false
		}
		for _, r := range rep.Refusals {
			if r.FromService == "web" && r.ToService == "db" && r.Node == n.ID() {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(60 * time.Second)
	for !refused() {
		if time.Now().After(deadline) {
			ds, _ := n.Client.Depots(ctx, "web")
			t.Fatalf("no refused flow from web to db in the audit after 60s; proxy %+v; web depots %+v", n.Proxy().Stats().Ports, ds)
		}
		time.Sleep(20 * time.Millisecond) // polling the audit, with a deadline
	}
	// This test process is not a depot: it passes.
	if code, _ := get(t, addr, "/"); code != 200 {
		t.Fatalf("a connection from outside any depot got %d", code)
	}
}

// proxyAddr waits until node n's proxy offers the service's port and returns its
// address there.
func proxyAddr(t *testing.T, n *qnettest.Node, service, port string) string {
	t.Helper()
	var addr string
	qnettest.WaitFor(t, 10*time.Second, "the proxy to offer "+service+"/"+port, func() bool {
		a, ok := n.Proxy().Addr(service, port)
		addr = a
		return ok && a != ""
	})
	return addr
}

// applyProber waits until node n's proxy offers service's port, then applies a service
// called name whose depot, a bash loop, opens a socket to it (bash's /dev/tcp or
// /dev/udp, by proto), sends line (if any) and holds the socket two seconds, again and
// again; its manifest allows flows to "cache" alone. It returns the port's address.
func applyProber(t *testing.T, n *qnettest.Node, name, service, port, proto, line string) string {
	t.Helper()
	addr := proxyAddr(t, n, service, port)
	host, p, _ := net.SplitHostPort(addr)
	send := ""
	if line != "" {
		send = " echo " + line + " >&3;"
	}
	svcs, err := manifest.Decode(name+".yaml", fmt.Appendf(nil, `apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: {exec: {command: bash, args: ["-c", "while :; do exec 3<>/dev/%s/%s/%s;%s sleep 2; exec 3>&-; done"]}}
  resources: {cpu: 200m, memory: 32Mi}
  flows: {allow: [cache]}
`, name, proto, host, p, send))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Client.Apply(context.Background(), svcs); err != nil {
		t.Fatal(err)
	}
	return addr
}

// applyHello applies a service of the example HTTP server (readiness probed every
// 100 ms) through node n; extra are more spec lines, indented by two spaces.
func applyHello(t *testing.T, n *qnettest.Node, name string, replicas int, extra string) {
	t.Helper()
	svcs := decode(t, fmt.Sprintf(`apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: {exec: {command: qnet, args: [example-hello]}}
  replicas: %d
  resources: {cpu: 20m, memory: 32Mi}
  health:
    readiness: {http: /ready, interval: 100ms}
%s`, name, replicas, extra))
	if _, err := n.Client.Apply(context.Background(), svcs); err != nil {
		t.Fatal(err)
	}
}
