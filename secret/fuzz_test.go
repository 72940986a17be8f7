package secret

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fuzzSeeds adds valid JSON and binary encodings and some broken ones.
func fuzzSeeds(f *testing.F, js, bin []byte) {
	f.Add(js)
	f.Add(bin)
	f.Add(bin[:len(bin)/2])
	f.Add(js[:len(js)/2])
	f.Add([]byte("null"))
	f.Add([]byte("{}"))
	f.Add([]byte(`{"name":"a","version":1,"keyId":"0123456789abcdef","enc":"","ciphertext":""}`))
	f.Add([]byte("QSS1\x01a"))
	f.Add([]byte("QSR1\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
}

// FuzzDecodeSealed decodes sealed secrets from the ledger, in either form. Whatever
// decodes must pass Check, survive both round trips unchanged and not panic on Open.
func FuzzDecodeSealed(f *testing.F) {
	k, err := NewNetworkKey()
	if err != nil {
		f.Fatal(err)
	}
	s, err := Seal(k.Public(), "db-password", 2, NewValue("db-password", 2, []byte("hunter2")))
	if err != nil {
		f.Fatal(err)
	}
	js, _ := json.Marshal(s)
	bin, _ := s.MarshalBinary()
	fuzzSeeds(f, js, bin)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fromJSON, fromBin Sealed
		jsonErr := json.Unmarshal(data, &fromJSON)
		binErr := fromBin.UnmarshalBinary(data)
		for _, got := range []struct {
			s   Sealed
			err error
		}{{fromJSON, jsonErr}, {fromBin, binErr}} {
			if got.err != nil || reflect.DeepEqual(got.s, Sealed{}) {
				continue
			}
			if err := got.s.Check(); err != nil {
				t.Fatalf("decoded a sealed secret that fails Check: %v", err)
			}
			b, err := got.s.MarshalBinary()
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			var back Sealed
			if err := back.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(back, got.s) {
				t.Fatalf("binary round trip: %v", err)
			}
			j, err := json.Marshal(got.s)
			if err != nil {
				t.Fatalf("re-encode JSON: %v", err)
			}
			back = Sealed{}
			if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, got.s) {
				t.Fatalf("JSON round trip: %v", err)
			}
			if v, err := Open(got.s, k); err == nil && (v.Len() == 0 || v.Len() > MaxSize) {
				t.Fatalf("opened a %d-byte plaintext", v.Len())
			}
		}
	})
}

// FuzzDecodeReleased decodes released secrets as they arrive over a tunnel, in either
// form, and tries to open them as the node they name.
func FuzzDecodeReleased(f *testing.F) {
	k, err := NewNetworkKey()
	if err != nil {
		f.Fatal(err)
	}
	node, err := kem.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	s, err := Seal(k.Public(), "db-password", 2, NewValue("db-password", 2, []byte("hunter2")))
	if err != nil {
		f.Fatal(err)
	}
	r, err := Reseal(s, k, node.PublicKey().Bytes(), Target{Node: "node-a", Placement: "web-1"})
	if err != nil {
		f.Fatal(err)
	}
	js, _ := json.Marshal(r)
	bin, _ := r.MarshalBinary()
	fuzzSeeds(f, js, bin)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fromJSON, fromBin Released
		jsonErr := json.Unmarshal(data, &fromJSON)
		binErr := fromBin.UnmarshalBinary(data)
		for _, got := range []struct {
			r   Released
			err error
		}{{fromJSON, jsonErr}, {fromBin, binErr}} {
			if got.err != nil || reflect.DeepEqual(got.r, Released{}) {
				continue
			}
			if err := got.r.Check(); err != nil {
				t.Fatalf("decoded a released secret that fails Check: %v", err)
			}
			b, err := got.r.MarshalBinary()
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			var back Released
			if err := back.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(back, got.r) {
				t.Fatalf("binary round trip: %v", err)
			}
			j, err := json.Marshal(got.r)
			if err != nil {
				t.Fatalf("re-encode JSON: %v", err)
			}
			back = Released{}
			if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, got.r) {
				t.Fatalf("JSON round trip: %v", err)
			}
			if v, err := OpenReleased(got.r, node, got.r.Target()); err == nil && (v.Len() == 0 || v.Len() > MaxSize) {
				t.Fatalf("opened a %d-byte plaintext", v.Len())
			}
		}
	})
}

// FuzzDecodeKeyShare decodes key shares from the ledger and tries to open them.
func FuzzDecodeKeyShare(f *testing.F) {
	k, err := NewNetworkKey()
	if err != nil {
		f.Fatal(err)
	}
	node, err := kem.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	sh, err := k.ShareFor("val-1", node.PublicKey().Bytes())
	if err != nil {
		f.Fatal(err)
	}
	js, _ := json.Marshal(sh)
	f.Add(js)
	f.Add(js[:len(js)/2])
	f.Add([]byte(`{"keyId":"0123456789abcdef","node":"v","nodeKey":"0123456789abcdef"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got KeyShare
		if err := json.Unmarshal(data, &got); err != nil || reflect.DeepEqual(got, KeyShare{}) {
			return
		}
		if err := got.Check(); err != nil {
			t.Fatalf("decoded a share that fails Check: %v", err)
		}
		if nk, err := OpenShare(got, node); err == nil && nk.ID() != got.KeyID {
			t.Fatalf("opened share says key %s, holds %s", got.KeyID, nk.ID())
		}
	})
}
