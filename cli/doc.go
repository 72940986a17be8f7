// Package cli is qnet's command line. It is a thin shell: each command parses its flags,
// calls the Go API client (package client) or, for the commands that run a node (init,
// agent, dev), package node, and presents what comes back. Decisions belong to the node;
// this package only asks and shows.
//
// The commands follow the conventions kubectl and nomad users know: verbs first
// (get, describe, apply, delete, logs), -o table|json|yaml for machine-readable output,
// named contexts in a context file (~/.qnet/config.yaml) to pick the network.
//
// NewRoot builds the command tree with its own output writers, so tests run commands
// in-process; Main is what the qnet binary runs.
package cli
