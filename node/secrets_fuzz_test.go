package node

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzReleaseRequest feeds the decoder of secret.release requests, which come from
// other nodes: nothing may panic, and what decodes encodes back the same.
func FuzzReleaseRequest(f *testing.F) {
	good, _ := json.Marshal(releaseRequest{Name: "db-password", Placement: "web-1a2b3c4d", Height: 42})
	f.Add(good)
	f.Add([]byte(`{"name":"","placement":"../x","height":-1}`))
	f.Add([]byte(`{"name":"a","extra":1}`))
	f.Add([]byte(`{"height":1e400}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req releaseRequest
		if err := strictJSON(raw, &req); err != nil {
			return
		}
		first, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("a decoded request does not encode: %v", err)
		}
		var again releaseRequest
		if err := strictJSON(first, &again); err != nil || again != req {
			t.Fatalf("round trip of %s: %+v, %v", first, again, err)
		}
		second, _ := json.Marshal(again)
		if !bytes.Equal(first, second) {
			t.Fatalf("encoding not stable:\n%s\n%s", first, second)
		}
	})
}
