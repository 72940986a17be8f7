package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/netsvc/proxy"
	"qnet.dev/qnet/qnettest"
)

// callerSource is a static HTTP server for a container: GET /call?name=N&port=P
// resolves N (through /etc/resolv.conf, or with via=env through $QNET_DNS alone), GETs
// http://ADDR:P/ and answers "ADDR STATUS BODY", or 502 with what failed; GET /env
// answers $QNET_DNS and the container's /etc/resolv.conf.
const callerSource = `package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	http.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		conf, _ := os.ReadFile("/etc/resolv.conf")
		fmt.Fprintf(w, "QNET_DNS=%s\n%s", os.Getenv("QNET_DNS"), conf)
	})
	http.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		res := net.DefaultResolver
		if q.Get("via") == "env" {
			server := os.Getenv("QNET_DNS")
			res = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, server)
			}}
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		addrs, err := res.LookupHost(ctx, q.Get("name"))
		if err != nil {
			http.Error(w, "resolve: "+err.Error(), http.StatusBadGateway)
			return
		}
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + net.JoinHostPort(addrs[0], q.Get("port")) + "/")
		if err != nil {
			http.Error(w, "get "+addrs[0]+": "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(w, "%s %d %s", addrs[0], resp.StatusCode, body)
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

// TestContainerReachesServices runs container depots that find a service by name
// through the node's DNS (by /etc/resolv.conf's search domain, and through $QNET_DNS)
// and GET it at its VIP, which their node's proxy answers from inside the container's
// network namespace and carries through the tunnel to the replica on the other node;
// a container whose flows.allow does not list the service is refused, and the refusal
// is in the audit. A restarted node offers its services to the containers it adopts.
func TestContainerReachesServices(t *testing.T) {
	needContainers(t)
	bin := buildStatic(t, "caller", callerSource)
	nodes := qnettest.StartNetwork(t, 2, qnettest.Options{})
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	if _, err := a.Client.BuildImage(ctx, bin, "caller:1", depot.BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	applyHello(t, a, "db", 1, fmt.Sprintf("  ports: [{name: http, port: 8080}]\n  placement: {constraints: [\"id == %s\"]}\n", b.ID()))
	caller := func(name, allow string) string {
		return fmt.Sprintf(`apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: {image: caller:1}
  resources: {cpu: 100m, memory: 64Mi}
  ports: [{name: http, port: 8080}]
  health:
    readiness: {http: /healthz, interval: 100ms}
  flows: {allow: [%s]}
  placement: {constraints: ["id == %s"]}
`, name, allow, a.ID())
	}
	if _, err := a.Client.Apply(ctx, decode(t, caller("web", "db")+"---\n"+caller("rogue", "web"))); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"db", "web", "rogue"} {
		waitReady(t, a, svc)
	}
	web, rogue := depotOf(t, a, "web"), depotOf(t, a, "rogue")
	var dbVIP string
	for _, sp := range a.Catalog().Ports() {
		if sp.Service == "db" {
			dbVIP = sp.VIP.String()
		}
	}
	if dbVIP == "" {
		t.Fatalf("db has no VIP in the catalog: %+v", a.Catalog().Ports())
	}

	code, body := get(t, web.Addrs["http"], "/env")
	if code != 200 || !strings.Contains(body, "QNET_DNS=127.0.0.11:53\n") || !strings.Contains(body, "nameserver 127.0.0.11\n") || !strings.Contains(body, "search test.qnet\n") {
		t.Fatalf("the container's DNS settings: %d %q", code, body)
	}
	callDB := func(call string) (int, string) {
		code, body := get(t, web.Addrs["http"], call)
		if code != 200 || !strings.HasPrefix(body, dbVIP+" 200 hello from ") || !strings.Contains(body, "(service db, node "+b.ID()+")") {
			t.Errorf("web %s: %d %q; want db's VIP %s and the answer of its replica on node %s", call, code, body, dbVIP, b.ID())
		}
		return code, body
	}
	callDB("/call?name=db&port=8080")
	callDB("/call?name=db.test.qnet&port=8080&via=env")
	if t.Failed() {
		t.FailNow()
	}
	// The containers' connections are in the books of node a's proxy, like those to
	// its own listener (the two calls may share a kept-alive connection).
	dbStats := func() proxy.PortStats {
		for _, ps := range a.Proxy().Stats().Ports {
			if ps.Service == "db" && ps.Port == "http" {
				return ps
			}
		}
		return proxy.PortStats{}
	}
	before := dbStats()
	if before.Accepted < 1 || before.Refused != 0 {
		t.Fatalf("db's port on node a after two calls from web: %+v; want them accepted", before)
	}

	code, body = get(t, rogue.Addrs["http"], "/call?name=db&port=8080")
	if code != 502 || !strings.Contains(body, "get "+dbVIP) {
		t.Fatalf("rogue, not allowed to reach db, got %d %q; want its connection closed", code, body)
	}
	if st := dbStats(); st.Accepted != before.Accepted+1 || st.Refused != 1 {
		t.Fatalf("db's port on node a after rogue's call: %+v; want one more accepted, and refused", st)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		rep, err := a.Client.Audit(ctx)
		found := false
		if err == nil {
			for _, r := range rep.Refusals {
				found = found || (r.FromService == "rogue" && r.FromDepot == rogue.ID && r.ToService == "db" && r.Node == a.ID())
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refused flow from rogue to db in the audit after 15s: %v %+v", err, rep)
		}
		time.Sleep(20 * time.Millisecond) // polling the audit, with a deadline
	}
	// Allowed to reach web, rogue does (a local replica), and gets web's 404 for /.
	if code, body := get(t, rogue.Addrs["http"], "/call?name=web&port=8080"); code != 200 || !strings.Contains(body, " 404 ") {
		t.Fatalf("rogue to web: %d %q; want web's 404 for /", code, body)
	}
	// A port no service has is reset, as on the node's loopback.
	if code, body := get(t, web.Addrs["http"], "/call?name="+dbVIP+"&port=9"); code != 502 || !(strings.Contains(body, "connection reset") || strings.Contains(body, "broken pipe")) {
		t.Fatalf("web to a VIP port no service has: %d %q; want the connection reset", code, body)
	}

	// The node restarts; its containers keep running, and are served again.
	a = a.Restart(t)
	qnettest.WaitFor(t, 20*time.Second, "web to reach db after its node restarted", func() bool {
		code, body := get(t, web.Addrs["http"], "/call?name=db&port=8080")
		return code == 200 && strings.HasPrefix(body, dbVIP+" 200 hello from ")
	})
}
