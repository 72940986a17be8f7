package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"qnet.dev/qnet/driver/wasm/internal/proto"
)

// MaxModuleBytes bounds the size of a module file. The whole file is read and decoded
// in memory; a depot module larger than this is far more likely a mistake (a disk
// image, an archive) than a program.
const MaxModuleBytes = 1 << 30

// startError is a failure to start the module, with the kind the agent maps to a driver
// error (a proto.Kind constant).
type startError struct {
	kind string
	msg  string
}

func (e *startError) Error() string { return e.msg }

// engine is a wazero runtime with QNet's WASI host module: wazero's WASI preview 1
// functions, with poll_oneoff replaced (see poller).
type engine struct {
	rt      wazero.Runtime
	poller  *poller
	wasiFns map[string]bool // the functions the host module exports
}

// newEngine builds the runtime. Compiled modules are kept in cacheDir (shared by all
// depots of the node, so a module is compiled once); an empty cacheDir, or one that
// cannot be used, means compiling every time, which only costs time (warn says so).
func newEngine(ctx context.Context, cacheDir string, warn func(string, ...any)) (*engine, error) {
	cfg := wazero.NewRuntimeConfig().
		// Stop must be able to end a module that never calls the host (a busy loop):
		// compiled code then checks the context at function entries and loop heads.
		WithCloseOnContextDone(true)
	if cacheDir != "" {
		if err := os.MkdirAll(cacheDir, 0o700); err != nil {
			warn("compilation cache unusable; compiling every module at each start", "dir", cacheDir, "err", err)
		} else if cache, err := wazero.NewCompilationCacheWithDir(cacheDir); err != nil {
			warn("compilation cache unusable; compiling every module at each start", "dir", cacheDir, "err", err)
		} else {
			cfg = cfg.WithCompilationCache(cache)
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	e := &engine{rt: rt, poller: &poller{sockets: newSocketWaiter()}}
	b := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32 := api.ValueTypeI32
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(e.poller.pollOneoff), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("in", "out", "nsubscriptions", "result.nevents").
		WithResultNames("errno").
		Export("poll_oneoff")
	// wazero resolves guest paths on the host, following host symlinks: a module that
	// could make a symlink in /data to "../../../etc" could read and write the node's
	// files through it. Modules get no symlinks.
	b.NewFunctionBuilder().
		WithGoFunction(api.GoFunc(func(_ context.Context, stack []uint64) { stack[0] = errnoPerm }),
			[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("old_path", "old_path_len", "fd", "new_path", "new_path_len").
		WithResultNames("errno").
		Export("path_symlink")
	host, err := b.Compile(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("build the WASI host module: %w", err)
	}
	e.wasiFns = map[string]bool{}
	for name := range host.ExportedFunctions() {
		e.wasiFns[name] = true
	}
	if _, err := rt.InstantiateModule(ctx, host, wazero.NewModuleConfig()); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate the WASI host module: %w", err)
	}
	return e, nil
}

func (e *engine) close(ctx context.Context) {
	e.rt.Close(ctx)
	e.poller.sockets.close()
}

// compile reads, decodes, validates and compiles (or takes from the cache) the module
// at path, and checks that it is a WASI command module that imports only what the host
// provides.
func (e *engine) compile(ctx context.Context, path string) (wazero.CompiledModule, error) {
	bin, err := readModule(path)
	if err != nil {
		return nil, err
	}
	if err := checkHeader(path, bin); err != nil {
		return nil, err
	}
	cm, err := e.rt.CompileModule(ctx, mergeDataSegments(bin))
	if err != nil {
		return nil, &startError{proto.KindModule, fmt.Sprintf("module %s is not a valid WebAssembly module: %v", path, err)}
	}
	if err := e.checkModule(path, cm); err != nil {
		cm.Close(ctx)
		return nil, err
	}
	return cm, nil
}

// readModule reads a module file, refusing what cannot be a module before reading it.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &startError{proto.KindMissing, fmt.Sprintf("module %s does not exist", path)}
		}
		return nil, &startError{proto.KindMissing, fmt.Sprintf("module %s cannot be opened: %v", path, err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &startError{proto.KindMissing, fmt.Sprintf("module %s: %v", path, err)}
	}
	if !fi.Mode().IsRegular() {
		return nil, &startError{proto.KindMissing, fmt.Sprintf("module %s is not a regular file (%s)", path, fi.Mode().Type())}
	}
	if fi.Size() > MaxModuleBytes {
		return nil, &startError{proto.KindModule, fmt.Sprintf("module %s is %d bytes, more than the %d a depot module may have", path, fi.Size(), MaxModuleBytes)}
	}
	bin, err := io.ReadAll(io.LimitReader(f, MaxModuleBytes+1))
	if err != nil {
		return nil, &startError{proto.KindMissing, fmt.Sprintf("read module %s: %v", path, err)}
	}
	return bin, nil
}

// The header of a WebAssembly binary: the magic "\0asm" and a version (1 for core
// modules; components of the component model carry another).
var (
	wasmMagic      = []byte("\x00asm")
	coreVersion    = []byte{1, 0, 0, 0}
	componentLayer = []byte{0x0d, 0x00, 0x01, 0x00}
)

// checkHeader refuses the common mistakes with a message that says what the file is
// instead: empty, a native executable, WebAssembly text, a component.
func checkHeader(path string, bin []byte) error {
	bad := func(format string, args ...any) error {
		return &startError{proto.KindModule, fmt.Sprintf("module %s ", path) + fmt.Sprintf(format, args...)}
	}
	switch {
	case len(bin) == 0:
		return bad("is empty")
	case bytes.HasPrefix(bin, []byte("\x7fELF")), bytes.HasPrefix(bin, []byte{0xcf, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(bin, []byte{0xce, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(bin, []byte("MZ")):
		return bad("is a native executable, not a WebAssembly module: run it with the exec driver (depot: {exec: ...})")
	case bytes.HasPrefix(bytes.TrimLeft(bin, " \t\r\n"), []byte("(module")), bytes.HasPrefix(bytes.TrimLeft(bin, " \t\r\n"), []byte("(component")):
		return bad("is WebAssembly text (WAT), not a binary module: compile it first, e.g. with wat2wasm")
	case len(bin) < 8 && bytes.HasPrefix(wasmMagic, bin[:min(len(bin), 4)]):
		return bad("is truncated: %d bytes, shorter than the 8-byte WebAssembly header", len(bin))
	case !bytes.HasPrefix(bin, wasmMagic):
		return bad("is not a WebAssembly module: it starts with % x, not the magic 00 61 73 6d (\"\\0asm\")", bin[:min(len(bin), 4)])
	case bytes.Equal(bin[4:8], componentLayer):
		return bad("is a WebAssembly component (component model, WASI preview 2); QNet runs WASI preview 1 core modules (wasm32-wasip1)")
	case !bytes.Equal(bin[4:8], coreVersion):
		return bad("has WebAssembly version % x; want 01 00 00 00 (a core module)", bin[4:8])
	}
	return nil
}

// checkModule checks what decoding alone does not: that every import is provided and
// that the module is a command (it has a _start function to run).
func (e *engine) checkModule(path string, cm wazero.CompiledModule) error {
	var missing []string
	legacy := false
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod == wasi_snapshot_preview1.ModuleName && e.wasiFns[name] {
			continue
		}
		legacy = legacy || mod == "wasi_unstable"
		missing = append(missing, mod+"."+name)
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		missing = append(missing, mod+"."+name+" (a memory)")
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		missing = slices.Compact(missing)
		list := missing
		if len(list) > 5 {
			list = append(list[:5:5], fmt.Sprintf("and %d more", len(missing)-5))
		}
		msg := fmt.Sprintf("module %s imports %s, which QNet does not provide: a depot module may import only WASI preview 1 functions (module %q)",
			path, strings.Join(list, ", "), wasi_snapshot_preview1.ModuleName)
		if legacy {
			msg += "; wasi_unstable is the older WASI snapshot 0: rebuild the module for wasm32-wasip1"
		}
		return &startError{proto.KindModule, msg}
	}
	if _, ok := cm.ExportedFunctions()["_start"]; !ok {
		return &startError{proto.KindModule, fmt.Sprintf("module %s exports no _start function: QNet runs WASI command modules (a library or a reactor module, with _initialize, cannot run as a depot)", path)}
	}
	return nil
}
