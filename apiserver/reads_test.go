package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// eventStream opens /v1/events with the query and sends each event it reads to the
// returned channel until the test ends.
func eventStream(t *testing.T, n *apiNode, query string) <-chan state.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+n.APIAddr()+"/v1/events?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", n.bearer())
	resp, err := n.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("event stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan state.Event, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var e state.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("event stream line %q: %v", sc.Text(), err)
				return
			}
			ch <- e
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return ch
}

// nextEvent waits for the first event on ch that match accepts, failing the test at
// the deadline; the events it passes over are returned too.
func nextEvent(t *testing.T, ch <-chan state.Event, what string, match func(state.Event) bool) (state.Event, []state.Event) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	var skipped []state.Event
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended before %s", what)
			}
			if match(e) {
				return e, skipped
			}
			skipped = append(skipped, e)
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; saw %+v", what, skipped)
		}
	}
}

// TestEventsFollow streams events while services are applied and sees their events
// arrive, once each, on the streams that ask for them.
func TestEventsFollow(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	all := eventStream(t, n, "follow=true")
	// The stream starts with what happened before it was opened (since the node
	// started): the node recording its address and capacity.
	first, _ := nextEvent(t, all, "the node's update", func(e state.Event) bool { return e.Kind == "node.updated" })
	if first.Node != n.ID() {
		t.Fatalf("node.updated event of another node: %+v", first)
	}
	web := eventStream(t, n, "follow=true&service=web")
	other := eventStream(t, n, "follow=1&service=other")

	ctx := ctxTimeout(t, 30*time.Second)
	res, err := n.Client.Apply(ctx, []*manifest.Service{service(t, "web", 0, "true")})
	if err != nil {
		t.Fatal(err)
	}
	applied := func(name string) func(state.Event) bool {
		return func(e state.Event) bool { return e.Kind == "service.applied" && e.Service == name }
	}
	for _, ch := range []<-chan state.Event{all, web} {
		e, _ := nextEvent(t, ch, "web's service.applied", applied("web"))
		if e.Height != res[0].Height || !strings.Contains(e.Message, "revision 1 of web applied by tester") {
			t.Fatalf("service.applied event %+v, want height %d", e, res[0].Height)
		}
	}
	if _, err := n.Client.Apply(ctx, []*manifest.Service{service(t, "other", 0, "true")}); err != nil {
		t.Fatal(err)
	}
	// The filtered stream skips web's events: the first it has is other's.
	if _, skipped := nextEvent(t, other, "other's service.applied", applied("other")); len(skipped) != 0 {
		t.Fatalf("stream of service other carried %+v", skipped)
	}
	// A new revision is a new event, and the old one is not sent again.
	if _, err := n.Client.Apply(ctx, []*manifest.Service{service(t, "web", 0, "false")}); err != nil {
		t.Fatal(err)
	}
	e, skipped := nextEvent(t, web, "web's second revision", applied("web"))
	// The rollout of revision 1 (no replicas) completes in between.
	skipped = slices.DeleteFunc(skipped, func(e state.Event) bool { return strings.HasPrefix(e.Kind, "rollout.") })
	if !strings.Contains(e.Message, "revision 2 of web") || len(skipped) != 0 {
		t.Fatalf("second event %+v after %+v", e, skipped)
	}

	// Without follow the stream holds the recent events and ends.
	resp, body := n.get(t, "/v1/events?service=web")
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d %s", resp.StatusCode, body)
	}
	lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(string(body)), "\n"), func(l string) bool {
		return strings.Contains(l, `"kind":"rollout.`)
	})
	if len(lines) != 2 || !strings.Contains(lines[0], "revision 1 of web") || !strings.Contains(lines[1], "revision 2 of web") {
		t.Fatalf("recent events of web:\n%s", body)
	}
	resp, body = n.get(t, "/v1/events?follow=maybe")
	wantError(t, "follow=maybe", resp, body, http.StatusBadRequest, `query parameter follow="maybe": want true or false`)
}

// TestLedgerReads pages through the blocks, reads single blocks and transactions, and
// asks for ones that do not exist.
func TestLedgerReads(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	ctx := ctxTimeout(t, 30*time.Second)
	var applied []uint64
	for i := range 3 {
		res, err := n.Client.Apply(ctx, []*manifest.Service{service(t, fmt.Sprintf("svc%d", i), 0, "true")})
		if err != nil {
			t.Fatal(err)
		}
		applied = append(applied, res[0].Height)
	}
	// The leader records each rollout's completion in a block of its own: the chain is
	// still until all three are in.
	waitFor(t, "the three rollouts recorded", func() bool {
		for i := range 3 {
			svc, ok, err := n.Store().Service(fmt.Sprintf("svc%d", i))
			if err != nil || !ok || svc.CurrentRollout().Phase != ledger.RolloutComplete {
				return false
			}
		}
		return true
	})
	tip, _, err := n.Store().Tip()
	if err != nil {
		t.Fatal(err)
	}
	heights := func(path string) []uint64 {
		t.Helper()
		resp, body := n.get(t, path)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if strings.TrimSpace(string(body)) == "null" {
			t.Fatalf("GET %s: null, want a list", path)
		}
		var hs []uint64
		for _, b := range decodeJSON[[]api.BlockSummary](t, path, body) {
			hs = append(hs, b.Height)
		}
		return hs
	}
	span := func(from, to uint64) []uint64 {
		var hs []uint64
		for h := from; h <= to; h++ {
			hs = append(hs, h)
		}
		return hs
	}
	pages := []struct {
		query string
		want  []uint64
	}{
		{"", span(0, tip.Height)},
		{"?from=0&limit=2", []uint64{0, 1}},
		{"?from=1&limit=1000", span(1, tip.Height)},
		{"?limit=2", span(tip.Height-1, tip.Height)},
		{fmt.Sprintf("?from=%d", tip.Height), []uint64{tip.Height}},
		{fmt.Sprintf("?from=%d", tip.Height+1), nil},
		{"?from=18446744073709551615", nil},
	}
	for _, p := range pages {
		if got := heights("/v1/ledger/blocks" + p.query); fmt.Sprint(got) != fmt.Sprint(p.want) {
			t.Errorf("blocks%s: heights %v, want %v", p.query, got, p.want)
		}
	}
	resp, body := n.get(t, "/v1/ledger/blocks?from=0&limit=1")
	genesis := decodeJSON[[]api.BlockSummary](t, "genesis summary", body)
	if len(genesis) != 1 || len(genesis[0].Txs) != 1 || genesis[0].Txs[0].Type != string(ledger.TxGenesis) ||
		genesis[0].Txs[0].Summary != "network test: 1 operator(s), 1 node(s)" || genesis[0].Prev != ledger.ZeroHash.String() {
		t.Fatalf("genesis summary: %+v", genesis)
	}
	resp, body = n.get(t, fmt.Sprintf("/v1/ledger/blocks?from=%d&limit=1", applied[1]))
	if s := decodeJSON[[]api.BlockSummary](t, "apply summary", body); len(s) != 1 || s[0].Txs[0].Summary != "apply service svc1 (0 replicas)" {
		t.Fatalf("summary of block %d: %+v", applied[1], s)
	}

	for _, c := range []struct{ query, msg string }{
		{"?limit=x", `query parameter limit="x": want a non-negative integer`},
		{"?from=-1", `query parameter from="-1"`},
		{"?from=1e3", `query parameter from="1e3"`},
	} {
		resp, body := n.get(t, "/v1/ledger/blocks"+c.query)
		wantError(t, "blocks"+c.query, resp, body, http.StatusBadRequest, c.msg)
	}

	resp, body = n.get(t, fmt.Sprintf("/v1/ledger/blocks/%d", applied[2]))
	if resp.StatusCode != 200 {
		t.Fatalf("block %d: %d %s", applied[2], resp.StatusCode, body)
	}
	b, err := ledger.DecodeBlock(body)
	if err != nil || b.Height != applied[2] {
		t.Fatalf("block %d: %v %+v", applied[2], err, b)
	}
	resp, body = n.get(t, fmt.Sprintf("/v1/ledger/blocks/%d", tip.Height+100))
	wantError(t, "missing block", resp, body, http.StatusNotFound, fmt.Sprintf("block %d not found: the chain's tip is at height %d", tip.Height+100, tip.Height))
	for _, h := range []string{"abc", "-1", "1.0", "99999999999999999999"} {
		resp, body := n.get(t, "/v1/ledger/blocks/"+h)
		wantError(t, "block "+h, resp, body, http.StatusBadRequest, fmt.Sprintf("block height %q: want a non-negative integer", h))
	}

	// Transactions are found by ID.
	txID := b.Txs[0].ID()
	resp, body = n.get(t, "/v1/txs/"+txID.String())
	if rec := decodeJSON[state.TxRecord](t, "tx", body); resp.StatusCode != 200 || rec.ID != txID || rec.Height != applied[2] || rec.Type != ledger.TxServiceApply {
		t.Fatalf("tx %s: %d %+v", txID.Short(), resp.StatusCode, rec)
	}
	resp, body = n.get(t, "/v1/txs/"+strings.Repeat("ab", 32))
	wantError(t, "unknown tx", resp, body, http.StatusNotFound, "transaction abababababab not found")
	resp, body = n.get(t, "/v1/txs/xyz")
	wantError(t, "bad tx id", resp, body, http.StatusBadRequest, "transaction id")

	// The whole chain re-verifies.
	resp, body = n.request(t, "POST", "/v1/ledger/verify", n.bearer(), nil)
	rep := decodeJSON[api.VerifyReport](t, "verify", body)
	if resp.StatusCode != 200 || !rep.OK || rep.Blocks != tip.Height+1 || rep.Tip != tip.Hash.String() || rep.Network != tip.Network.String() {
		t.Fatalf("verify: %d %+v", resp.StatusCode, rep)
	}
}
