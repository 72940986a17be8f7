// Package examples holds the example manifests of QNet, embedded so that the binary and
// the tests can use them without reading files.
package examples

import _ "embed"

// Hello is the manifest of the hello example service (hello.yaml): three replicas of
// `qnet example-hello`, which answers HTTP on $PORT, with liveness and readiness probes.
//
//go:embed hello.yaml
var Hello []byte
