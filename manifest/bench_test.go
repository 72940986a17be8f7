package manifest

import (
	"encoding/json"
	"testing"
)

func BenchmarkDecode(b *testing.B) {
	data := []byte(goodFull)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode("web.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	svcs, err := Decode("web.yaml", []byte(goodFull))
	if err != nil {
		b.Fatal(err)
	}
	js, _ := json.Marshal(svcs[0])
	b.SetBytes(int64(len(js)))
	for b.Loop() {
		if _, err := DecodeJSON(js); err != nil {
			b.Fatal(err)
		}
	}
}
