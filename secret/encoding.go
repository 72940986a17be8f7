package secret

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Magic prefixes of the binary forms; the digit is the format's version.
var (
	magicSealed   = []byte("QSS1")
	magicReleased = []byte("QSR1")
)

// encoder writes the binary forms: strings and byte fields are uvarint-length-prefixed,
// integers are 8 bytes big-endian.
type encoder struct{ b []byte }

func (e *encoder) raw(p []byte) { e.b = append(e.b, p...) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) bytes(p []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(len(p)))
	e.b = append(e.b, p...)
}

// decoder reads the binary forms. The first error sticks and names the field; each
// field has a length limit checked before anything is allocated.
type decoder struct {
	what string
	b    []byte
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %s", d.what, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) magic(m []byte) {
	if !bytes.HasPrefix(d.b, m) {
		d.fail("does not start with %q: not this binary form", m)
		return
	}
	d.b = d.b[len(m):]
}

func (d *decoder) u64(field string) uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("%s: truncated (%d of 8 bytes)", field, len(d.b))
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes(field string, max int) []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	switch {
	case k <= 0:
		d.fail("%s: bad or missing length", field)
		return nil
	case n > uint64(max):
		d.fail("%s: length %d is over the limit of %d", field, n, max)
		return nil
	case n > uint64(len(d.b)-k):
		d.fail("%s: truncated (%d of %d bytes)", field, len(d.b)-k, n)
		return nil
	}
	v := bytes.Clone(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return v
}

func (d *decoder) str(field string, max int) string { return string(d.bytes(field, max)) }

func (d *decoder) end() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d unexpected bytes after the last field", len(d.b))
	}
	return d.err
}

// checkLen reports whether a byte field's length is within [min, max].
func checkLen(field string, b []byte, min, max int) error {
	switch {
	case min == max && len(b) != min:
		return fmt.Errorf("%s is %d bytes, want %d", field, len(b), min)
	case len(b) < min || len(b) > max:
		return fmt.Errorf("%s is %d bytes, want %d to %d", field, len(b), min, max)
	}
	return nil
}

// decodeJSON decodes data into into, a copy of the type without its UnmarshalJSON. It
// reports JSON null, which by encoding/json's convention leaves the value alone.
func decodeJSON(data []byte, what string, into any) (null bool, err error) {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return true, nil
	}
	if err := json.Unmarshal(data, into); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return false, nil
}
