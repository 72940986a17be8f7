package apiserver_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/apiserver"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/qnettest"
)

// FuzzSubmit posts arbitrary bodies to /v1/txs of a server over a real node (its real
// store and orderer), calling the handler directly for speed. Whatever the body, the
// server must not panic, must answer with no 5xx but 503, and must not grow the chain
// unless the body carries a transaction signed by the operator for this network.
func FuzzSubmit(f *testing.F) {
	n := qnettest.StartNode(f, qnettest.Options{})
	srv := apiserver.New(n.Node, qnettest.Logger(f))
	f.Cleanup(srv.Close)
	op := operatorKey(f, n)
	net := network(f, n)
	opKey := op.Public()

	good := signed(f, op, net, ledger.TxServiceApply, ledger.ServiceApply{Service: service(f, "fuzz", 0, "true")}, time.Now().Add(30*time.Minute))
	valid := submitBody(f, good)
	f.Add(valid)
	f.Add(submitBody(f, good, good))
	for _, cut := range []int{0, 1, 8, len(valid) / 2, len(valid) - 2, len(valid) - 1} {
		f.Add(valid[:cut])
	}
	f.Add(append(bytes.Clone(valid), valid...))
	forged := *good
	forged.Payload = bytes.Replace(good.Payload, []byte(`"replicas":0`), []byte(`"replicas":9`), 1)
	f.Add(submitBody(f, &forged))
	var elsewhere ledger.Hash
	elsewhere[31] = 7
	f.Add(submitBody(f, signed(f, op, elsewhere, ledger.TxServiceApply, ledger.ServiceApply{Service: service(f, "fuzz", 0, "true")}, time.Now().Add(30*time.Minute))))
	f.Add(submitBody(f, signed(f, op, net, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "nope"}, time.Now().Add(30*time.Minute))))
	for _, s := range []string{"", "null", "{}", "[]", `{"txs":null}`, `{"txs":[]}`, `{"txs":[null]}`, `{"txs":[{}]}`,
		`{"txs":[{"type":"service.apply","payload":{}}]}`, `{"txs":[{"nonce":"` + string(bytes.Repeat([]byte("0"), 32)) + `"}]}`,
		`{"txs":[{"expires":"not a time"}]}`, `{"txs":[{"sig":{"ed25519":"!!"}}]}`, "\xff\xfe{", `{"txs":[1,2,3]}`} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		before, _, err := n.Store().Tip()
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/txs", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+n.Token)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)

		code := rec.Code
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for body %q: %s", code, body, rec.Body)
		}
		switch code {
		case http.StatusOK, http.StatusUnprocessableEntity:
			var resp api.SubmitResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Results) == 0 {
				t.Fatalf("status %d with body %s: %v", code, rec.Body, err)
			}
		default:
			var e api.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("status %d with a body that is no api.Error: %s", code, rec.Body)
			}
		}

		// The node writes blocks of its own meanwhile (status reports, receipt batches):
		// what must never be on the chain is a transaction of this body, unless the body
		// carries a validly signed one.
		if carriesSignedTx(body, net, opKey) {
			return
		}
		var sent api.SubmitRequest
		if json.Unmarshal(body, &sent) != nil {
			return
		}
		for _, tx := range sent.Txs {
			if tx == nil {
				continue
			}
			if _, ok, err := n.Store().Tx(tx.ID()); err != nil {
				t.Fatal(err)
			} else if ok {
				t.Fatalf("a transaction of a body with no validly signed one is on the chain (tip was %d): %q", before.Height, body)
			}
		}
	})
}

// carriesSignedTx reports whether body holds a transaction for network whose signature
// verifies under key: the only kind of body that may add a block.
func carriesSignedTx(body []byte, network ledger.Hash, key identity.PublicKey) bool {
	var req api.SubmitRequest
	if json.Unmarshal(body, &req) != nil {
		return false
	}
	for _, t := range req.Txs {
		if t != nil && t.Network == network && t.Signer == key.ID() && key.Verify(identity.DomainTx, t.SigningBytes(), t.Sig) == nil {
			return true
		}
	}
	return false
}
