// Package manifest holds the Service Manifest (apiVersion qnet/v1): its types, the YAML
// decoder whose errors carry file:line:col, defaults, validation, the canonical JSON form
// that goes on the ledger, and a JSON Schema for editors.
//
// The path of a manifest is: Decode (parse, apply defaults, validate, all errors of a file
// at once) -> sign -> ledger (JSON, read back with DecodeJSON). Validate is pure and can be
// run again anywhere; Default is idempotent.
//
// Replicas is the one field whose zero value is meaningful (0 replicas stops a service), so
// "unset" cannot be told from 0 once decoded. The decoders therefore fill DefaultReplicas
// when the replicas key is absent from the document, and Default leaves Replicas alone: in
// Go, Replicas is exactly what the caller set.
package manifest
