package manifest

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a manifest: where it is (file, line, column, field path such
// as spec.ports[0].port) and what is wrong, phrased to say what would be valid.
// Line and Col are 1-based; they are zero when the error came from Validate on a value that
// was not decoded from a document.
type FieldError struct {
	File  string
	Line  int
	Col   int
	Field string
	Msg   string
}

// Error formats the error as "file:line:col: field: message", leaving out the parts that
// are unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Col)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one decode or validation, in document order.
// Decoders return all problems at once so a user can fix a file in one pass.
type ErrorList []*FieldError

// Error joins the errors, one per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the errors of the list, so errors.As finds a *FieldError.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Err returns l as an error, or nil when l is empty. Use it rather than returning an empty
// ErrorList as an error, which would be a non-nil error holding nothing.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
