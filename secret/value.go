package secret

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
)

// Value is the plaintext of a secret. Every way it can be printed, marshaled or logged
// yields "[redacted NAME vN]"; only [Value.Reveal] gives the bytes. A Value is a handle:
// copies share the bytes, so [Value.Wipe] on one wipes them all.
//
// The bytes sit two pointers deep, so that reflection-based printing of a struct that
// holds a Value in an unexported field (where fmt cannot call its methods, and where a
// wrong verb such as %s makes fmt follow one pointer) shows an address, never the bytes.
//
// A Value is not safe for concurrent use with Wipe.
type Value struct{ v *value }

type value struct {
	name    string
	version uint64
	b       *[]byte
}

// NewValue wraps b, the plaintext of version version of secret name. The Value takes b
// over: the caller should not keep or reuse it, so that Wipe clears the only copy.
func NewValue(name string, version uint64, b []byte) Value {
	return Value{&value{name: name, version: version, b: &b}}
}

// Reveal returns the plaintext itself, not a copy, so that Wipe still clears it. Hand it
// straight to where it is needed and do not keep it.
func (v Value) Reveal() []byte {
	if v.v == nil {
		return nil
	}
	return *v.v.b
}

// Len is the size of the plaintext in bytes.
func (v Value) Len() int { return len(v.Reveal()) }

// Name is the name of the secret the value belongs to.
func (v Value) Name() string {
	if v.v == nil {
		return ""
	}
	return v.v.name
}

// Version is the version of the secret the value belongs to.
func (v Value) Version() uint64 {
	if v.v == nil {
		return 0
	}
	return v.v.version
}

// Wipe overwrites the plaintext with zeros and drops it; Reveal returns nil afterwards.
// Call it as soon as the plaintext has been handed on.
func (v Value) Wipe() {
	if v.v == nil {
		return
	}
	clear(*v.v.b)
	*v.v.b = nil
}

// String returns "[redacted NAME vN]".
func (v Value) String() string {
	if v.v == nil || v.v.name == "" {
		return "[redacted]"
	}
	return fmt.Sprintf("[redacted %s v%d]", v.v.name, v.v.version)
}

// GoString returns the same as String, so %#v redacts too.
func (v Value) GoString() string { return v.String() }

// Format writes String for every verb. Without it, verbs such as %d or %x would have
// fmt print the bytes.
func (v Value) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, v.String()) }

// MarshalJSON encodes the redacted string, never the plaintext.
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }

// MarshalText encodes the redacted string, never the plaintext (for YAML, map keys and
// other text encoders).
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// LogValue makes slog log the redacted string.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

var (
	_ fmt.Stringer   = Value{}
	_ fmt.GoStringer = Value{}
	_ fmt.Formatter  = Value{}
	_ json.Marshaler = Value{}
	_ slog.LogValuer = Value{}
)
