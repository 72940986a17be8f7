package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goccy/go-yaml/lexer"
)

// MaxSchemaSize bounds an ingress JSON Schema, as a file and inlined in SchemaJSON: it
// travels in every revision of the service and every node keeps it.
const MaxSchemaSize = 256 << 10

// maxJSONDepth bounds the nesting of a JSON Schema document. A schema nests a few levels
// per level of the data it describes; 64 is far more than a real one needs.
const maxJSONDepth = 64

// ResolveFiles reads the files a manifest names by path into the service, so that the
// revision qnet apply signs holds their content rather than a path only this machine
// can read. Today that is spec.ingress.schema: the JSON Schema file is read (a relative
// path from baseDir, the directory of the manifest file), checked to be JSON (an object
// or a boolean, each key once per object) and put in spec.ingress.schemaJSON in its
// canonical form. readFile reads a file; nil means os.ReadFile.
//
// A service that already carries SchemaJSON (a JSON form read back from the ledger, or a
// schema written inline) keeps it: the file is not read. Errors name the field and the
// file; an error reading the file wraps the error of readFile.
func (s *Service) ResolveFiles(baseDir string, readFile func(string) ([]byte, error)) error {
	if s == nil || s.Spec.Ingress == nil {
		return nil
	}
	in := s.Spec.Ingress
	if in.Schema == "" || len(in.SchemaJSON) > 0 {
		return nil
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	const field = "spec.ingress.schema"
	path := filepath.FromSlash(in.Schema)
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	data, err := readFile(path)
	if err != nil {
		return fmt.Errorf("%s: read schema file %s: %w", field, path, err)
	}
	if len(data) > MaxSchemaSize {
		return fmt.Errorf("%s: schema file %s is %d bytes; it must be at most %d bytes (256 KiB)", field, path, len(data), MaxSchemaSize)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // editors on Windows write one
	v, err := parseJSON(data)
	if err != nil {
		return fmt.Errorf("%s: schema file %s%w", field, path, err)
	}
	if what := schemaShape(v); what != "" {
		return fmt.Errorf("%s: schema file %s: must hold a JSON Schema document: a JSON object or true or false, got %s", field, path, what)
	}
	canon, err := json.Marshal(v)
	if err != nil { // parseJSON only makes values that marshal
		return fmt.Errorf("%s: schema file %s: %w", field, path, err)
	}
	in.SchemaJSON = canon
	// The revision must decode wherever it goes: DecodeJSON bounds bytes and tokens.
	js, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if n := len(lexer.Tokenize(string(js))); len(js) > MaxManifestSize || n > maxTokens {
		in.SchemaJSON = nil
		return fmt.Errorf("%s: schema file %s is too large to inline: the service's JSON form would be %d bytes and %d tokens (keys, values and punctuation); a manifest may have at most %d bytes and %d tokens, so use a smaller schema",
			field, path, len(js), n, MaxManifestSize, maxTokens)
	}
	return nil
}

// jsonError is a problem in a JSON document at a position; it formats as ":line:col:
// message", to follow the name of the file.
type jsonError struct {
	line, col int
	msg       string
}

func (e *jsonError) Error() string { return fmt.Sprintf(":%d:%d: %s", e.line, e.col, e.msg) }

// parseJSON parses one strict JSON document into the values encoding/json makes with
// UseNumber (numbers stay as written), refusing a key written twice in one object (one
// of the two would be silently lost) and nesting deeper than maxJSONDepth.
func parseJSON(data []byte) (any, error) {
	if !json.Valid(data) {
		line, col, msg := 1, 1, "not JSON"
		var se *json.SyntaxError
		if err := json.Unmarshal(data, new(json.RawMessage)); errors.As(err, &se) {
			line, col = lineCol(data, int(se.Offset)-1)
			msg = se.Error()
		}
		return nil, &jsonError{line, col, "invalid JSON: " + msg}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return readJSON(dec, data, 0)
}

// readJSON reads the next value of dec, which reads data, known to be valid JSON.
func readJSON(dec *json.Decoder, data []byte, depth int) (any, error) {
	start := int(dec.InputOffset())
	tok, err := dec.Token()
	if err != nil {
		return nil, &jsonError{1, 1, "invalid JSON: " + err.Error()}
	}
	delim, isDelim := tok.(json.Delim)
	if !isDelim {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxJSONDepth {
		line, col := lineCol(data, start+bytes.IndexByte(data[start:], byte(delim)))
		return nil, &jsonError{line, col, fmt.Sprintf("nests deeper than %d levels; a JSON Schema needs far fewer", maxJSONDepth)}
	}
	if delim == '[' {
		list := []any{}
		for dec.More() {
			v, err := readJSON(dec, data, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err = dec.Token() // ]
		return list, err
	}
	obj := map[string]any{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := kt.(string)
		if _, dup := obj[k]; dup {
			line, col := lineCol(data, keyStart(data, int(dec.InputOffset())))
			return nil, &jsonError{line, col, fmt.Sprintf("key %q is written twice in one object; JSON keeps only one of them, so write it once", k)}
		}
		v, err := readJSON(dec, data, depth+1)
		if err != nil {
			return nil, err
		}
		obj[k] = v
	}
	_, err = dec.Token() // }
	return obj, err
}

// keyStart finds the opening quote of the key that ends just before off (the decoder's
// offset after reading a key is just past its closing quote).
func keyStart(data []byte, off int) int {
	for i := off - 2; i >= 0; i-- {
		if data[i] != '"' {
			continue
		}
		slashes := 0
		for j := i - 1; j >= 0 && data[j] == '\\'; j-- {
			slashes++
		}
		if slashes%2 == 0 {
			return i
		}
	}
	return off
}

// schemaShape says what v is when it cannot be a JSON Schema document (which is an
// object or a boolean), or "" when it can.
func schemaShape(v any) string {
	switch x := v.(type) {
	case map[string]any, bool:
		return ""
	case nil:
		return "null"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "number " + string(x)
	}
	return fmt.Sprintf("%T", v)
}

// isJSONNumber reports whether s is a number as JSON writes it (-1.5e3, not +1, .5, 0x1f).
func isJSONNumber(s string) bool {
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return false
	}
	return json.Valid([]byte(s))
}
