package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// canary is a plaintext that must appear in no output.
const canary = "CANARY-7f3a9c-plaintext"

// holder puts a Value where callers will: an exported field, an unexported one, a
// pointer and a slice.
type holder struct {
	Exported Value
	hidden   Value
	Ptr      *Value
	List     []Value
}

func TestValueRedaction(t *testing.T) {
	t.Parallel()
	v := NewValue("db-password", 3, []byte(canary))
	const want = "[redacted db-password v3]"
	h := holder{Exported: v, hidden: v, Ptr: &v, List: []Value{v}}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10.3s", "%p"} {
		outputs["fmt "+verb+" value"] = fmt.Sprintf(verb, v)
		outputs["fmt "+verb+" pointer"] = fmt.Sprintf(verb, &v)
		outputs["fmt "+verb+" struct"] = fmt.Sprintf(verb, h)
		outputs["fmt "+verb+" struct pointer"] = fmt.Sprintf(verb, &h)
	}
	outputs["fmt Sprint"] = fmt.Sprint(v, h)
	outputs["fmt Sprintln"] = fmt.Sprintln(v, h)
	outputs["error"] = fmt.Errorf("open %v: %w", v, errors.New("x")).Error()
	for name, x := range map[string]any{"value": v, "pointer": &v, "struct": h, "map": map[string]Value{"k": v}} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatalf("json.Marshal %s: %v", name, err)
		}
		outputs["json "+name] = string(b)
	}
	if b, err := json.Marshal(map[Value]int{v: 1}); err != nil {
		t.Fatalf("json.Marshal map key: %v", err)
	} else {
		outputs["json map key"] = string(b)
	}
	var logs bytes.Buffer
	for _, hd := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		log := slog.New(hd)
		log.Info("secret", "value", v, "pointer", &v, "struct", h, slog.Group("g", "v", v), slog.Any("any", v))
		log.With("ctx", v).Error("failed", "err", fmt.Errorf("open %v", v))
	}
	outputs["slog"] = logs.String()

	for name, out := range outputs {
		for _, form := range [][]byte{[]byte(canary), []byte(fmt.Sprintf("%x", canary)), []byte(fmt.Sprintf("%v", []byte(canary)))} {
			if bytes.Contains([]byte(out), form) || strings.Contains(strings.ToLower(out), strings.ToLower(string(form))) {
				t.Errorf("%s leaks the plaintext: %s", name, out)
			}
		}
	}
	for _, name := range []string{"fmt %v value", "fmt %+v value", "fmt %#v value", "fmt %d value", "fmt %x value"} {
		if outputs[name] != want {
			t.Errorf("%s = %q, want %q", name, outputs[name], want)
		}
	}
	if got := outputs["json value"]; got != `"`+want+`"` {
		t.Errorf("json = %s, want %q", got, want)
	}
	if !strings.Contains(outputs["slog"], `"value":"`+want+`"`) || !strings.Contains(outputs["slog"], `value="`+want+`"`) {
		t.Errorf("slog output does not show the redacted form:\n%s", outputs["slog"])
	}
	if string(v.Reveal()) != canary {
		t.Fatal("redaction changed the value")
	}
}

func TestValueZero(t *testing.T) {
	t.Parallel()
	var v Value
	if v.String() != "[redacted]" || v.Reveal() != nil || v.Len() != 0 || v.Name() != "" || v.Version() != 0 {
		t.Fatalf("zero value: %s %q %d", v, v.Reveal(), v.Len())
	}
	v.Wipe() // must not panic
}

func TestValueWipe(t *testing.T) {
	t.Parallel()
	b := []byte(canary)
	v := NewValue("api-key", 1, b)
	c := v // copies share the plaintext
	if &v.Reveal()[0] != &b[0] {
		t.Fatal("Reveal returned a copy; Wipe could not clear what callers hold")
	}
	c.Wipe()
	if !bytes.Equal(b, make([]byte, len(canary))) {
		t.Fatalf("after Wipe the plaintext's memory holds %q", b)
	}
	if v.Reveal() != nil || v.Len() != 0 {
		t.Fatal("Reveal after Wipe returned bytes")
	}
	if v.String() != "[redacted api-key v1]" {
		t.Fatalf("after Wipe: %s", v)
	}
}

func TestNetworkKeyRedaction(t *testing.T) {
	t.Parallel()
	k := testNetworkKey(t)
	seed, err := k.priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("key", "k", k)
	outs := []string{fmt.Sprintf("%v %+v %#v %x %d", k, k, k, k, k), logs.String()}
	for _, out := range outs {
		if !strings.Contains(out, "network key "+k.ID()) {
			t.Errorf("output does not name the key: %s", out)
		}
		for _, form := range []string{fmt.Sprintf("%x", seed), fmt.Sprintf("%v", seed), fmt.Sprintf("%d", seed[:4])} {
			if strings.Contains(out, strings.Trim(form, "[]")) {
				t.Errorf("output holds the private key: %s", out)
			}
		}
	}
}
