package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/apiserver"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/orderer"
	"qnet.dev/qnet/qnettest"
	"qnet.dev/qnet/state"
)

// endpoints holds every route of the API, and paths no route takes, with a body where
// the method takes one.
var endpoints = []struct {
	method, path string
	body         []byte
}{
	{"GET", "/v1/status", nil},
	{"POST", "/v1/txs", []byte(`{"txs":[]}`)},
	{"GET", "/v1/txs/" + strings.Repeat("0", 64), nil},
	{"GET", "/v1/services", nil},
	{"GET", "/v1/services/web", nil},
	{"GET", "/v1/services/web/logs", nil},
	{"GET", "/v1/depots", nil},
	{"GET", "/v1/depots/web-1", nil},
	{"GET", "/v1/depots/web-1/logs?follow=true", nil},
	{"GET", "/v1/nodes", nil},
	{"GET", "/v1/events?follow=true", nil},
	{"GET", "/v1/ledger/blocks", nil},
	{"GET", "/v1/ledger/blocks/0", nil},
	{"POST", "/v1/ledger/verify", nil},
	{"GET", "/v1/no-such-thing", nil},
	{"DELETE", "/v1/services/web", nil},
	{"GET", "/", nil},
}

// TestEveryEndpointNeedsCredential: without a token every path answers 401, with a
// wrong one 403, both as api.Error JSON, and nothing is served or changed.
func TestEveryEndpointNeedsCredential(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	before := takeSnapshot(t, n.Node)
	creds := []struct {
		name, authz string
		code        int
		msg         string
	}{
		{"none", "", http.StatusUnauthorized, "missing credential"},
		{"empty bearer", "Bearer ", http.StatusUnauthorized, "missing credential"},
		{"basic", "Basic dGVzdGVyOnNlY3JldA==", http.StatusUnauthorized, "missing credential"},
		{"token without scheme", n.Token, http.StatusUnauthorized, "missing credential"},
		{"wrong token", "Bearer qnet_not-the-token", http.StatusForbidden, "wrong credential"},
		{"token with a suffix", n.bearer() + "x", http.StatusForbidden, "wrong credential"},
	}
	for _, c := range creds {
		for _, e := range endpoints {
			what := fmt.Sprintf("%s %s with %s credential", e.method, e.path, c.name)
			resp, body := n.request(t, e.method, e.path, c.authz, e.body)
			wantError(t, what, resp, body, c.code, c.msg)
			if c.code == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != `Bearer realm="qnet"` {
				t.Fatalf("%s: WWW-Authenticate %q", what, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	if after := takeSnapshot(t, n.Node); after != before {
		t.Fatalf("state changed by refused requests: %+v -> %+v", before, after)
	}
	// The scheme is case-insensitive; the token is not.
	if resp, body := n.request(t, "GET", "/v1/status", "bearer "+n.Token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("lower-case scheme: %d %s", resp.StatusCode, body)
	}
	resp, body := n.request(t, "GET", "/v1/status", "Bearer "+strings.ToUpper(n.Token), nil)
	wantError(t, "upper-cased token", resp, body, http.StatusForbidden, "wrong credential")
}

// TestNoRoute: paths that are no endpoint answer 404 and known paths asked with the
// wrong method 405, as JSON, never the mux's plain text.
func TestNoRoute(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cases := []struct {
		method, path string
		code         int
		allow        string
		msg          string
	}{
		{"GET", "/v1/no-such-thing", 404, "", "no such endpoint: GET /v1/no-such-thing (the API lives under /v1/)"},
		{"GET", "/v2/status", 404, "", "no such endpoint"},
		{"GET", "/", 404, "", "no such endpoint"},
		{"GET", "/v1/services/web/nope", 404, "", "no such endpoint"},
		{"POST", "/v1/status", 405, "GET", "POST /v1/status: method not allowed (use GET)"},
		{"DELETE", "/v1/services/web", 405, "GET", "method not allowed"},
		{"GET", "/v1/txs", 405, "POST", "method not allowed (use POST)"},
		{"PUT", "/v1/ledger/verify", 405, "POST", "method not allowed"},
	}
	for _, c := range cases {
		resp, body := n.request(t, c.method, c.path, n.bearer(), nil)
		wantError(t, c.method+" "+c.path, resp, body, c.code, c.msg)
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

// TestSubmitRefusesBadInput sends bodies and transactions the door must refuse, each
// with a clear error, and checks the state is as it was after every one.
func TestSubmitRefusesBadInput(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	op := operatorKey(t, n.Node)
	net := network(t, n.Node)
	soon := time.Now().Add(5 * time.Minute)
	apply := func(name string) *ledger.Tx {
		return signed(t, op, net, ledger.TxServiceApply, ledger.ServiceApply{Service: service(t, name, 0, "true")}, soon)
	}

	// A good transaction first, to replay later.
	good := apply("good")
	resp, body := n.request(t, "POST", "/v1/txs", n.bearer(), submitBody(t, good))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("good tx: %d %s", resp.StatusCode, body)
	}
	committed := decodeJSON[api.SubmitResponse](t, "good tx", body).Results[0]
	if committed.Error != "" || committed.Height == 0 || committed.ID != good.ID().String() {
		t.Fatalf("good tx result: %+v", committed)
	}
	// The leader then records the (empty) rollout's completion; after that, nothing
	// changes the state but what the requests below would.
	waitFor(t, "the good service's rollout recorded", func() bool {
		svc, ok, err := n.Store().Service("good")
		return err == nil && ok && svc.CurrentRollout().Phase == ledger.RolloutComplete
	})

	bad := []struct {
		name string
		body []byte
		msg  []string
	}{
		{"not JSON", []byte("txs please"), []string{"request body is not a transaction list", "invalid character"}},
		{"empty body", []byte{}, []string{"request body is not a transaction list", "EOF"}},
		{"a list, not an object", []byte(`[]`), []string{"request body is not a transaction list"}},
		{"no list", []byte(`{}`), []string{"no transactions given"}},
		{"empty list", []byte(`{"txs":[]}`), []string{"no transactions given"}},
		{"null tx", []byte(`{"txs":[null]}`), []string{"transaction 0 is null"}},
		{"second tx null", []byte(`{"txs":[` + string(txJSON(t, apply("x"))) + `,null]}`), []string{"transaction 1 is null"}},
		{"unknown field", []byte(`{"txs":[],"sign":true}`), []string{`unknown field "sign"`}},
		{"unknown tx field", []byte(`{"txs":[{"type":"service.apply","admin":true}]}`), []string{`unknown field "admin"`}},
		{"trailing data", append(submitBody(t, apply("trailing")), []byte(` {"txs":[]}`)...), []string{"unexpected data after the JSON object"}},
		{"trailing garbage", append(submitBody(t, apply("garbage")), 'x'), []string{"unexpected data after the JSON object"}},
		{"too many", []byte(`{"txs":[` + strings.Repeat("null,", ledger.MaxBlockTxs) + `null]}`), []string{"4097 transactions in one request; at most 4096"}},
		{"bad hash", []byte(`{"txs":[{"network":"zz"}]}`), []string{"request body is not a transaction list"}},
	}
	for _, c := range bad {
		before := takeSnapshot(t, n.Node)
		resp, body := n.request(t, "POST", "/v1/txs", n.bearer(), c.body)
		wantError(t, c.name, resp, body, http.StatusBadRequest, c.msg...)
		if after := takeSnapshot(t, n.Node); after != before {
			t.Fatalf("%s: state changed: %+v -> %+v", c.name, before, after)
		}
	}

	// A body over the limit is cut off, not read to its end.
	huge := append([]byte(`{"txs":[{"type":"`), bytes.Repeat([]byte("a"), 9<<20)...)
	huge = append(huge, `"}]}`...)
	resp, body = n.request(t, "POST", "/v1/txs", n.bearer(), huge)
	wantError(t, "oversized body", resp, body, http.StatusRequestEntityTooLarge, "larger than 8388608 bytes")

	forged := apply("forged")
	forgedPayload, _ := json.Marshal(ledger.ServiceApply{Service: service(t, "forged", 5, "true")})
	forged.Payload = forgedPayload

	stranger, err := identity.Generate(false)
	if err != nil {
		t.Fatal(err)
	}
	var otherNet ledger.Hash
	otherNet[0] = 1
	// A payload must be in the compact form it is signed in. encoding/json compacts a
	// payload it sends, so the body is edited by hand.
	spacey := signed(t, op, net, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "good"}, soon)
	spacey.Payload = []byte(`{"name": "good"}`)
	if err := spacey.Sign(op); err != nil {
		t.Fatal(err)
	}
	spaceyBody := bytes.Replace(submitBody(t, spacey), []byte(`{"name":"good"}`), spacey.Payload, 1)
	badManifest := service(t, "badspec", 0, "true")
	badManifest.Spec.Replicas = -1

	type refusal struct {
		name string
		tx   *ledger.Tx
		msg  []string
		body []byte // instead of the tx's own encoding
	}
	refused := []refusal{
		{"forged payload", forged, []string{"does not verify"}, nil},
		{"replayed", good, []string{"replayed transaction", fmt.Sprintf("was already committed in block %d", committed.Height)}, nil},
		{"another network", signed(t, op, otherNet, ledger.TxServiceApply, ledger.ServiceApply{Service: service(t, "elsewhere", 0, "true")}, soon), []string{"wrong network", "is for network " + otherNet.Short()}, nil},
		{"unknown signer", signed(t, stranger, net, ledger.TxServiceApply, ledger.ServiceApply{Service: service(t, "stranger", 0, "true")}, soon), []string{"unknown signer", "is not registered on this network"}, nil},
		{"expired", signed(t, op, net, ledger.TxServiceApply, ledger.ServiceApply{Service: service(t, "late", 0, "true")}, time.Now().Add(-time.Minute)), []string{"transaction expired"}, nil},
		{"expires too late", signed(t, op, net, ledger.TxServiceApply, ledger.ServiceApply{Service: service(t, "early", 0, "true")}, time.Now().Add(2*time.Hour)), []string{"more than 1h0m0s after"}, nil},
		{"operator signs placements", signed(t, op, net, ledger.TxPlacement, ledger.PlacementSet{Remove: []string{"x"}}, soon), []string{"not allowed", "may not sign placement.set transactions"}, nil},
		{"unknown type", signed(t, op, net, "service.explode", ledger.ServiceDelete{Name: "good"}, soon), []string{`unknown transaction type "service.explode"`}, nil},
		{"genesis", signed(t, op, net, ledger.TxGenesis, ledger.ServiceDelete{Name: "good"}, soon), []string{"only valid in block 0"}, nil},
		{"non-canonical payload", spacey, []string{"payload is not in canonical (compact) JSON form"}, spaceyBody},
		{"invalid manifest", signed(t, op, net, ledger.TxServiceApply, ledger.ServiceApply{Service: badManifest}, soon), []string{"invalid manifest", "spec.replicas"}, nil},
		{"delete of an unknown service", signed(t, op, net, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "nope"}, soon), []string{`service "nope"`, "not found"}, nil},
	}
	for _, c := range refused {
		before := takeSnapshot(t, n.Node)
		reqBody := c.body
		if reqBody == nil {
			reqBody = submitBody(t, c.tx)
		}
		resp, body := n.request(t, "POST", "/v1/txs", n.bearer(), reqBody)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("%s: status %d, want 422; body %s", c.name, resp.StatusCode, body)
		}
		res := decodeJSON[api.SubmitResponse](t, c.name, body).Results
		if len(res) != 1 || res[0].Height != 0 || res[0].ID != c.tx.ID().String() {
			t.Fatalf("%s: results %+v", c.name, res)
		}
		for _, m := range c.msg {
			if !strings.Contains(res[0].Error, m) {
				t.Fatalf("%s: error %q does not say %q", c.name, res[0].Error, m)
			}
		}
		if after := takeSnapshot(t, n.Node); after != before {
			t.Fatalf("%s: state changed: %+v -> %+v", c.name, before, after)
		}
	}

	// The same transaction twice in one request is committed once; a bad one beside a
	// good one does not hold the good one back.
	twice := apply("twice")
	resp, body = n.request(t, "POST", "/v1/txs", n.bearer(), submitBody(t, twice, twice, forged))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("twice: status %d; body %s", resp.StatusCode, body)
	}
	res := decodeJSON[api.SubmitResponse](t, "twice", body).Results
	if len(res) != 3 || res[0].Error != "" || res[0].Height == 0 || res[1].Height != 0 ||
		!strings.Contains(res[1].Error, "replayed transaction") || !strings.Contains(res[2].Error, "does not verify") {
		t.Fatalf("twice: results %+v", res)
	}
	if _, ok, _ := n.Store().Service("twice"); !ok {
		t.Fatal("the good transaction beside refused ones did not take effect")
	}

	// A node that cannot order transactions says so with 503, so the sender retries.
	srv := apiserver.New(unordered{n.Node.Node}, qnettest.Logger(t))
	defer srv.Close()
	req := httptest.NewRequest("POST", "/v1/txs", bytes.NewReader(submitBody(t, apply("later"))))
	req.Header.Set("Authorization", n.bearer())
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	wantError(t, "no leader", rec.Result(), rec.Body.Bytes(), http.StatusServiceUnavailable, orderer.ErrNotLeader.Error())
}

// unordered is a node whose ordering layer has no leader.
type unordered struct{ *node.Node }

func (unordered) Submit(context.Context, []*ledger.Tx) ([]orderer.Result, error) {
	return nil, orderer.ErrNotLeader
}

// TestLogs reads a depot's output through both log endpoints and checks their query
// parameters are validated.
func TestLogs(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	svc := service(t, "talker", 1, "echo one; echo two; echo oops >&2; exec sleep 600")
	ticker := service(t, "ticker", 1, "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done")
	if _, err := n.Client.Apply(ctxTimeout(t, 30*time.Second), []*manifest.Service{svc, ticker}); err != nil {
		t.Fatal(err)
	}
	var id string
	waitFor(t, "the talker's depot to write its output", func() bool {
		ps, err := n.Store().Placements(func(p *state.Placement) bool { return p.Service == "talker" })
		if err != nil || len(ps) != 1 {
			return false
		}
		id = ps[0].ID
		resp, body := n.get(t, "/v1/depots/"+id+"/logs")
		return resp.StatusCode == 200 && strings.Contains(string(body), "two\n") && strings.Contains(string(body), "oops\n")
	})

	ok := []struct{ path, want string }{
		{"/v1/depots/" + id + "/logs?stream=stdout", "one\ntwo\n"},
		{"/v1/depots/" + id + "/logs?stream=stdout&tail=1", "two\n"},
		{"/v1/depots/" + id + "/logs?stream=stdout&tail=0", ""},
		{"/v1/depots/" + id + "/logs?stream=stdout&tail=-1&follow=false", "one\ntwo\n"},
		{"/v1/depots/" + id + "/logs?stream=stderr", "oops\n"},
		{"/v1/services/talker/logs?stream=stdout", "[" + id + "] one\n[" + id + "] two\n"},
		{"/v1/services/talker/logs?stream=stderr&tail=5", "[" + id + "] oops\n"},
		{"/v1/services/talker/logs?depot=" + id + "&stream=stdout&tail=1", "two\n"},
	}
	for _, c := range ok {
		resp, body := n.get(t, c.path)
		if resp.StatusCode != 200 || string(body) != c.want {
			t.Errorf("GET %s: %d %q, want %q", c.path, resp.StatusCode, body, c.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", c.path, ct)
		}
	}

	bad := []struct {
		query string
		msg   string
	}{
		{"tail=abc", `tail="abc": want a number of lines (-1 for all)`},
		{"tail=-2", `tail="-2"`},
		{"tail=1.5", `tail="1.5"`},
		{"tail=", ""}, // empty is the default: accepted
		{"stream=both", `stream="both": want stdout, stderr or all`},
		{"stream=STDOUT", `stream="STDOUT"`},
		{"follow=yes", `follow="yes": want true or false`},
		{"follow=2", `follow="2"`},
	}
	for _, base := range []string{"/v1/depots/" + id + "/logs", "/v1/services/talker/logs"} {
		for _, c := range bad {
			resp, body := n.get(t, base+"?"+c.query)
			if c.msg == "" {
				if resp.StatusCode != 200 {
					t.Errorf("GET %s?%s: %d %s", base, c.query, resp.StatusCode, body)
				}
				continue
			}
			wantError(t, base+"?"+c.query, resp, body, http.StatusBadRequest, "query parameter "+c.msg)
		}
	}

	notFound := []struct{ path, msg string }{
		{"/v1/depots/talker-nope/logs", `depot "talker-nope" not found`},
		{"/v1/services/nope/logs", `service "nope" not found`},
		{"/v1/services/talker/logs?depot=talker-nope", `service talker has no depot "talker-nope"`},
		{"/v1/depots/talker-nope", `depot "talker-nope" not found`},
		{"/v1/services/nope", `service "nope" not found`},
		{"/v1/depots?service=nope", `service "nope" not found`},
	}
	for _, c := range notFound {
		resp, body := n.get(t, c.path)
		wantError(t, c.path, resp, body, http.StatusNotFound, c.msg)
	}

	// With follow, lines written after the request arrive as they are written.
	var tickerID string
	waitFor(t, "the ticker's depot to be placed", func() bool {
		ps, err := n.Store().Placements(func(p *state.Placement) bool { return p.Service == "ticker" })
		if err == nil && len(ps) == 1 {
			tickerID = ps[0].ID
		}
		return tickerID != ""
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+n.APIAddr()+"/v1/services/ticker/logs?follow=true&tail=0&stream=stdout", nil)
	req.Header.Set("Authorization", n.bearer())
	resp, err := n.hc.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("follow: %v %v", err, resp)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	deadline := time.After(20 * time.Second)
	for got := 0; got < 3; got++ {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("followed log stream ended")
			}
			if !strings.HasPrefix(line, "["+tickerID+"] tick ") {
				t.Fatalf("followed line %q", line)
			}
		case <-deadline:
			t.Fatal("timed out waiting for followed log lines")
		}
	}
}
