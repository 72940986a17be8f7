package manifest

import (
	_ "embed"
	"slices"
)

//go:embed schema.json
var schema []byte

// Schema returns the JSON Schema (draft 2020-12) of a Service manifest, for editors such
// as the VS Code YAML extension (# yaml-language-server: $schema=...). It describes every
// field with its type, bounds, enums and patterns, and the short forms of checks and
// depots as oneOf branches; cross-field rules (unique ports, named check ports, timeout <=
// interval, a digest that differs from a reference that is itself a digest, an ingress
// port that is an exposed tcp port, burst only with rateLimit, the limits of body sizes
// and rates), the range of a uid written as a string and the JSON Schema an ingress
// names are left to Validate and ResolveFiles. Decode also takes null for an optional field (as if absent) and YAML
// anchors; the schema leaves those out. The caller may modify the returned slice.
func Schema() []byte { return slices.Clone(schema) }
