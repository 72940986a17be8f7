// Package manifest holds the Service Manifest (apiVersion qnet/v1): its types, the YAML
// decoder whose errors carry file:line:col, defaults, validation, the canonical JSON form
// that goes on the ledger, and a JSON Schema for editors.
//
// The path of a manifest is: Decode (parse, apply defaults, validate, all errors of a file
// at once) -> ResolveFiles (read the files it names, such as an ingress JSON Schema, into
// it) -> sign -> ledger (JSON, read back with DecodeJSON; ValidateResolved checks that a
// revision carries content, not names of files or mutable images). Validate is pure and
// can be run again anywhere; Default is idempotent.
//
// Two spec fields are optional and mean something by their absence: a service without
// flows may connect to every service (flows: {allow: []} allows none), and a service
// without ingress is reached through its exposed ports without rate limits, body limits
// or schema checks.
//
// Replicas is the one field whose zero value is meaningful (0 replicas stops a service), so
// "unset" cannot be told from 0 once decoded. The decoders therefore fill DefaultReplicas
// when the replicas key is absent from the document, and Default leaves Replicas alone: in
// Go, Replicas is exactly what the caller set.
package manifest
