package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
)

// FuzzJoinRequest decodes a join request as handleJoin does (strictJSON, from a
// newcomer the ledger does not know yet) and runs the checks handleJoin makes on its
// fields before it touches the ledger. A request that decodes encodes again to a form
// that decodes to the same encoding, and that form with one unknown field is refused.
// Run it with: go test -run '^$' -fuzz FuzzJoinRequest ./node
func FuzzJoinRequest(f *testing.F) {
	key, err := identity.Generate(true)
	if err != nil {
		f.Fatal(err)
	}
	good, err := json.Marshal(JoinRequest{
		Network: strings.Repeat("ab", 32), Token: "0123456789abcdef", Secret: strings.Repeat("00", 32),
		Node: ledger.NodeInfo{ID: key.ID(), Name: "n2", Key: key.Public(), Addr: "127.0.0.1:7700", Mesh: "127.0.0.1:7701",
			OS: "linux", Arch: "amd64", CPU: 2000, Memory: 1 << 30, Labels: map[string]string{"zone": "a"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"network":"n","token":"t","secret":"zz","node":{"key":{"ed25519":"AAAA","mldsa65":null}}}`))
	f.Add([]byte(`{"network":"n","extra":1}`))
	f.Add([]byte(`{"node":{"labels":{}}}`))
	f.Add([]byte(`{"node":{"cpu":1e400}}`))
	f.Add([]byte(`{"NETWORK":"n"} trailing`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	peer := key.Public()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req JoinRequest
		if err := strictJSON(raw, &req); err != nil {
			return
		}
		// What handleJoin does with the fields before it asks the ledger: none may panic.
		hex.DecodeString(req.Secret)
		req.Node.Key.Equal(peer)
		_ = req.Node.Key.ID()

		first, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("a decoded request does not encode: %v", err)
		}
		var again JoinRequest
		if err := strictJSON(first, &again); err != nil {
			t.Fatalf("the encoding %s of a decoded request is refused: %v", first, err)
		}
		second, err := json.Marshal(again)
		if err != nil || !bytes.Equal(first, second) {
			t.Fatalf("encoding not stable:\n%s\n%s (%v)", first, second, err)
		}
		if again.Node.Key.Fingerprint() != req.Node.Key.Fingerprint() {
			t.Fatal("the node's key changed in a round trip")
		}
		unknown := append([]byte(`{"unknownField":1,`), first[1:]...)
		if err := strictJSON(unknown, &again); err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Fatalf("a request with an unknown field: %v", err)
		}
	})
}
