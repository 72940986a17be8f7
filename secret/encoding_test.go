package secret

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestSealedEncodings(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	s := mustSeal(t, k, "db-password", 9, canary)

	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for name, enc := range map[string][]byte{"json": js, "binary": bin} {
		if bytes.Contains(enc, []byte(canary)) {
			t.Fatalf("%s form holds the plaintext", name)
		}
	}
	var fromJSON, fromBin Sealed
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := fromBin.UnmarshalBinary(bin); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, s) || !reflect.DeepEqual(fromBin, s) {
		t.Fatal("a round trip changed the sealed secret")
	}
	if v, err := Open(fromBin, k); err != nil || string(v.Reveal()) != canary {
		t.Fatalf("decoded secret opens to %v, %v", v, err)
	}
	if len(bin) > len(js) {
		t.Errorf("binary form (%d bytes) is bigger than JSON (%d)", len(bin), len(js))
	}
	// JSON null leaves the value alone, as for any encoding/json type.
	keep := s
	if err := json.Unmarshal([]byte("null"), &keep); err != nil || !reflect.DeepEqual(keep, s) {
		t.Fatalf("null: %v", err)
	}
}

func TestReleasedEncodings(t *testing.T) {
	t.Parallel()
	k, node := testNetworkKey(t), testNode(t)
	to := Target{Node: "node-a", Placement: "web-1"}
	r, err := Reseal(mustSeal(t, k, "db-password", 9, canary), k, node.Public().HPKE, to)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON, fromBin Released
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := fromBin.UnmarshalBinary(bin); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, r) || !reflect.DeepEqual(fromBin, r) {
		t.Fatal("a round trip changed the released secret")
	}
	if v, err := OpenReleased(fromBin, node.HPKE(), to); err != nil || string(v.Reveal()) != canary {
		t.Fatalf("decoded release opens to %v, %v", v, err)
	}
}

func TestKeyShareJSON(t *testing.T) {
	t.Parallel()
	k, node := testNetworkKey(t), testNode(t)
	sh, err := k.ShareFor("val-1", node.Public().HPKE)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(sh)
	if err != nil {
		t.Fatal(err)
	}
	var back KeyShare
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back, sh) {
		t.Fatalf("round trip: %v", err)
	}
	seed, _ := k.priv.Bytes()
	if bytes.Contains(js, seed) || strings.Contains(string(js), string(mustJSON(t, seed))) {
		t.Fatal("the share's JSON holds the network key")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Trim(b, `"`)
}

// TestDecodeErrors checks that bad input is refused with an error that names the field.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	s := mustSeal(t, k, "db-password", 1, "x")
	good, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	withName := func(name string) []byte {
		c := s
		c.Name = name
		var e encoder
		e.raw(magicSealed)
		e.str(c.Name)
		e.u64(c.Version)
		e.str(c.KeyID)
		e.bytes(c.Enc)
		e.bytes(c.Ciphertext)
		return e.b
	}
	jsonWith := func(change func(map[string]any)) []byte {
		var m map[string]any
		b, _ := json.Marshal(s)
		_ = json.Unmarshal(b, &m)
		change(m)
		b, _ = json.Marshal(m)
		return b
	}
	for _, tc := range []struct {
		name string
		bin  []byte
		json []byte
		want string
	}{
		{name: "empty", bin: []byte{}, want: "does not start with"},
		{name: "released magic", bin: append([]byte("QSR1"), good[4:]...), want: "does not start with"},
		{name: "truncated", bin: good[:len(good)-3], want: "ciphertext: truncated"},
		{name: "trailing bytes", bin: append(bytes.Clone(good), 0), want: "1 unexpected bytes"},
		{name: "huge length", bin: append([]byte("QSS1"), 0xff, 0xff, 0xff, 0xff, 0x0f), want: "name: length 4294967295 is over the limit of 63"},
		{name: "bad varint", bin: append([]byte("QSS1"), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), want: "name: bad or missing length"},
		{name: "bad name", bin: withName("Bad_Name"), want: "must be a DNS label"},
		{name: "json bad name", json: jsonWith(func(m map[string]any) { m["name"] = "../x" }), want: "must be a DNS label"},
		{name: "json version 0", json: jsonWith(func(m map[string]any) { m["version"] = 0 }), want: "version must be 1 or more"},
		{name: "json short enc", json: jsonWith(func(m map[string]any) { m["enc"] = "AAAA" }), want: "enc is 3 bytes, want 1120"},
		{name: "json no ciphertext", json: jsonWith(func(m map[string]any) { delete(m, "ciphertext") }), want: "ciphertext is 0 bytes, want 17 to 65552"},
		{name: "json bad key id", json: jsonWith(func(m map[string]any) { m["keyId"] = "XYZ" }), want: `keyId "XYZ" must be 16 lowercase hex digits`},
		{name: "json wrong type", json: []byte(`{"version":"one"}`), want: "sealed secret: json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Sealed
			var err error
			if tc.json != nil {
				err = json.Unmarshal(tc.json, &got)
			} else {
				err = got.UnmarshalBinary(tc.bin)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode: %v; want an error containing %q", err, tc.want)
			}
			if !reflect.DeepEqual(got, Sealed{}) {
				t.Fatalf("a failed decode changed the value: %+v", got)
			}
		})
	}
}
