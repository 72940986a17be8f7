package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
)

func TestMain(m *testing.M) { qnettest.Main(m) }

// apiNode is a real node with a raw HTTPS client for its API, so tests can send what
// the Go client never would.
type apiNode struct {
	*qnettest.Node
	hc *http.Client
}

func startNode(t *testing.T) *apiNode {
	t.Helper()
	n := qnettest.StartNode(t, qnettest.Options{})
	tr := &http.Transport{TLSClientConfig: client.PinnedTLS(n.Context.ServerKey)}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiNode{Node: n, hc: &http.Client{Transport: tr, Timeout: time.Minute}}
}

func (n *apiNode) bearer() string { return "Bearer " + n.Token }

// request sends a request with the given Authorization header ("" for none) and
// returns the answer with its whole body.
func (n *apiNode) request(t *testing.T, method, path, authz string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+n.APIAddr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, data
}

// get sends an authorised GET.
func (n *apiNode) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return n.request(t, http.MethodGet, path, n.bearer(), nil)
}

// wantError checks an answer is an api.Error with the status and a message that
// contains each of msgs.
func wantError(t *testing.T, what string, resp *http.Response, body []byte, code int, msgs ...string) api.Error {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s: status %d, want %d; body %s", what, resp.StatusCode, code, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("%s: body is not an api.Error (%v): %s", what, err, body)
	}
	for _, m := range msgs {
		if !strings.Contains(e.Error, m) {
			t.Fatalf("%s: error %q does not say %q", what, e.Error, m)
		}
	}
	return e
}

func decodeJSON[T any](t *testing.T, what string, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: decode %T: %v; body %s", what, v, err, body)
	}
	return v
}

// service returns a defaulted, valid manifest running cmd under sh.
func service(t testing.TB, name string, replicas int, cmd string) *manifest.Service {
	t.Helper()
	svcs, err := manifest.Decode(name+".yaml", fmt.Appendf(nil, `apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: {exec: {command: sh, args: [-c, %q]}}
  replicas: %d
  resources: {cpu: 10m, memory: 16Mi}
  restart: {backoff: 50ms, maxBackoff: 200ms}
`, name, cmd, replicas))
	if err != nil {
		t.Fatal(err)
	}
	svcs[0].Default()
	return svcs[0]
}

// operatorKey is the key of the node's operator.
func operatorKey(t testing.TB, n *qnettest.Node) *identity.Key {
	t.Helper()
	k, err := identity.Load(filepath.Join(n.DataDir, node.OperatorKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// network is the node's network ID.
func network(t testing.TB, n *qnettest.Node) ledger.Hash {
	t.Helper()
	tip, ok, err := n.Store().Tip()
	if err != nil || !ok {
		t.Fatalf("tip: %v %v", ok, err)
	}
	return tip.Network
}

// signed builds a transaction for network signed by key.
func signed(t testing.TB, key *identity.Key, network ledger.Hash, typ ledger.TxType, payload any, expires time.Time) *ledger.Tx {
	t.Helper()
	tx, err := ledger.NewTx(typ, network, payload, expires)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Sign(key); err != nil {
		t.Fatal(err)
	}
	return tx
}

func submitBody(t testing.TB, txs ...*ledger.Tx) []byte {
	t.Helper()
	data, err := json.Marshal(api.SubmitRequest{Txs: txs})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func txJSON(t testing.TB, tx *ledger.Tx) []byte {
	t.Helper()
	data, err := json.Marshal(tx)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// snapshot is what a refused request must leave as it was.
type snapshot struct {
	height   uint64
	services string
}

func takeSnapshot(t testing.TB, n *qnettest.Node) snapshot {
	t.Helper()
	tip, _, err := n.Store().Tip()
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := n.Store().Services()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(svcs)
	return snapshot{tip.Height, string(data)}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	qnettest.WaitFor(t, 20*time.Second, what, cond)
}

// ctxTimeout is a context that ends with the test or after d.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
