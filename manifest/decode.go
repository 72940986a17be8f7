package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// MaxManifestSize is the largest manifest file, in bytes, that Decode and DecodeJSON
// accept. A manifest is a few kilobytes; the bound protects every node that decodes one.
const MaxManifestSize = 1 << 20

// maxTokens bounds the YAML tokens (keys, values, punctuation) of one file. The YAML
// parser takes time quadratic in the entries of one mapping and in nesting depth, so the
// byte limit alone would let a hostile file cost seconds; 10000 tokens cost under 100ms at
// worst, and a typical manifest has about 150 (so a file can still hold dozens).
const maxTokens = 10000

// Decode parses the Service manifests in data (YAML, one or more documents separated by
// "---"; JSON is YAML too), fills defaults (see Default) and validates them.
//
// When anything is wrong the error is an ErrorList holding every problem of the file at
// once: YAML syntax errors, unknown fields, values of the wrong type, explicit zero values
// where zero is invalid, and validation errors, each with filename:line:col and field path.
// The returned services are then nil.
//
// A document with no replicas key gets DefaultReplicas; an explicit "replicas: 0" stays 0.
// A null value (a key with nothing after it) counts as absent.
func Decode(filename string, data []byte) ([]*Service, error) {
	docs, errs := decodeFile(filename, data, "YAML")
	errs = append(errs, uniqueNames(docs)...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return services(docs), nil
}

// DecodeFile reads and decodes the manifest file at path; see Decode. Errors name the file
// by path.
func DecodeFile(path string) ([]*Service, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return Decode(path, data)
}

// DecodePath decodes the manifest file at path or, when path is a directory, every
// *.yaml, *.yml and *.json file directly in it, in name order. Service names must be
// unique across all of them. Decoding errors of all files come back as one ErrorList;
// I/O errors are returned as they happen, wrapped.
func DecodePath(path string) ([]*Service, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	if !fi.IsDir() {
		return DecodeFile(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest directory: %w", err)
	}
	var all []decoded
	var errs ErrorList
	found := false
	for _, e := range entries { // ReadDir sorts by name.
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		if e.IsDir() {
			continue
		}
		found = true
		file := filepath.Join(path, e.Name())
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		docs, ferrs := decodeFile(file, data, "YAML")
		all = append(all, docs...)
		errs = append(errs, ferrs...)
	}
	if !found {
		return nil, fmt.Errorf("read manifests: %s: no *.yaml, *.yml or *.json files in the directory", path)
	}
	errs = append(errs, uniqueNames(all)...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return services(all), nil
}

// DecodeJSON decodes one Service from its JSON form (the form stored on the ledger, as
// written by encoding/json), with the same rules as Decode: unknown fields, wrong types
// and invalid values are errors, returned as an ErrorList with line:col. The input must
// be strict JSON holding exactly one object. The service returned is defaulted.
func DecodeJSON(data []byte) (*Service, error) {
	if len(data) > MaxManifestSize {
		return nil, ErrorList{{Line: 1, Col: 1, Msg: fmt.Sprintf("manifest is %d bytes; it must be at most %d bytes (1 MiB)", len(data), MaxManifestSize)}}
	}
	if !json.Valid(data) {
		line, col, msg := 1, 1, "not JSON"
		var se *json.SyntaxError
		if err := json.Unmarshal(data, new(json.RawMessage)); errors.As(err, &se) {
			line, col = lineCol(data, int(se.Offset)-1) // Offset is just after the bad byte
			msg = se.Error()
		}
		return nil, ErrorList{{Line: line, Col: col, Msg: fmt.Sprintf("invalid JSON: %s; want one JSON object holding a Service manifest", msg)}}
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, ErrorList{{Line: 1, Col: 1, Msg: "must be a JSON object holding a Service manifest"}}
	}
	docs, errs := decodeFile("", data, "JSON")
	if len(errs) > 0 {
		return nil, errs
	}
	if len(docs) != 1 { // json.Valid holds one value, so this is a decoder bug.
		return nil, ErrorList{{Line: 1, Col: 1, Msg: fmt.Sprintf("holds %d services; want exactly one JSON object", len(docs))}}
	}
	return docs[0].svc, nil
}

// lineCol converts a byte offset in data to a 1-based line and column.
func lineCol(data []byte, off int) (int, int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - bytes.LastIndexByte(before, '\n')
	return line, col
}

// decoded is one service of a file, with where its name is, for the uniqueness check.
type decoded struct {
	svc    *Service
	nameAt FieldError // File, Line, Col of metadata.name
}

func services(docs []decoded) []*Service {
	out := make([]*Service, len(docs))
	for i, d := range docs {
		out[i] = d.svc
	}
	return out
}

// uniqueNames reports services that share a name: the second would silently replace the
// first when applied.
func uniqueNames(docs []decoded) ErrorList {
	var errs ErrorList
	first := map[string]FieldError{}
	for _, d := range docs {
		name := d.svc.Metadata.Name
		if f, dup := first[name]; dup {
			e := d.nameAt
			e.Field = "metadata.name"
			e.Msg = fmt.Sprintf("must be unique, but service %q is also defined at %s", name, where(f))
			errs = append(errs, &e)
			continue
		}
		first[name] = d.nameAt
	}
	return errs
}

// where formats the position of e as file:line:col.
func where(e FieldError) string {
	if e.File == "" {
		return fmt.Sprintf("%d:%d", e.Line, e.Col)
	}
	return fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
}

// decodeFile decodes every document of one file (syntax names the language in parse
// errors). It returns the services that decoded without error and the errors of all
// documents, sorted by position.
func decodeFile(filename string, data []byte, syntax string) ([]decoded, ErrorList) {
	at := func(line, col int, format string, args ...any) ErrorList {
		return ErrorList{{File: filename, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}}
	}
	if len(data) > MaxManifestSize {
		return nil, at(1, 1, "manifest is %d bytes; it must be at most %d bytes (1 MiB)", len(data), MaxManifestSize)
	}
	// goccy/go-yaml keeps a byte order mark as part of the first key.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	f, err := parse(data)
	if errors.Is(err, errTooManyTokens) {
		return nil, at(1, 1, "manifest has more than %d %s tokens (keys, values and punctuation); a Service manifest is far smaller, so split the file", maxTokens, syntax)
	}
	if err != nil {
		line, col, msg := 1, 1, err.Error()
		var ye yaml.Error
		if errors.As(err, &ye) {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line > 0 {
				line, col = tk.Position.Line, max(tk.Position.Column, 1)
			}
		}
		return nil, at(line, col, "invalid %s: %s", syntax, msg)
	}
	var docs []decoded
	var errs ErrorList
	seen := false
	for _, doc := range f.Docs {
		if doc == nil || isNull(doc.Body) {
			continue // "---" with nothing after it
		}
		seen = true
		d := &docDecoder{file: filename, pos: map[string]position{}, anchors: map[string]ast.Node{},
			bad: map[string]bool{}, badBelow: map[string]bool{}}
		d.collectAnchors(doc.Body)
		s := d.service(doc.Body)
		s.Default()
		derrs := d.errs
		for _, e := range s.Validate() {
			if !d.explained(e.Field) {
				d.locate(e)
				derrs = append(derrs, e)
			}
		}
		if len(derrs) > 0 {
			errs = append(errs, derrs...)
			continue
		}
		np := d.find("metadata.name")
		docs = append(docs, decoded{svc: s, nameAt: FieldError{File: filename, Line: np.line, Col: np.col}})
	}
	if !seen {
		return nil, at(1, 1, "empty manifest: want a Service manifest with apiVersion: %s, kind: %s, metadata and spec", APIVersion, KindService)
	}
	sortErrors(errs)
	return docs, errs
}

// sortErrors puts errors in reading order: by file, line and column.
func sortErrors(errs ErrorList) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// errTooManyTokens is returned by parse for a file over maxTokens.
var errTooManyTokens = errors.New("too many YAML tokens")

// parse parses YAML into an AST. The lexer runs in linear time; the parser only runs on
// files within maxTokens. The parser is outside code fed with outside input, so a panic in
// it becomes an error rather than taking the node down.
func parse(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the YAML parser failed on this input: %v", r)
		}
	}()
	tokens := lexer.Tokenize(string(data))
	if len(tokens) > maxTokens {
		return nil, errTooManyTokens
	}
	return parser.Parse(tokens, 0)
}

// position is a 1-based line and column.
type position struct{ line, col int }

// docDecoder decodes one YAML document into a Service. It walks the AST itself rather than
// using a reflection decoder so that it can report every error of the document at once,
// each at its line and column, and accept the short forms of probes.
type docDecoder struct {
	file    string
	errs    ErrorList
	pos     map[string]position // field path -> where it is written
	anchors map[string]ast.Node
	// bad holds the paths of decode errors and badBelow their ancestors, to drop the
	// validation errors that decode errors cause.
	bad, badBelow map[string]bool
}

// errAt records an error at the position of node n.
func (d *docDecoder) errAt(n ast.Node, path, format string, args ...any) {
	d.errAtPos(nodePos(n), path, format, args...)
}

// errAtPos records an error at position p.
func (d *docDecoder) errAtPos(p position, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: p.line, Col: p.col, Field: path, Msg: fmt.Sprintf(format, args...)})
	if d.bad[path] {
		return
	}
	d.bad[path] = true
	for p := path; p != ""; {
		p = parentPath(p)
		if d.badBelow[p] {
			break
		}
		d.badBelow[p] = true
	}
}

// typeErr records that n is not what the field wants.
func (d *docDecoder) typeErr(n ast.Node, path, want string) {
	d.errAt(n, path, "must be %s, got %s", want, describe(n))
}

// explained reports whether a validation error at path is a consequence of a decode error
// already reported at, above or below it (a value that failed to decode is left zero, and
// the validator would complain about that zero).
func (d *docDecoder) explained(path string) bool {
	if d.badBelow[path] {
		return true
	}
	for p := path; ; p = parentPath(p) {
		if d.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// parentPath is the path one level up: spec.ports[0] for spec.ports[0].port, spec.ports
// for spec.ports[0], "" for spec.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndex(path, "["); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// locate gives a validation error the position of its field or, when the field is not
// written in the document (a missing or defaulted value), of its nearest written parent.
func (d *docDecoder) locate(e *FieldError) {
	p := d.find(e.Field)
	e.File, e.Line, e.Col = d.file, p.line, p.col
}

func (d *docDecoder) find(path string) position {
	for {
		if p, ok := d.pos[path]; ok {
			return p
		}
		if path == "" {
			return position{1, 1}
		}
		path = parentPath(path)
	}
}

// record remembers where path is written: at its value when that is a scalar, at its key
// when the value is a mapping or list (whose own position is its first entry, which reads
// oddly for "spec.depot: ..." errors).
func (d *docDecoder) record(path string, key, value ast.Node) {
	switch value.(type) {
	case nil, *ast.NullNode, *ast.MappingNode, *ast.SequenceNode:
		if key != nil {
			d.pos[path] = nodePos(key)
			return
		}
	}
	d.pos[path] = nodePos(value)
}

// nodePos is where node n starts.
func nodePos(n ast.Node) position {
	if n == nil {
		return position{1, 1}
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		// A block mapping's own token is the ':' of its first entry; its first key is
		// where a reader sees it start.
		if !v.IsFlowStyle && len(v.Values) > 0 && v.Values[0] != nil && v.Values[0].Key != nil {
			return nodePos(v.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if v.Key != nil {
			return nodePos(v.Key)
		}
	case *ast.DocumentNode:
		return nodePos(v.Body)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil || tk.Position.Line < 1 {
		return position{1, 1}
	}
	return position{tk.Position.Line, max(tk.Position.Column, 1)}
}

// collectAnchors records every anchor of the document, so that aliases can be resolved
// wherever they are.
func (d *docDecoder) collectAnchors(n ast.Node) {
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, mv := range v.Values {
			d.collectAnchors(mv)
		}
	case *ast.MappingValueNode:
		if v != nil {
			d.collectAnchors(v.Key)
			d.collectAnchors(v.Value)
		}
	case *ast.SequenceNode:
		for _, e := range v.Values {
			d.collectAnchors(e)
		}
	case *ast.AnchorNode:
		if name, ok := scalarText(v.Name); ok && v.Value != nil {
			d.anchors[name] = v.Value
		}
		d.collectAnchors(v.Value)
	case *ast.TagNode:
		d.collectAnchors(v.Value)
	case *ast.MappingKeyNode:
		d.collectAnchors(v.Value)
	}
}

// resolve looks through anchors, aliases, tags and "? key" markers to the node that holds
// the value. A "!!str" tag turns a scalar into a string. ok is false when the node cannot
// be resolved (an alias to nothing); the error is then already reported.
func (d *docDecoder) resolve(n ast.Node, path string) (ast.Node, bool) {
	orig := n
	for range 64 {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			name, _ := scalarText(v.Value)
			t, ok := d.anchors[name]
			if !ok {
				d.errAt(v, path, "alias *%s refers to no anchor; define it first with &%s", name, name)
				return nil, false
			}
			n = t
		case *ast.TagNode:
			if tk := v.GetToken(); tk != nil && tk.Value == "!!str" {
				if v.Value == nil {
					return ast.String(&token.Token{Value: "", Position: tk.Position}), true
				}
				if s, ok := scalarText(v.Value); ok {
					return ast.String(&token.Token{Value: s, Position: v.Value.GetToken().Position}), true
				}
			}
			n = v.Value
		case *ast.MappingKeyNode:
			n = v.Value
		default:
			return n, true
		}
	}
	d.errAt(orig, path, "aliases nest too deeply; write the value out")
	return nil, false
}

// isNull reports whether n is absent or an explicit null ("~", "null", nothing).
func isNull(n ast.Node) bool {
	if n == nil {
		return true
	}
	_, null := n.(*ast.NullNode)
	return null
}

// scalarText is the text of a scalar node: the value of a string, the source text of a
// number or boolean.
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	return "", false
}

// isString reports whether n is a YAML string (plain, quoted or a block literal).
func isString(n ast.Node) bool {
	switch n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		return true
	}
	return false
}

// describe says what a node is, for "got ..." in messages.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := scalarText(v)
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return "string " + strconv.Quote(s)
	case *ast.IntegerNode:
		return "integer " + v.GetToken().Value
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "number " + v.GetToken().Value
	case *ast.BoolNode:
		return "boolean " + v.GetToken().Value
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	default:
		return n.Type().String()
	}
}

// field is one known key of a mapping and how to decode its value. A field with a notYet
// message is recognised but refused, with that message.
type field struct {
	name   string
	dec    func(n ast.Node, path string)
	notYet string
}

// object decodes mapping n, whose keys must be among fields. It reports false when n is
// absent (null) or not a mapping (then with an error).
func (d *docDecoder) object(n ast.Node, path, want string, fields []field) bool {
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return false
	}
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.typeErr(n, path, want)
		return false
	}
	for _, mv := range m.Values {
		if mv == nil {
			continue
		}
		name, ok := d.key(mv, path)
		if !ok {
			continue
		}
		p := mapKeyPath(path, name)
		if plainKey.MatchString(name) {
			p = fieldPath(path, name)
		}
		var f *field
		for i := range fields {
			if fields[i].name == name {
				f = &fields[i]
			}
		}
		switch {
		case f == nil:
			d.errAt(mv.Key, p, "%s", unknownField(name, fields))
		case f.notYet != "":
			d.errAt(mv.Key, p, "%s", f.notYet)
		default:
			d.record(p, mv.Key, mv.Value)
			f.dec(mv.Value, p)
		}
	}
	return true
}

// key returns the text of the key of entry mv.
func (d *docDecoder) key(mv *ast.MappingValueNode, path string) (string, bool) {
	if mv.Key == nil {
		d.errAt(mv, path, "has an entry without a key")
		return "", false
	}
	if mv.Key.IsMergeKey() {
		d.errAt(mv.Key, fieldPath(path, "<<"), "merge keys (<<) are not supported; write the fields out")
		return "", false
	}
	k, ok := d.resolve(mv.Key, path)
	if !ok {
		return "", false
	}
	name, ok := scalarText(k)
	if !ok {
		d.errAt(mv.Key, path, "keys must be plain strings, got %s", describe(k))
		return "", false
	}
	return name, true
}

// unknownField says that name is not a field here, suggests the likely one, and lists the
// valid ones.
func unknownField(name string, fields []field) string {
	var valid []string
	best, bestDist := "", 3
	for _, f := range fields {
		if f.notYet != "" {
			continue
		}
		valid = append(valid, f.name)
		dist := editDistance(strings.ToLower(name), strings.ToLower(f.name))
		if dist < bestDist && dist < len(f.name)/2+1 {
			best, bestDist = f.name, dist
		}
	}
	msg := "unknown field"
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", best)
	}
	if len(valid) == 1 {
		return msg + "; the only field here is " + valid[0]
	}
	return msg + "; valid fields are " + strings.Join(valid[:len(valid)-1], ", ") + " and " + valid[len(valid)-1]
}

// editDistance is the Levenshtein distance of a and b (short field names only).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// list returns the entries of list n, or nil when n is absent or not a list (then with an
// error).
func (d *docDecoder) list(n ast.Node, path, want string) []ast.Node {
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return nil
	}
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		d.typeErr(n, path, want)
		return nil
	}
	return s.Values
}

// str decodes a string field. Numbers and booleans are refused: a name or a path written
// as 8080 or true is more likely a mistake than intended.
func (d *docDecoder) str(n ast.Node, path, want string, dst *string) {
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return
	}
	if !isString(n) {
		d.typeErr(n, path, want)
		return
	}
	*dst, _ = scalarText(n)
}

// text decodes a free text value (an env value, a label value, an argument): any scalar,
// numbers and booleans as written ("8080", "true").
func (d *docDecoder) text(n ast.Node, path, want string) string {
	n, ok := d.resolve(n, path)
	if !ok {
		return ""
	}
	s, ok := scalarText(n)
	if !ok {
		d.typeErr(n, path, want)
	}
	return s
}

// enum decodes a string field that must be one of allowed; an explicit empty value is an
// error rather than a silent default.
func (d *docDecoder) enum(n ast.Node, path string, allowed []string, dst *string) {
	want := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return
	}
	s, isStr := scalarText(n)
	if !isString(n) || !isStrIn(s, allowed) {
		if isStr && isString(n) {
			d.errAt(n, path, "must be %s, got %q", want, s)
		} else {
			d.typeErr(n, path, want)
		}
		return
	}
	*dst = s
}

func isStrIn(s string, list []string) bool {
	for _, x := range list {
		if s == x {
			return true
		}
	}
	return false
}

// integer decodes an integer field.
func (d *docDecoder) integer(n ast.Node, path, want string, dst *int) bool {
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return false
	}
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		// goccy/go-yaml reads integers too large for 64 bits as plain strings.
		if s, isStr := n.(*ast.StringNode); isStr && isDigits(strings.TrimLeft(s.Value, "-+")) && s.GetToken().Type == token.StringType {
			d.errAt(n, path, "must be %s, got %s, which is out of range", want, s.Value)
			return false
		}
		d.typeErr(n, path, want)
		return false
	}
	switch v := in.Value.(type) {
	case int64:
		if int64(int(v)) == v {
			*dst = int(v)
			return true
		}
	case uint64:
		if v <= maxInt {
			*dst = int(v)
			return true
		}
	}
	d.errAt(n, path, "must be %s, got %s, which is out of range", want, in.GetToken().Value)
	return false
}

// boolean decodes a true/false field.
func (d *docDecoder) boolean(n ast.Node, path string, dst *bool) {
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return
	}
	b, ok := n.(*ast.BoolNode)
	if !ok {
		d.typeErr(n, path, "true or false")
		return
	}
	*dst = b.Value
}

// duration decodes a Go duration string. When dflt is set, zero is refused: the user wrote
// 0 where only a positive value makes sense, and silently using the default would hide it.
func (d *docDecoder) duration(n ast.Node, path, dflt string, dst *Duration) {
	const want = "a duration like 5s, 250ms or 1m30s"
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return
	}
	s, isScalar := scalarText(n)
	if !isScalar {
		d.typeErr(n, path, want)
		return
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.typeErr(n, path, want)
		return
	}
	if v == 0 && dflt != "" {
		d.errAt(n, path, "must be more than 0 (leave it out for the default %s), got %s", dflt, s)
		return
	}
	*dst = Duration(v)
}

// threshold decodes a probe threshold; 0 is refused like a zero duration.
func (d *docDecoder) threshold(n ast.Node, path string, dflt int, dst *int) {
	want := fmt.Sprintf("an integer between 1 and %d", maxThreshold)
	var v int
	if d.integer(n, path, want, &v) {
		if v == 0 {
			d.errAt(n, path, "must be between 1 and %d (leave it out for the default %d), got 0", maxThreshold, dflt)
			return
		}
		*dst = v
	}
}

func (d *docDecoder) service(body ast.Node) *Service {
	s := &Service{}
	s.Spec.Replicas = DefaultReplicas // an absent replicas key means the default
	d.pos[""] = nodePos(body)
	d.object(body, "", "a Service manifest: a mapping with apiVersion, kind, metadata and spec", []field{
		{name: "apiVersion", dec: func(n ast.Node, p string) { d.str(n, p, APIVersion, &s.APIVersion) }},
		{name: "kind", dec: func(n ast.Node, p string) { d.str(n, p, KindService, &s.Kind) }},
		{name: "metadata", dec: func(n ast.Node, p string) { d.metadata(n, p, &s.Metadata) }},
		{name: "spec", dec: func(n ast.Node, p string) { d.spec(n, p, &s.Spec) }},
	})
	return s
}

func (d *docDecoder) metadata(n ast.Node, path string, m *Metadata) {
	d.object(n, path, "a mapping with name and optionally network and labels", []field{
		{name: "name", dec: func(n ast.Node, p string) { d.str(n, p, "a DNS label ("+dnsLabelRule+")", &m.Name) }},
		{name: "network", dec: func(n ast.Node, p string) { d.str(n, p, "a network name", &m.Network) }},
		{name: "labels", dec: func(n ast.Node, p string) {
			m.Labels = d.stringMap(n, p, "a mapping of label keys to values", "a label value")
		}},
	})
}

// notYetSpec is the message for spec fields of the design that qnet/v1 does not take yet.
const notYetSpec = "is not supported yet in qnet/v1; valid fields are depot, replicas, resources, ports, env, health, restart, placement, flows, ingress, secrets, configs and rollout"

func (d *docDecoder) spec(n ast.Node, path string, sp *Spec) {
	d.object(n, path, "a mapping with depot, replicas, resources, ports, env, health, restart, placement, flows, ingress, secrets, configs and rollout", []field{
		{name: "depot", dec: func(n ast.Node, p string) { d.depot(n, p, &sp.Depot) }},
		{name: "replicas", dec: func(n ast.Node, p string) {
			d.integer(n, p, fmt.Sprintf("an integer between 0 and %d", maxReplicas), &sp.Replicas)
		}},
		{name: "resources", dec: func(n ast.Node, p string) { d.resources(n, p, &sp.Resources) }},
		{name: "ports", dec: func(n ast.Node, p string) { sp.Ports = d.ports(n, p) }},
		{name: "env", dec: func(n ast.Node, p string) {
			sp.Env = d.stringMap(n, p, "a mapping of variable names to values", "an environment variable value")
		}},
		{name: "health", dec: func(n ast.Node, p string) {
			d.object(n, p, "a mapping with liveness and/or readiness", []field{
				{name: "liveness", dec: func(n ast.Node, p string) { sp.Health.Liveness = d.probe(n, p) }},
				{name: "readiness", dec: func(n ast.Node, p string) { sp.Health.Readiness = d.probe(n, p) }},
			})
		}},
		{name: "restart", dec: func(n ast.Node, p string) { d.restart(n, p, &sp.Restart) }},
		{name: "placement", dec: func(n ast.Node, p string) { d.placement(n, p, &sp.Placement) }},
		{name: "flows", dec: func(n ast.Node, p string) { sp.Flows = d.flows(n, p) }},
		{name: "ingress", dec: func(n ast.Node, p string) { sp.Ingress = d.ingress(n, p) }},
		{name: "autoscale", notYet: notYetSpec},
		{name: "secrets", dec: func(n ast.Node, p string) { sp.Secrets = d.secrets(n, p) }},
		{name: "configs", dec: func(n ast.Node, p string) { sp.Configs = d.configs(n, p) }},
		{name: "rollout", dec: func(n ast.Node, p string) { sp.Rollout = d.rollout(n, p) }},
		{name: "mpi", notYet: notYetSpec},
	})
}

func (d *docDecoder) depot(n ast.Node, path string, dp *Depot) {
	d.object(n, path, "a mapping with exactly one of exec, image or wasm, like {image: registry.local/web:1.2}", []field{
		{name: "exec", dec: func(n ast.Node, p string) { dp.Exec = d.execDepot(n, p) }},
		{name: "image", dec: func(n ast.Node, p string) { dp.Image = d.imageDepot(n, p) }},
		{name: "wasm", dec: func(n ast.Node, p string) { dp.Wasm = d.wasmDepot(n, p) }},
	})
}

// depotForm resolves the value of a depot kind that may be written short, as just its
// reference. It returns the mapping to decode field by field (nil when there is none) and
// whether the depot is present at all; for the short form, short receives the text.
func (d *docDecoder) depotForm(n ast.Node, path, refField, want string, short *string) (ast.Node, bool) {
	r, ok := d.resolve(n, path)
	if !ok {
		return nil, true // error reported; a present, empty depot keeps validation quiet
	}
	if isNull(r) {
		return nil, false
	}
	if isString(r) {
		*short, _ = scalarText(r)
		d.pos[fieldPath(path, refField)] = nodePos(r)
		return nil, true
	}
	if _, isMap := r.(*ast.MappingNode); !isMap {
		d.typeErr(r, path, want)
		return nil, true
	}
	return r, true
}

// imageDepot decodes an image depot: {ref, digest, command, args, workingDir, user,
// readOnlyRoot}, or just the reference.
func (d *docDecoder) imageDepot(n ast.Node, path string) *ImageDepot {
	const want = "an image reference like registry.local/web:1.2 or a mapping {ref, digest, command, args, workingDir, user, readOnlyRoot}"
	im := &ImageDepot{}
	m, present := d.depotForm(n, path, "ref", want, &im.Ref)
	if !present {
		return nil
	}
	if m == nil {
		return im
	}
	d.object(m, path, want, []field{
		{name: "ref", dec: func(n ast.Node, p string) {
			d.str(n, p, "an image reference like registry.local/web:1.2 (a string)", &im.Ref)
		}},
		{name: "digest", dec: func(n ast.Node, p string) { d.str(n, p, "a digest: "+digestRule, &im.Digest) }},
		{name: "command", dec: func(n ast.Node, p string) {
			im.Command = d.textList(n, p, "a list like [/app/web, --verbose]", "a command word")
		}},
		{name: "args", dec: func(n ast.Node, p string) { im.Args = d.textList(n, p, "a list of arguments", "an argument") }},
		{name: "workingDir", dec: func(n ast.Node, p string) { d.str(n, p, "an absolute directory path like /app", &im.WorkingDir) }},
		{name: "user", dec: func(n ast.Node, p string) { im.User = d.user(n, p) }},
		{name: "readOnlyRoot", dec: func(n ast.Node, p string) { d.boolean(n, p, &im.ReadOnlyRoot) }},
	})
	return im
}

// wasmDepot decodes a wasm depot: {module, digest, args}, or just the module reference.
func (d *docDecoder) wasmDepot(n ast.Node, path string) *WasmDepot {
	const want = "a module reference like ./hello.wasm or a mapping {module, digest, args}"
	w := &WasmDepot{}
	m, present := d.depotForm(n, path, "module", want, &w.Module)
	if !present {
		return nil
	}
	if m == nil {
		return w
	}
	d.object(m, path, want, []field{
		{name: "module", dec: func(n ast.Node, p string) {
			d.str(n, p, "a module reference like ./hello.wasm or hello:1 (a string)", &w.Module)
		}},
		{name: "digest", dec: func(n ast.Node, p string) { d.str(n, p, "a digest: "+digestRule, &w.Digest) }},
		{name: "args", dec: func(n ast.Node, p string) { w.Args = d.textList(n, p, "a list of arguments", "an argument") }},
	})
	return w
}

// user decodes the user of an image depot: a string, or a number for a bare uid
// (user: 1000), kept as written for Validate to check.
func (d *docDecoder) user(n ast.Node, path string) string {
	const want = "uid[:gid] like 1000:1000, or a user name like nobody"
	r, ok := d.resolve(n, path)
	if !ok || isNull(r) {
		return ""
	}
	switch r.(type) {
	case *ast.StringNode, *ast.LiteralNode, *ast.IntegerNode:
		s, _ := scalarText(r)
		return s
	}
	d.typeErr(r, path, want)
	return ""
}

// execDepot decodes an exec depot: {command, args, workingDir}, or just the command.
func (d *docDecoder) execDepot(n ast.Node, path string) *ExecDepot {
	const want = "a command like ./bin/web or a mapping {command, args, workingDir}"
	r, ok := d.resolve(n, path)
	if !ok {
		return &ExecDepot{}
	}
	if isNull(r) {
		return nil
	}
	if isString(r) {
		s, _ := scalarText(r)
		d.pos[path+".command"] = nodePos(r)
		return &ExecDepot{Command: s}
	}
	e := &ExecDepot{}
	if _, isMap := r.(*ast.MappingNode); !isMap {
		d.typeErr(r, path, want)
		return e
	}
	d.object(r, path, want, []field{
		{name: "command", dec: func(n ast.Node, p string) { d.str(n, p, "the executable to run, as a string", &e.Command) }},
		{name: "args", dec: func(n ast.Node, p string) { e.Args = d.textList(n, p, "a list of arguments", "an argument") }},
		{name: "workingDir", dec: func(n ast.Node, p string) { d.str(n, p, "a directory path", &e.WorkingDir) }},
	})
	return e
}

// textList decodes a list of free text values; entries that fail stay "" so indexes keep
// matching the document.
func (d *docDecoder) textList(n ast.Node, path, want, wantElem string) []string {
	var out []string
	for i, e := range d.list(n, path, want) {
		p := indexPath(path, i)
		d.record(p, nil, e)
		out = append(out, d.text(e, p, wantElem+" (a string)"))
	}
	return out
}

// stringMap decodes a free-form map of strings (labels, env).
func (d *docDecoder) stringMap(n ast.Node, path, want, wantValue string) map[string]string {
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return nil
	}
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.typeErr(n, path, want)
		return nil
	}
	var out map[string]string
	for _, mv := range m.Values {
		if mv == nil {
			continue
		}
		k, ok := d.key(mv, path)
		if !ok {
			continue
		}
		p := mapKeyPath(path, k)
		d.pos[p] = nodePos(mv.Key) // errors about entries are mostly about their keys
		v, vok := d.resolve(mv.Value, p)
		if !vok {
			continue
		}
		if isNull(v) {
			d.errAt(mv.Key, p, "must be %s (a string, number or boolean), got null; write \"\" for an empty value", wantValue)
			continue
		}
		s, ok := scalarText(v)
		if !ok {
			d.typeErr(v, p, wantValue+" (a string, number or boolean)")
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = s
	}
	return out
}

// quantity reads the text of a quantity written as a string or a number.
func (d *docDecoder) quantity(n ast.Node, path, want string) (string, bool) {
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return "", false
	}
	switch n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode:
		s, _ := scalarText(n)
		return s, true
	}
	d.typeErr(n, path, want)
	return "", false
}

func (d *docDecoder) resources(n ast.Node, path string, r *Resources) {
	d.object(n, path, "a mapping with cpu and memory", []field{
		{name: "cpu", dec: func(n ast.Node, p string) {
			const want = "a CPU quantity: millicores like 250m or cores like 0.5 or 2"
			s, ok := d.quantity(n, p, want)
			if !ok {
				return
			}
			v, err := ParseMilliCPU(s)
			switch {
			case err != nil:
				d.typeErr(n, p, want)
			case v == 0:
				d.errAt(n, p, "must be more than 0 (leave it out for the default %s), got %s", DefaultCPU, s)
			default:
				r.CPU = v
			}
		}},
		{name: "memory", dec: func(n ast.Node, p string) {
			const want = "a memory quantity: bytes, or a number with K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), like 64Mi or 1.5Gi"
			s, ok := d.quantity(n, p, want)
			if !ok {
				return
			}
			v, err := ParseBytes(s)
			switch {
			case err != nil:
				d.typeErr(n, p, want)
			case v == 0:
				d.errAt(n, p, "must be between %s and %s (leave it out for the default %s), got %s", minMemory, maxMemory, DefaultMemory, s)
			default:
				r.Memory = v
			}
		}},
	})
}

// ports decodes spec.ports. An entry that fails to decode stays as a zero Port so that
// indexes keep matching the document.
func (d *docDecoder) ports(n ast.Node, path string) []Port {
	var out []Port
	for i, e := range d.list(n, path, "a list of ports like [{name: http, port: 8080}]") {
		p := indexPath(path, i)
		d.record(p, nil, e)
		var pt Port
		d.object(e, p, "a port mapping like {name: http, port: 8080}", []field{
			{name: "name", dec: func(n ast.Node, p string) { d.str(n, p, "a port name ("+dnsLabelRule+")", &pt.Name) }},
			{name: "port", dec: func(n ast.Node, p string) { d.integer(n, p, "a port number between 1 and 65535", &pt.Port) }},
			{name: "hostPort", dec: func(n ast.Node, p string) {
				d.integer(n, p, "a port number between 1 and 65535, or 0 to let the agent pick one", &pt.HostPort)
			}},
			{name: "protocol", dec: func(n ast.Node, p string) { d.enum(n, p, []string{"tcp", "udp"}, &pt.Protocol) }},
			{name: "expose", dec: func(n ast.Node, p string) { d.boolean(n, p, &pt.Expose) }},
		})
		if isNull(e) {
			d.errAt(e, p, "must be a port mapping like {name: http, port: 8080}, got null")
		}
		out = append(out, pt)
	}
	return out
}

// probe decodes a health probe; nil when absent.
func (d *docDecoder) probe(n ast.Node, path string) *Probe {
	r, ok := d.resolve(n, path)
	if !ok {
		return &Probe{HTTP: &HTTPCheck{}} // error reported; a placeholder keeps validation quiet
	}
	if isNull(r) {
		return nil
	}
	pr := &Probe{}
	if !d.object(r, path, "a probe mapping like {http: /healthz, interval: 5s}", []field{
		{name: "http", dec: func(n ast.Node, p string) { pr.HTTP = d.httpCheck(n, p) }},
		{name: "tcp", dec: func(n ast.Node, p string) { pr.TCP = d.tcpCheck(n, p) }},
		{name: "exec", dec: func(n ast.Node, p string) { pr.Exec = d.execCheck(n, p) }},
		{name: "initialDelay", dec: func(n ast.Node, p string) { d.duration(n, p, "", &pr.InitialDelay) }},
		{name: "interval", dec: func(n ast.Node, p string) { d.duration(n, p, DefaultProbeInterval.String(), &pr.Interval) }},
		{name: "timeout", dec: func(n ast.Node, p string) { d.duration(n, p, DefaultProbeTimeout.String(), &pr.Timeout) }},
		{name: "failureThreshold", dec: func(n ast.Node, p string) {
			d.threshold(n, p, DefaultFailureThreshold, &pr.FailureThreshold)
		}},
		{name: "successThreshold", dec: func(n ast.Node, p string) {
			d.threshold(n, p, DefaultSuccessThreshold, &pr.SuccessThreshold)
		}},
	}) {
		return &Probe{HTTP: &HTTPCheck{}}
	}
	return pr
}

// httpCheck decodes an HTTP check: {path, port} or just the path.
func (d *docDecoder) httpCheck(n ast.Node, path string) *HTTPCheck {
	const want = "a path like /healthz or a mapping {path: /healthz, port: http}"
	r, ok := d.resolve(n, path)
	if !ok {
		return &HTTPCheck{}
	}
	if isNull(r) {
		return nil
	}
	h := &HTTPCheck{}
	switch r.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		h.Path, _ = scalarText(r)
		d.pos[path+".path"] = nodePos(r)
	case *ast.MappingNode:
		d.object(r, path, want, []field{
			{name: "path", dec: func(n ast.Node, p string) { d.str(n, p, "a URL path like /healthz", &h.Path) }},
			{name: "port", dec: func(n ast.Node, p string) { h.Port = d.checkPort(n, p) }},
		})
	default:
		d.typeErr(r, path, want)
	}
	return h
}

// tcpCheck decodes a TCP check: {port} or just the port.
func (d *docDecoder) tcpCheck(n ast.Node, path string) *TCPCheck {
	const want = "a port name or number, or a mapping {port: http}"
	r, ok := d.resolve(n, path)
	if !ok {
		return &TCPCheck{}
	}
	if isNull(r) {
		return nil
	}
	t := &TCPCheck{}
	switch r.(type) {
	case *ast.StringNode, *ast.IntegerNode:
		t.Port = d.checkPort(r, path+".port")
		d.pos[path+".port"] = nodePos(r)
	case *ast.MappingNode:
		d.object(r, path, want, []field{
			{name: "port", dec: func(n ast.Node, p string) { t.Port = d.checkPort(n, p) }},
		})
	default:
		d.typeErr(r, path, want)
	}
	return t
}

// execCheck decodes an exec check: {command: [...]} or just the list.
func (d *docDecoder) execCheck(n ast.Node, path string) *ExecCheck {
	const want = "a command list like [pg_isready, -q] or a mapping {command: [...]}"
	r, ok := d.resolve(n, path)
	if !ok {
		return &ExecCheck{}
	}
	if isNull(r) {
		return nil
	}
	e := &ExecCheck{}
	switch r.(type) {
	case *ast.SequenceNode:
		e.Command = d.textList(r, path+".command", want, "a command word")
		d.pos[path+".command"] = nodePos(r)
	case *ast.MappingNode:
		d.object(r, path, want, []field{
			{name: "command", dec: func(n ast.Node, p string) {
				e.Command = d.textList(n, p, "a command list like [pg_isready, -q]", "a command word")
			}},
		})
	default:
		d.typeErr(r, path, want)
	}
	return e
}

// checkPort decodes the port of a check: a port name or a number.
func (d *docDecoder) checkPort(n ast.Node, path string) string {
	const want = "a port name from spec.ports or a port number between 1 and 65535"
	r, ok := d.resolve(n, path)
	if !ok || isNull(r) {
		return ""
	}
	switch v := r.(type) {
	case *ast.StringNode:
		return v.Value
	case *ast.IntegerNode:
		switch i := v.Value.(type) {
		case int64:
			return strconv.FormatInt(i, 10)
		case uint64:
			return strconv.FormatUint(i, 10)
		}
	}
	d.typeErr(r, path, want)
	return ""
}

func (d *docDecoder) restart(n ast.Node, path string, r *Restart) {
	d.object(n, path, "a mapping with policy, backoff and maxBackoff", []field{
		{name: "policy", dec: func(n ast.Node, p string) {
			var s string
			d.enum(n, p, []string{string(RestartAlways), string(RestartOnFailure), string(RestartNever)}, &s)
			r.Policy = RestartPolicy(s)
		}},
		{name: "backoff", dec: func(n ast.Node, p string) { d.duration(n, p, DefaultBackoff.String(), &r.Backoff) }},
		{name: "maxBackoff", dec: func(n ast.Node, p string) { d.duration(n, p, DefaultMaxBackoff.String(), &r.MaxBackoff) }},
	})
}

func (d *docDecoder) placement(n ast.Node, path string, pl *Placement) {
	d.object(n, path, "a mapping with strategy, spreadBy and constraints", []field{
		{name: "strategy", dec: func(n ast.Node, p string) {
			var s string
			d.enum(n, p, []string{string(StrategySpread), string(StrategyBinpack)}, &s)
			pl.Strategy = Strategy(s)
		}},
		{name: "spreadBy", dec: func(n ast.Node, p string) {
			d.str(n, p, "node or a node label key such as zone", &pl.SpreadBy)
		}},
		{name: "constraints", dec: func(n ast.Node, p string) { pl.Constraints = d.constraints(n, p) }},
		{name: "near", notYet: "is not supported yet in qnet/v1; valid fields are strategy, spreadBy and constraints"},
	})
}

// constraints decodes spec.placement.constraints, parsing each entry's text. An entry
// that fails stays a zero Constraint so indexes keep matching the document.
func (d *docDecoder) constraints(n ast.Node, path string) []Constraint {
	const want = `a constraint like "arch == arm64" (a string)`
	var out []Constraint
	for i, e := range d.list(n, path, `a list of constraints like ["arch == arm64", "label.zone != eu-west-1"]`) {
		p := indexPath(path, i)
		d.record(p, nil, e)
		out = append(out, Constraint{})
		r, ok := d.resolve(e, p)
		if !ok {
			continue
		}
		if !isString(r) {
			d.typeErr(r, p, want)
			continue
		}
		text, _ := scalarText(r)
		c, err := ParseConstraint(text)
		if err != nil {
			d.errAt(r, p, "%s", err)
			continue
		}
		out[i] = c
	}
	return out
}

// flows decodes spec.flows: {allow: [service names]}; nil when absent or null, so that a
// service without flows may reach every service.
func (d *docDecoder) flows(n ast.Node, path string) *Flows {
	const want = "a mapping {allow: [service names]}, like {allow: [db, cache]}"
	r, ok := d.resolve(n, path)
	if !ok {
		return &Flows{} // error reported; a placeholder keeps validation quiet
	}
	if isNull(r) {
		return nil
	}
	f := &Flows{}
	d.object(r, path, want, []field{
		{name: "allow", dec: func(n ast.Node, p string) {
			for i, e := range d.list(n, p, "a list of service names, like [db, cache]; [] allows none") {
				ip := indexPath(p, i)
				d.record(ip, nil, e)
				var name string
				if r, ok := d.resolve(e, ip); ok {
					if isString(r) {
						name, _ = scalarText(r)
					} else {
						d.typeErr(r, ip, "a service name ("+dnsLabelRule+")")
					}
				}
				f.Allow = append(f.Allow, name)
			}
		}},
	})
	return f
}

// ingress decodes spec.ingress; nil when absent or null.
func (d *docDecoder) ingress(n ast.Node, path string) *Ingress {
	const want = "a mapping with rateLimit, burst, port, maxBodyBytes, schema and schemaJSON, like {rateLimit: 200/s, schema: ./order.schema.json}"
	r, ok := d.resolve(n, path)
	if !ok {
		return &Ingress{}
	}
	if isNull(r) {
		return nil
	}
	in := &Ingress{}
	d.object(r, path, want, []field{
		{name: "rateLimit", dec: func(n ast.Node, p string) { in.RateLimit = d.rate(n, p) }},
		{name: "burst", dec: func(n ast.Node, p string) {
			var b int
			if d.integer(n, p, fmt.Sprintf("a whole number of requests between 1 and %d", maxBurst), &b) {
				if b == 0 {
					d.errAt(n, p, "must be between 1 and %d (leave it out for the rate per second), got 0", maxBurst)
					return
				}
				in.Burst = b
			}
		}},
		{name: "port", dec: func(n ast.Node, p string) {
			d.str(n, p, "the name of an exposed tcp port in spec.ports (a string)", &in.Port)
		}},
		{name: "maxBodyBytes", dec: func(n ast.Node, p string) {
			const want = "a size: bytes, or a number with K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), like 1Mi or 512Ki"
			s, ok := d.quantity(n, p, want)
			if !ok {
				return
			}
			v, err := ParseBytes(s)
			switch {
			case err != nil:
				d.typeErr(n, p, want)
			case v == 0:
				d.errAt(n, p, "must be between 1 and %s (leave it out for the default %s), got %s", maxBodyBytes, DefaultMaxBodyBytes, s)
			default:
				in.MaxBodyBytes = v
			}
		}},
		{name: "schema", dec: func(n ast.Node, p string) {
			d.str(n, p, "the path of a JSON Schema file relative to the manifest, like ./order.schema.json (a string)", &in.Schema)
		}},
		{name: "schemaJSON", dec: func(n ast.Node, p string) { in.SchemaJSON = d.schemaJSON(n, p) }},
	})
	return in
}

// rate decodes a rate N/s, N/m or N/h; the zero Rate when absent or wrong.
func (d *docDecoder) rate(n ast.Node, path string) Rate {
	const want = "a rate " + rateRule
	r, ok := d.resolve(n, path)
	if !ok || isNull(r) {
		return Rate{}
	}
	if !isString(r) {
		d.typeErr(r, path, want)
		return Rate{}
	}
	s, _ := scalarText(r)
	v, err := ParseRate(s)
	switch {
	case errors.Is(err, errZeroRate):
		d.errAt(r, path, "must be more than 0 (leave rateLimit out for no limit), got %s", s)
	case err != nil:
		d.typeErr(r, path, want)
	}
	return v
}

// schemaJSON decodes an inline JSON Schema into its canonical JSON form, the form
// ResolveFiles makes from a file: compact, with the keys of each object sorted. The
// JSON form of a service carries it; in YAML any value that JSON can hold will do.
func (d *docDecoder) schemaJSON(n ast.Node, path string) json.RawMessage {
	r, ok := d.resolve(n, path)
	if !ok || isNull(r) {
		return nil
	}
	budget := maxTokens // aliases could otherwise expand a small document enormously
	v, ok := d.jsonValue(r, path, 0, &budget)
	if budget < 0 {
		d.errAtPos(d.find(path), path, "expands to more than %d values through aliases; write the schema out", maxTokens)
		return nil
	}
	if !ok {
		return nil
	}
	js, err := json.Marshal(v)
	if err != nil { // jsonValue only makes values that marshal
		d.errAt(r, path, "cannot be written as JSON: %v", err)
		return nil
	}
	return js
}

// jsonValue converts the YAML value n to the value encoding/json would decode from the
// same JSON (with UseNumber), so that a JSON document read as YAML gives the same
// canonical form as read as JSON.
func (d *docDecoder) jsonValue(n ast.Node, path string, depth int, budget *int) (any, bool) {
	if *budget--; *budget < 0 {
		return nil, false // schemaJSON reports it once, where the value starts
	}
	r, ok := d.resolve(n, path)
	if !ok {
		return nil, false
	}
	switch v := r.(type) {
	case nil, *ast.NullNode:
		return nil, true
	case *ast.BoolNode:
		return v.Value, true
	case *ast.StringNode:
		// A number too large for 64 bits (or 1e400) is a plain string to the parser.
		if tk := v.GetToken(); tk != nil && tk.Type == token.StringType && isJSONNumber(v.Value) {
			return json.Number(v.Value), true
		}
		return v.Value, true
	case *ast.LiteralNode:
		s, _ := scalarText(v)
		return s, true
	case *ast.IntegerNode, *ast.FloatNode:
		if text := r.GetToken().Value; isJSONNumber(text) {
			return json.Number(text), true
		}
		// A YAML-only spelling (0x1f, 1_000, .5, +1): the number it stands for.
		switch x := r.(type) {
		case *ast.IntegerNode:
			return json.Number(fmt.Sprint(x.Value)), true
		case *ast.FloatNode:
			if !math.IsInf(x.Value, 0) && !math.IsNaN(x.Value) {
				return json.Number(strconv.FormatFloat(x.Value, 'g', -1, 64)), true
			}
		}
	case *ast.MappingNode, *ast.SequenceNode:
		if depth >= maxJSONDepth {
			d.errAt(r, path, "nests deeper than %d levels; a JSON Schema needs far fewer", maxJSONDepth)
			return nil, false
		}
		if m, isMap := v.(*ast.MappingNode); isMap {
			obj := map[string]any{}
			for _, mv := range m.Values {
				if mv == nil {
					continue
				}
				k, ok := d.key(mv, path)
				if !ok {
					return nil, false
				}
				val, ok := d.jsonValue(mv.Value, path, depth+1, budget)
				if !ok {
					return nil, false
				}
				obj[k] = val
			}
			return obj, true
		}
		list := []any{}
		for _, e := range v.(*ast.SequenceNode).Values {
			val, ok := d.jsonValue(e, path, depth+1, budget)
			if !ok {
				return nil, false
			}
			list = append(list, val)
		}
		return list, true
	}
	d.errAt(r, path, "must be JSON: objects, lists, strings, numbers, true, false and null, got %s", describe(r))
	return nil, false
}
