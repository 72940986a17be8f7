package manifest

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Limits enforced by Validate. They are wide on purpose: they catch typos (70000 replicas,
// 2 GiB where 2 TiB was meant) rather than encode policy.
const (
	maxReplicas       = 10000
	maxCPU            = MilliCPU(1024 * 1000) // 1024 cores
	minMemory         = Bytes(4 << 20)        // 4Mi: less cannot run a process usefully
	maxMemory         = Bytes(16 << 40)       // 16Ti
	minProbeInterval  = Duration(100 * time.Millisecond)
	maxProbeDuration  = Duration(time.Hour) // interval, initialDelay
	maxThreshold      = 100
	maxRestartBackoff = Duration(time.Hour)
	maxLabelKeyLen    = 63
	maxLabelValueLen  = 253
)

var (
	// dnsLabel is a DNS label (RFC 1123) that starts with a letter, so that it can never be
	// read as a number (port fields accept a name or a number).
	dnsLabel = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// labelKey is a label key: letters, digits, '.', '_', '-' and '/', starting and ending
	// with a letter or digit.
	labelKey = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$`)
)

const (
	dnsLabelRule = "1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
	depotKinds   = "exactly one of exec, image or wasm"
	depotExample = "e.g. exec: ./bin/web, image: registry.local/web:1.2 or wasm: ./hello.wasm"
)

// Validate checks s and returns every problem found, each with the field path
// (spec.ports[0].port) and a message that says what would be valid. It is pure: no I/O,
// no positions (Decode adds file:line:col). It checks s as Default would complete it, so
// it gives the same answer before and after Default and never changes s.
func (s *Service) Validate() ErrorList {
	return s.validate(false)
}

// ValidateResolved checks s as Validate does and also that an image or wasm depot carries
// its Digest (a reference that is itself a digest counts, as Default copies it) and that
// an ingress that names a schema file carries the schema (SchemaJSON). qnet apply
// resolves references to digests and reads files (ResolveFiles) before it signs a
// revision, so that a revision names immutable content that every node uses the same;
// the ledger's state machine calls ValidateResolved on what it accepts, so that a name
// that could change under it (web:1.2, a file path) never stands alone on the ledger.
func (s *Service) ValidateResolved() ErrorList {
	return s.validate(true)
}

func (s *Service) validate(resolved bool) ErrorList {
	if s == nil {
		return ErrorList{{Msg: "no service: want a Service manifest"}}
	}
	c := s.clone()
	c.Default()
	v := validator{resolved: resolved}
	v.service(c)
	return v.errs
}

// validator collects the errors of one Validate.
type validator struct {
	errs ErrorList
	// resolved asks for digests on image and wasm depots (ValidateResolved).
	resolved bool
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) service(s *Service) {
	if s.APIVersion != APIVersion {
		v.add("apiVersion", "must be %s, got %s", APIVersion, quoteOrMissing(s.APIVersion))
	}
	if s.Kind != KindService {
		v.add("kind", "must be %s, got %s", KindService, quoteOrMissing(s.Kind))
	}
	v.metadata(&s.Metadata)
	v.spec(&s.Spec)
}

func (v *validator) metadata(m *Metadata) {
	if m.Name == "" {
		v.add("metadata.name", "is required: a DNS label (%s)", dnsLabelRule)
	} else if !dnsLabel.MatchString(m.Name) {
		v.add("metadata.name", "must be a DNS label (%s), got %q", dnsLabelRule, m.Name)
	}
	if m.Network != "" && !dnsLabel.MatchString(m.Network) {
		v.add("metadata.network", "must be empty (any network) or a DNS label (%s), got %q", dnsLabelRule, m.Network)
	}
	for _, k := range sortedKeys(m.Labels) {
		p := mapKeyPath("metadata.labels", k)
		if len(k) > maxLabelKeyLen || !labelKey.MatchString(k) {
			v.add(p, "label key must be 1-%d characters of letters, digits, '.', '_', '-' and '/', starting and ending with a letter or digit, got %q", maxLabelKeyLen, k)
		}
		switch val := m.Labels[k]; {
		case len(val) > maxLabelValueLen:
			v.add(p, "label value must be at most %d characters, got %d", maxLabelValueLen, len(val))
		case hasControl(val):
			v.add(p, "label value must not contain control characters (newlines, tabs, NUL...)")
		}
	}
}

func (v *validator) spec(sp *Spec) {
	v.depot(&sp.Depot)
	if sp.Replicas < 0 || sp.Replicas > maxReplicas {
		v.add("spec.replicas", "must be between 0 and %d, got %d", maxReplicas, sp.Replicas)
	}
	if c := sp.Resources.CPU; c <= 0 || c > maxCPU {
		v.add("spec.resources.cpu", "must be more than 0 and at most 1024 cores (like 250m, 0.5 or 2), got %s", c)
	}
	if m := sp.Resources.Memory; m < minMemory || m > maxMemory {
		v.add("spec.resources.memory", "must be between %s and %s, got %s", minMemory, maxMemory, m)
	}
	v.ports(sp.Ports)
	for _, k := range sortedKeys(sp.Env) {
		p := mapKeyPath("spec.env", k)
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.add(p, "environment variable name must be non-empty and contain no '=' or NUL, got %q", k)
		}
		if strings.IndexByte(sp.Env[k], 0) >= 0 {
			v.add(p, "environment variable value must not contain NUL bytes")
		}
	}
	v.probe("spec.health.liveness", sp.Health.Liveness, sp.Ports)
	v.probe("spec.health.readiness", sp.Health.Readiness, sp.Ports)
	v.restart(&sp.Restart)
	v.placement(&sp.Placement)
	v.flows(sp.Flows)
	v.ingress(sp.Ingress, sp.Ports)
	v.rollout(sp.Rollout, sp.Replicas)
	v.inputs(sp)
}

func (v *validator) depot(d *Depot) {
	var kinds []string
	if d.Exec != nil {
		kinds = append(kinds, DepotExec)
	}
	if d.Image != nil {
		kinds = append(kinds, DepotImage)
	}
	if d.Wasm != nil {
		kinds = append(kinds, DepotWasm)
	}
	switch len(kinds) {
	case 0:
		v.add("spec.depot", "must set %s, got none (%s)", depotKinds, depotExample)
	case 1:
	default:
		v.add("spec.depot", "must set %s, got %s", depotKinds, strings.Join(kinds, " and "))
	}
	if e := d.Exec; e != nil {
		if e.Command == "" {
			v.add("spec.depot.exec.command", "is required: the executable to run, a path or a name looked up in PATH")
		} else if strings.IndexByte(e.Command, 0) >= 0 {
			v.add("spec.depot.exec.command", "must not contain NUL bytes")
		}
		for i, a := range e.Args {
			if strings.IndexByte(a, 0) >= 0 {
				v.add(indexPath("spec.depot.exec.args", i), "must not contain NUL bytes")
			}
		}
		if strings.IndexByte(e.WorkingDir, 0) >= 0 {
			v.add("spec.depot.exec.workingDir", "must not contain NUL bytes")
		}
	}
	if im := d.Image; im != nil {
		const p = "spec.depot.image"
		v.reference(p+".ref", im.Ref, "an image name known to the node's depot store, a registry reference like registry.local/web:1.2, or sha256:<64 hex digits>")
		v.digest(p, im.Ref, "ref", im.Digest, "image references")
		v.words(p+".command", im.Command, "a command word")
		v.words(p+".args", im.Args, "an argument")
		if im.WorkingDir != "" && (!strings.HasPrefix(im.WorkingDir, "/") || strings.IndexByte(im.WorkingDir, 0) >= 0) {
			v.add(p+".workingDir", "must be an absolute path (starting with '/', without NUL bytes), like /app, got %q", im.WorkingDir)
		}
		if im.User != "" && !validUser(im.User) {
			v.add(p+".user", "must be uid[:gid], each a number (0-%d) or a name from the image (%s), like 1000:1000 or nobody, got %q", maxID, userNameRule, im.User)
		}
	}
	if w := d.Wasm; w != nil {
		const p = "spec.depot.wasm"
		v.reference(p+".module", w.Module, "a module file path for qnet apply to import, like ./hello.wasm, a name known to the node's depot store, like hello:1, or sha256:<64 hex digits>")
		v.digest(p, w.Module, "module", w.Digest, "wasm module references")
		v.words(p+".args", w.Args, "an argument")
	}
}

// Bounds and rules of image and wasm depots.
const (
	maxReferenceLen = 512
	// maxID is the largest uid or gid: IDs are 32 bits and (uid_t)-1 means "no change".
	maxID        = 1<<32 - 2
	maxUserName  = 32
	userNameRule = "a-z, 0-9, '_' and '-', starting with a letter or '_', at most 32 characters"
	digestRule   = "sha256: followed by 64 lowercase hex digits"
)

// userName is a user or group name as useradd takes it.
var userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

// reference checks the reference of an image or a wasm module: what a user wrote to name
// the content, before apply resolves it to a digest.
func (v *validator) reference(path, ref, want string) {
	switch {
	case ref == "":
		v.add(path, "is required: %s", want)
	case len(ref) > maxReferenceLen:
		v.add(path, "must be at most %d characters, got %d", maxReferenceLen, len(ref))
	case strings.ContainsFunc(ref, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.add(path, "must not contain whitespace or control characters, got %q", ref)
	case strings.HasPrefix(ref, digestPrefix) && !isDigest(ref):
		v.add(path, "starts with %s, so it must be a digest: %s, got %q", digestPrefix, digestRule, ref)
	}
}

// digest checks the digest of an image or wasm depot (path is the depot) against its
// rule and against the reference (refField names it), when that is a digest too. For
// ValidateResolved the digest must be there; what says, in that message, which kind of
// references apply resolves.
func (v *validator) digest(path, ref, refField, digest, what string) {
	switch {
	case digest == "":
		if v.resolved {
			v.add(path+".digest", "must be set: apply resolves %s to digests so every revision is immutable; got none", what)
		}
	case !isDigest(digest):
		v.add(path+".digest", "must be %s, got %q", digestRule, digest)
	case isDigest(ref) && ref != digest:
		v.add(path+".digest", "must be the digest that %s names (%s) or left out, got %s", refField, ref, digest)
	}
}

// words checks a command or argument list: every element is a non-empty string.
func (v *validator) words(path string, list []string, what string) {
	for i, a := range list {
		switch {
		case a == "":
			v.add(indexPath(path, i), "must be %s: a non-empty string", what)
		case strings.IndexByte(a, 0) >= 0:
			v.add(indexPath(path, i), "must not contain NUL bytes")
		}
	}
}

// digestPrefix starts every digest: sha256 is the one algorithm depots use.
const digestPrefix = "sha256:"

// isDigest reports whether s is sha256: followed by 64 lowercase hex digits.
func isDigest(s string) bool {
	hex, ok := strings.CutPrefix(s, digestPrefix)
	if !ok || len(hex) != 64 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validUser reports whether s is uid[:gid], each a number up to maxID or a user name.
func validUser(s string) bool {
	user, group, hasGroup := strings.Cut(s, ":")
	return validID(user) && (!hasGroup || validID(group))
}

func validID(s string) bool {
	if isDigits(s) {
		n, err := strconv.ParseUint(s, 10, 64)
		return err == nil && n <= maxID
	}
	return len(s) <= maxUserName && userName.MatchString(s)
}

func (v *validator) placement(pl *Placement) {
	switch pl.Strategy {
	case StrategySpread, StrategyBinpack:
	default:
		v.add("spec.placement.strategy", "must be spread or binpack, got %q", pl.Strategy)
	}
	switch {
	case pl.SpreadBy == SpreadByNode:
	case len(pl.SpreadBy) > maxLabelKeyLen || !labelKey.MatchString(pl.SpreadBy):
		v.add("spec.placement.spreadBy", "must be node or a node label key such as zone (%s), got %q", labelKeyRule, pl.SpreadBy)
	case pl.Strategy == StrategyBinpack:
		v.add("spec.placement.spreadBy", "applies to strategy spread only; leave it out with binpack, got %q", pl.SpreadBy)
	}
	if len(pl.Constraints) > maxConstraints {
		v.add("spec.placement.constraints", "must hold at most %d constraints, got %d", maxConstraints, len(pl.Constraints))
	}
	for i := range pl.Constraints {
		if err := pl.Constraints[i].check(); err != nil {
			v.add(indexPath("spec.placement.constraints", i), "%s", err)
		}
	}
}

func (v *validator) ports(ports []Port) {
	names := map[string]int{}
	numbers := map[string]int{}
	hostPorts := map[string]int{}
	for i, pt := range ports {
		p := indexPath("spec.ports", i)
		switch {
		case pt.Name == "":
			v.add(p+".name", "is required: a port name (%s)", dnsLabelRule)
		case !dnsLabel.MatchString(pt.Name):
			v.add(p+".name", "must be a port name (%s), got %q", dnsLabelRule, pt.Name)
		default:
			if j, dup := names[pt.Name]; dup {
				v.add(p+".name", "must be unique, but %q is also the name of %s", pt.Name, indexPath("spec.ports", j))
			} else {
				names[pt.Name] = i
			}
		}
		protoOK := pt.Protocol == "tcp" || pt.Protocol == "udp"
		if !protoOK {
			v.add(p+".protocol", "must be tcp or udp, got %q", pt.Protocol)
		}
		if pt.Port < 1 || pt.Port > 65535 {
			v.add(p+".port", "must be between 1 and 65535, got %d", pt.Port)
		} else if protoOK {
			key := strconv.Itoa(pt.Port) + "/" + pt.Protocol
			if j, dup := numbers[key]; dup {
				v.add(p+".port", "must be unique per protocol, but %s is also used by %s", key, indexPath("spec.ports", j))
			} else {
				numbers[key] = i
			}
		}
		if pt.HostPort < 0 || pt.HostPort > 65535 {
			v.add(p+".hostPort", "must be between 1 and 65535, or 0 (or left out) to let the agent pick a free port, got %d", pt.HostPort)
		} else if pt.HostPort > 0 && protoOK {
			key := strconv.Itoa(pt.HostPort) + "/" + pt.Protocol
			if j, dup := hostPorts[key]; dup {
				v.add(p+".hostPort", "must be unique per protocol, but %s is also used by %s", key, indexPath("spec.ports", j))
			} else {
				hostPorts[key] = i
			}
		}
	}
}

func (v *validator) probe(path string, p *Probe, ports []Port) {
	if p == nil {
		return
	}
	var kinds []string
	if p.HTTP != nil {
		kinds = append(kinds, "http")
	}
	if p.TCP != nil {
		kinds = append(kinds, "tcp")
	}
	if p.Exec != nil {
		kinds = append(kinds, "exec")
	}
	switch len(kinds) {
	case 0:
		v.add(path, "must set exactly one of http, tcp or exec, got none (e.g. http: /healthz)")
	case 1:
	default:
		v.add(path, "must set exactly one of http, tcp or exec, got %s", strings.Join(kinds, " and "))
	}
	if h := p.HTTP; h != nil {
		if !strings.HasPrefix(h.Path, "/") || strings.ContainsFunc(h.Path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			v.add(path+".http.path", "must be a URL path starting with '/' and without spaces or control characters, like /healthz, got %q", h.Path)
		}
		v.checkPort(path+".http.port", h.Port, ports)
	}
	if t := p.TCP; t != nil {
		v.checkPort(path+".tcp.port", t.Port, ports)
	}
	if e := p.Exec; e != nil {
		if len(e.Command) == 0 || e.Command[0] == "" {
			v.add(path+".exec.command", "must be a non-empty list: the command to run and its arguments, like [pg_isready, -q]")
		}
		for i, a := range e.Command {
			if strings.IndexByte(a, 0) >= 0 {
				v.add(indexPath(path+".exec.command", i), "must not contain NUL bytes")
			}
		}
	}
	if p.InitialDelay < 0 || p.InitialDelay > maxProbeDuration {
		v.add(path+".initialDelay", "must be between 0s and 1h, got %s", p.InitialDelay)
	}
	intervalOK := p.Interval >= minProbeInterval && p.Interval <= maxProbeDuration
	if !intervalOK {
		v.add(path+".interval", "must be between 100ms and 1h, got %s", p.Interval)
	}
	if p.Timeout <= 0 || (intervalOK && p.Timeout > p.Interval) {
		v.add(path+".timeout", "must be more than 0 and at most the interval (%s), got %s", p.Interval, p.Timeout)
	}
	if p.FailureThreshold < 1 || p.FailureThreshold > maxThreshold {
		v.add(path+".failureThreshold", "must be between 1 and %d, got %d", maxThreshold, p.FailureThreshold)
	}
	if p.SuccessThreshold < 1 || p.SuccessThreshold > maxThreshold {
		v.add(path+".successThreshold", "must be between 1 and %d, got %d", maxThreshold, p.SuccessThreshold)
	}
}

// checkPort checks the port of an HTTP or TCP check: a number, or the name of a port of
// the service.
func (v *validator) checkPort(path, port string, ports []Port) {
	if port == "" {
		// Default sets the first port, so this only happens when spec.ports is empty.
		v.add(path, "is required because spec.ports is empty: a port number between 1 and 65535")
		return
	}
	if isDigits(port) {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.add(path, "must be between 1 and 65535, got %s", port)
		}
		return
	}
	for _, pt := range ports {
		if pt.Name == port {
			return
		}
	}
	if len(ports) == 0 {
		v.add(path, "must be a port number between 1 and 65535 because spec.ports is empty, got %q", port)
		return
	}
	var names []string
	for _, pt := range ports {
		if pt.Name != "" && !slices.Contains(names, pt.Name) {
			names = append(names, pt.Name)
		}
	}
	v.add(path, "must be the name of a port in spec.ports (%s) or a number between 1 and 65535, got %q", strings.Join(names, ", "), port)
}

func (v *validator) restart(r *Restart) {
	switch r.Policy {
	case RestartAlways, RestartOnFailure, RestartNever:
	default:
		v.add("spec.restart.policy", "must be always, on-failure or never, got %q", r.Policy)
	}
	backoffOK := r.Backoff > 0 && r.Backoff <= maxRestartBackoff
	if !backoffOK {
		v.add("spec.restart.backoff", "must be more than 0 and at most 1h, got %s", r.Backoff)
	}
	if r.MaxBackoff > maxRestartBackoff || (backoffOK && r.MaxBackoff < r.Backoff) || r.MaxBackoff <= 0 {
		v.add("spec.restart.maxBackoff", "must be at least backoff (%s) and at most 1h, got %s", r.Backoff, r.MaxBackoff)
	}
}

// quoteOrMissing quotes s, or says it is missing.
func quoteOrMissing(s string) string {
	if s == "" {
		return "nothing"
	}
	return strconv.Quote(s)
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Field paths. They are built the same way by the decoder (which records where each path
// is in the document) and by the validator (which names the paths of its errors).

// fieldPath is parent.name ("spec.replicas"); the root is "".
func fieldPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// indexPath is parent[i] ("spec.ports[0]").
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// plainKey matches map keys that read well in a dotted path.
var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// mapKeyPath is the path of a key of a free-form map: spec.env.LOG_LEVEL, or
// spec.env["A=B"] when the key would not read well after a dot.
func mapKeyPath(parent, key string) string {
	if plainKey.MatchString(key) {
		return parent + "." + key
	}
	return parent + "[" + strconv.Quote(key) + "]"
}

func (v *validator) flows(f *Flows) {
	if f == nil {
		return
	}
	const p = "spec.flows.allow"
	if len(f.Allow) > MaxFlowsAllow {
		v.add(p, "must name at most %d services, got %d", MaxFlowsAllow, len(f.Allow))
	}
	seen := map[string]int{}
	for i, name := range f.Allow {
		switch j, dup := seen[name]; {
		case !dnsLabel.MatchString(name):
			v.add(indexPath(p, i), "must be a service name (%s), got %q", dnsLabelRule, name)
		case dup:
			v.add(indexPath(p, i), "must name each service once, but %q is also %s", name, indexPath(p, j))
		default:
			seen[name] = i
		}
	}
}

// Bounds of an ingress.
const (
	maxBurst = MaxRateCount
	// maxBodyBytes is the largest maxBodyBytes; maxCheckedBody the largest with a schema,
	// since the ingress holds a whole body in memory to check it.
	maxBodyBytes   = Bytes(16 << 30)
	maxCheckedBody = Bytes(64 << 20)
	maxSchemaPath  = 4096
)

func (v *validator) ingress(in *Ingress, ports []Port) {
	if in == nil {
		return
	}
	const p = "spec.ingress"
	switch {
	case in.RateLimit.IsZero():
		if in.Burst != 0 {
			v.add(p+".burst", "applies only with a rateLimit; set rateLimit, like 200/s, or leave burst out, got %d", in.Burst)
		}
	case !in.RateLimit.valid():
		v.add(p+".rateLimit", "must be a rate %s, got %d per %s", rateRule, in.RateLimit.Count, in.RateLimit.Per)
	case in.Burst < 1 || in.Burst > maxBurst:
		v.add(p+".burst", "must be between 1 and %d (leave it out for the rate per second, here %d), got %d", maxBurst, in.RateLimit.DefaultBurst(), in.Burst)
	}
	v.ingressPort(p+".port", in.Port, ports)
	switch b := in.MaxBodyBytes; {
	case b < 1 || b > maxBodyBytes:
		v.add(p+".maxBodyBytes", "must be between 1 and %s, like 1Mi or 512Ki, got %s", maxBodyBytes, b)
	case b > maxCheckedBody && (in.Schema != "" || len(in.SchemaJSON) > 0):
		v.add(p+".maxBodyBytes", "must be at most %s with a schema, since the ingress reads a whole body to check it, got %s", maxCheckedBody, b)
	}
	switch sc := in.Schema; {
	case sc == "":
	case len(sc) > maxSchemaPath:
		v.add(p+".schema", "must be a file path of at most %d characters, got %d", maxSchemaPath, len(sc))
	case hasControl(sc):
		v.add(p+".schema", "must be a file path without control characters (newlines, tabs, NUL...), got %q", sc)
	case strings.Contains(sc, "://"):
		v.add(p+".schema", "must be a file path relative to the manifest, like ./order.schema.json; URLs are not fetched, got %q", sc)
	}
	switch js := in.SchemaJSON; {
	case len(js) == 0:
		if v.resolved && in.Schema != "" {
			v.add(p+".schemaJSON", "must be set: apply reads the schema file (%s) into it so every node checks the same schema; got none", in.Schema)
		}
	case len(js) > MaxSchemaSize:
		v.add(p+".schemaJSON", "must be at most %d bytes (256 KiB), got %d", MaxSchemaSize, len(js))
	default:
		doc, err := parseJSON(js)
		if err != nil {
			v.add(p+".schemaJSON", "must be a JSON Schema document, a JSON object or true or false: at %s", strings.TrimPrefix(err.Error(), ":"))
		} else if what := schemaShape(doc); what != "" {
			v.add(p+".schemaJSON", "must be a JSON Schema document: a JSON object or true or false, got %s", what)
		}
	}
}

// ingressPort checks the port of an ingress: the name of an exposed tcp port.
func (v *validator) ingressPort(path, name string, ports []Port) {
	var exposed []string
	for _, pt := range ports {
		if pt.Expose && pt.Protocol == "tcp" && pt.Name != "" && !slices.Contains(exposed, pt.Name) {
			exposed = append(exposed, pt.Name)
		}
	}
	if name == "" {
		// Default picks the first exposed tcp port, so there is none.
		v.add(path, "needs an exposed tcp port, but spec.ports has none: set expose: true on the port ingress serves, like {name: http, port: 8080, expose: true}")
		return
	}
	for i, pt := range ports {
		if pt.Name != name {
			continue
		}
		switch {
		case pt.Protocol != "tcp":
			v.add(path, "names port %q, which is %s; ingress serves HTTP and TCP only, so name an exposed tcp port", name, pt.Protocol)
		case !pt.Expose:
			v.add(path, "names port %q, which is not exposed: set expose: true on %s%s", name, indexPath("spec.ports", i), orExposed(exposed))
		}
		return
	}
	if len(exposed) == 0 {
		v.add(path, "must be the name of an exposed tcp port in spec.ports, but it has none (set expose: true on one), got %q", name)
		return
	}
	v.add(path, "must be the name of an exposed tcp port in spec.ports (%s), got %q", strings.Join(exposed, ", "), name)
}

// orExposed suggests the exposed ports, when there are any.
func orExposed(exposed []string) string {
	if len(exposed) == 0 {
		return ""
	}
	return ", or name an exposed port (" + strings.Join(exposed, ", ") + ")"
}
