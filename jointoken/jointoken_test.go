package jointoken

import (
	"strings"
	"testing"

	"qnet.dev/qnet/ledger"
)

func TestRoundTrip(t *testing.T) {
	tok, err := New(ledger.Hash{1, 2, 3}, "10.0.0.1:7701", [32]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(tok.String())
	if err != nil {
		t.Fatal(err)
	}
	if back != tok {
		t.Fatalf("round trip changed the token: %+v", back)
	}
	if len(tok.ID()) != 16 || tok.ID() != ledger.TokenID(tok.SecretHash()) {
		t.Fatalf("token ID %q", tok.ID())
	}
	other, _ := New(ledger.Hash{1, 2, 3}, "10.0.0.1:7701", [32]byte{9})
	if other.Secret == tok.Secret || other.ID() == tok.ID() {
		t.Fatal("two tokens share a secret")
	}
}

func TestParseErrors(t *testing.T) {
	tok, _ := New(ledger.Hash{1}, "a:1", [32]byte{1})
	good := tok.String()
	cases := map[string]string{
		"":                                 "must start with",
		"hello":                            "must start with",
		Prefix + "!!!":                     "bad base64",
		Prefix + "e30":                     "join token network",
		good[:len(good)-10]:                "damaged",
		Prefix + strings.Repeat("A", 2000): "at most 1024",
	}
	for in, want := range cases {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%.30q) = %v, want %q", in, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	tok, _ := New(ledger.Hash{7}, "127.0.0.1:7701", [32]byte{3})
	f.Add(tok.String())
	f.Add(Prefix)
	f.Add(Prefix + "e30")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(tok.String())
		if err != nil || again != tok {
			t.Fatalf("a parsed token does not round-trip: %v", err)
		}
	})
}
