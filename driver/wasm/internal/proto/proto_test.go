package proto

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"qnet.dev/qnet/driver"
)

func TestMessagesRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	l := Launch{Spec: driver.Spec{ID: "web-1", Command: "/m.wasm", Env: []string{"A=1"}}, Root: "/r", Module: "/m.wasm",
		Listeners: []Listener{{Env: "PORT", Host: "127.0.0.1", Port: 8080}}}
	for _, m := range []any{Message{Init: &Init{CacheDir: "/c", Prime: "/m.wasm"}}, Message{Launch: &l}, Status{State: State{Phase: Running, PID: 7}}} {
		if err := w.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	var m Message
	if err := r.Next(&m); err != nil || m.Init == nil || m.Init.Prime != "/m.wasm" {
		t.Fatalf("init: %+v, %v", m, err)
	}
	m = Message{}
	if err := r.Next(&m); err != nil || m.Launch == nil || m.Launch.Dir() != "/r/web-1" || m.Launch.Listeners[0].Port != 8080 || m.Launch.Spec.Env[0] != "A=1" {
		t.Fatalf("launch: %+v, %v", m, err)
	}
	var st Status
	if err := r.Next(&st); err != nil || st.State.Phase != Running || st.State.PID != 7 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if err := r.Next(&st); !errors.Is(err, io.EOF) {
		t.Errorf("after the last message: %v, want io.EOF", err)
	}
	if l.Redacted().Spec.Env != nil || l.Spec.Env == nil {
		t.Error("Redacted must drop the environment of a copy only")
	}
	if err := NewReader(strings.NewReader("{not json\n")).Next(&st); err == nil {
		t.Error("a malformed line was accepted")
	}
	if err := NewReader(strings.NewReader(strings.Repeat("x", MaxLine+1))).Next(&st); err == nil {
		t.Error("a line past MaxLine was accepted")
	}
}

func TestSocketPath(t *testing.T) {
	t.Parallel()
	a, b := SocketPath("/r", strings.Repeat("a", 128)), SocketPath("/r", "b")
	if a == b || len(a) != len(b) || filepath.Dir(a) != "/r/"+SocketDirName {
		t.Errorf("socket paths %q, %q: want distinct, of one length, in %s", a, b, SocketDirName)
	}
}
