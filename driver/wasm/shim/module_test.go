package shim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"qnet.dev/qnet/driver/wasm/internal/proto"
)

// minimal is the smallest WASI command: it imports fd_write and exports memory and an
// empty _start.
var minimal = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
	0x01, 0x0c, 0x02, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x00, // types
	0x02, 0x23, 0x01, 0x16, 'w', 'a', 's', 'i', '_', 's', 'n', 'a', 'p', 's', 'h', 'o', 't', '_', 'p', 'r', 'e', 'v', 'i', 'e', 'w', '1',
	0x08, 'f', 'd', '_', 'w', 'r', 'i', 't', 'e', 0x00, 0x00, // import
	0x03, 0x02, 0x01, 0x01, // function of type 1
	0x05, 0x03, 0x01, 0x00, 0x01, // memory min 1
	0x07, 0x13, 0x02, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x01, // exports
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: empty body
}

var (
	engOnce sync.Once
	eng     *engine
	engErr  error
)

// testEngine is an engine without a compilation cache, shared by the tests.
func testEngine(t testing.TB) *engine {
	engOnce.Do(func() { eng, engErr = newEngine(context.Background(), "", t.Logf) })
	if engErr != nil {
		t.Fatal(engErr)
	}
	return eng
}

func TestCompileMinimal(t *testing.T) {
	t.Parallel()
	e := testEngine(t)
	path := filepath.Join(t.TempDir(), "min.wasm")
	os.WriteFile(path, minimal, 0o644)
	cm, err := e.compile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	cm.Close(context.Background())
}

func TestCheckHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		data []byte
		want string // "" = accepted
	}{
		{minimal, ""},
		{nil, "is empty"},
		{[]byte("\x7fELF\x02\x01"), "native executable"},
		{[]byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}, "native executable"},
		{[]byte("MZ\x90\x00"), "native executable"},
		{[]byte("  (module)"), "WebAssembly text"},
		{[]byte("\x00as"), "is truncated: 3 bytes"},
		{[]byte("#!/bin/sh\necho hi\n"), "starts with 23 21 2f 62"},
		{[]byte("\x00asm\x0d\x00\x01\x00"), "component"},
		{[]byte("\x00asm\x01\x00\x00\x01"), "version 01 00 00 01"},
	} {
		err := checkHeader("m.wasm", tc.data)
		var se *startError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.data, err)
		case tc.want != "" && (!errors.As(err, &se) || se.kind != proto.KindModule || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want %q", tc.data, err, tc.want)
		}
	}
}

func TestTrapSummary(t *testing.T) {
	t.Parallel()
	err := errors.New("wasm error: unreachable\nwasm stack trace:\n\t.main.main()\n\t.runtime.main()")
	if got := trapSummary(err); got != "wasm error: unreachable (in main.main)" {
		t.Errorf("trapSummary = %q", got)
	}
	if got := trapSummary(errors.New("boom")); got != "boom" {
		t.Errorf("trapSummary without a trace = %q", got)
	}
}

// FuzzCompile feeds module files, which come from outside, through the supervisor's
// loading path: every input is either a module or a start error of the module kind,
// never a panic.
func FuzzCompile(f *testing.F) {
	f.Add(minimal)
	f.Add([]byte{})
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add(minimal[:len(minimal)-3])
	f.Add([]byte("\x00asm\x0d\x00\x01\x00"))
	f.Add(append([]byte("\x00asm\x01\x00\x00\x00"), 0x01, 0x05, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := testEngine(t)
		path := filepath.Join(t.TempDir(), "m.wasm")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cm, err := e.compile(context.Background(), path)
		if err == nil {
			cm.Close(context.Background())
			return
		}
		var se *startError
		if !errors.As(err, &se) || se.kind != proto.KindModule || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %v (%T), want a module start error naming the file", err, err)
		}
	})
}
