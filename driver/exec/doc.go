// Package exec is the driver that runs a depot as a plain process on the node.
//
// Each depot gets a supervisor of its own, the shim (package shim): the agent starts
// "SHIMBIN shim <runtime-dir>/<id>" in a new session, and the shim starts the workload,
// owns its output, waits for it and records its exit. The agent talks to shims only
// through the depot's runtime directory and the process table, so it can restart at
// will: Recover finds every shim again, re-adopts the depots that still run (by PID and
// process start time, never starting one twice) and reports those that ended meanwhile.
//
// What the driver promises about a depot's process:
//   - It runs in a process group of its own, with stdin from /dev/null and stdout and
//     stderr written to stdout.log and stderr.log (rotated, bounded) in its runtime
//     directory. Its environment is exactly Spec.Env, nothing added.
//   - Its working directory is Spec.Dir, or "/" when that is empty.
//   - It sees the node's filesystem as it is: the driver mounts nothing. A Spec.Mounts
//     entry must so have Target equal to Source (the workload finds the file where it
//     is, its path given in the environment by the agent); any other is refused with
//     ErrBadSpec. ReadOnly is up to the file's mode.
//   - On Linux with cgroups it runs inside a cgroup named after the depot, from its first
//     instruction (the shim joins the group in an exec stage before executing the
//     program), which enforces Spec.CPU and Spec.Memory; Handle.Limits says what is
//     enforced and, when not, why.
//   - The depot ends when its main process ends: whatever that process left behind in
//     its process group or cgroup is killed then. Stop kills the whole group too.
package exec
