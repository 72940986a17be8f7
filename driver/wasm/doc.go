// Package wasm is the driver that runs a depot as a WebAssembly module with WASI
// preview 1 (wasm32-wasip1), on wazero: a pure-Go runtime, so it runs wherever the qnet
// binary does (Linux, macOS, the BSDs; amd64 and arm64 compile modules to native code),
// needs no root and no container runtime, and starts a module in a few milliseconds.
//
// Each depot gets a supervisor of its own, a process (package shim, "qnet wasm-shim")
// that runs the module in-process. Like the exec driver's shim it lives in a session of
// its own and does not need the agent: the agent can restart and Recover finds every
// supervisor again through its control socket (see package proto), re-adopting the
// depots that still run and reporting those that ended. A module that spins, exhausts
// its memory or crashes the runtime takes down its own supervisor only.
//
// To start fast, the driver keeps one supervisor started in advance with its runtime
// built, primed with the module it started last (or was asked to Prime): compiled and
// waiting, so a restart or another replica only instantiates it (a few milliseconds).
// Compiled modules are also kept on disk (Config.CacheDir), so a module is compiled to
// native code once per node; but wazero decodes and validates a module at every load,
// even from the cache, which for a module of megabytes (anything built by the Go
// toolchain) costs tens of milliseconds. Priming is what avoids it. Replicas of a new
// module that start together compile it once: the others wait for the supervisor
// compiling it, then take the next one, primed from the cache. Before compiling,
// the supervisor merges the module's data segments that lie close together (the Go
// toolchain writes one per run of non-zero bytes, tens of thousands, which wazero
// applies one by one at every instantiation): the same initial memory, a few
// milliseconds less per start.
//
// What a depot's module gets (Spec fields as the agent fills them):
//   - Spec.Command is the path of the module file (absolute, or relative to Spec.Dir);
//     the module sees it as its argv[0], followed by Spec.Args.
//   - Its environment is exactly Spec.Env.
//   - A directory of its own, preopened at /data (file descriptor 3): <Dir>/<id>/data,
//     kept when the depot restarts and deleted by Remove. It sees nothing else of the
//     node's files but its mounts, and cannot make symlinks (wazero follows them on
//     the host).
//   - Spec.Mounts, through preopened directories (WASI preview 1 preopens directories
//     only), from file descriptor 4 on, in the order of their guest paths: a directory
//     mount is the node's directory at its Target (read-only when asked: wazero then
//     refuses every change); file mounts, which must be ReadOnly, are shown through a
//     read-only directory at their Target's parent that holds exactly the file mounts
//     there, under their target names, each read from its Source at every open (no
//     copy, so a file replaced on the node is seen at once). A file mount cannot share
//     its parent with a directory mount, and nothing is mounted at /data or beside the
//     files in it. A missing source, or a mount WASI cannot show, is an ErrBadSpec.
//   - A listening TCP socket for the port in PORT (file descriptor 4, or 4 plus the
//     number of directories preopened for Spec.Mounts), on the address in QNET_HOST
//     (else Config.ListenHost), and one for each other QNET_PORT_<NAME>, in the order
//     of the names, on the file descriptors that follow. WASI preview 1 has no bind or
//     connect, only accept on preopened sockets (wazero's experimental sock package).
//     The socket comes in blocking mode; a Go module, single-threaded under WASI, makes
//     it non-blocking so that its runtime parks the accepting goroutine:
//     syscall.SetNonblock(4, true); ln, _ := net.FileListener(os.NewFile(4, "http")).
//     The supervisor replaces wazero's poll_oneoff (see package shim) so that a module
//     waiting for connections sleeps until one comes instead of spinning or hanging.
//   - Standard output and error go to stdout.log and stderr.log in the depot's runtime
//     directory, rotated as the exec driver's are (package logfile); standard input is
//     empty. Real clocks, real sleeps and crypto/rand randomness (wazero's defaults are
//     deterministic fakes).
//
// Limits: Spec.Memory bounds the module's linear memory (rounded down to 64 KiB pages):
// a memory.grow past it fails, the module usually dies of it, and the exit says
// "oom: memory limit ... reached" with OOMKilled set. The supervisor's own memory (the
// compiled code, the runtime) is not counted. wazero has no CPU quota: Spec.CPU is
// enforced by putting the supervisor, and so the module with it, in a cgroup named after
// the depot (Linux only); elsewhere Limits says the CPU is not limited, and why. A
// supervisor started in advance waits in a group of its own (proto.WarmGroupPrefix),
// which a start renames after the depot, since moving a running process into a group
// costs milliseconds; the quota is written just after Start returns (a small quota set
// earlier could hold the start's report back for a CFS period).
//
// How a module ends: the code it passed to proc_exit (0 when _start returned); a trap
// is code 134 with the trap in the reason (and the full trace in stderr.log). WASI
// preview 1 has no signals, so a module cannot be asked to stop: Stop (and Signal with
// SIGTERM or SIGINT) ends it at its next function call, loop iteration or wait, as code
// 128+signal with the signal named; the grace only bounds how long the supervisor may
// take for that before it is killed.
package wasm
