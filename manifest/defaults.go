package manifest

import (
	"slices"
	"strconv"
	"time"
)

// Defaults filled by Default (and, for replicas, by the decoders when the key is absent).
const (
	DefaultReplicas                  = 1
	DefaultCPU              MilliCPU = 100
	DefaultMemory           Bytes    = 64 << 20
	DefaultProtocol                  = "tcp"
	DefaultProbeInterval             = Duration(10 * time.Second)
	DefaultProbeTimeout              = Duration(time.Second)
	DefaultFailureThreshold          = 3
	DefaultSuccessThreshold          = 1
	DefaultRestartPolicy             = RestartAlways
	DefaultBackoff                   = Duration(100 * time.Millisecond)
	DefaultMaxBackoff                = Duration(30 * time.Second)
	DefaultStrategy                  = StrategySpread
	DefaultSpreadBy                  = SpreadByNode
	DefaultMaxBodyBytes     Bytes    = 1 << 20 // like nginx's client_max_body_size
)

// Default fills every unset (zero) field that has a default, in place. It is idempotent.
//
// Replicas is not touched: 0 replicas is a valid request, so the decoders put
// DefaultReplicas when the document has no replicas key, and Go callers set it themselves.
//
// Some defaults follow other fields so that a default never makes a manifest invalid: a
// probe's timeout defaults to the smaller of 1s and its interval, maxBackoff to the larger
// of 30s and backoff, and the port of an HTTP or TCP check to the first port of spec.ports.
// An image or wasm depot whose reference is itself a valid digest gets that digest as its
// Digest: the reference already names immutable content, so there is nothing to resolve.
//
// An ingress gets the first exposed tcp port as its port, DefaultMaxBodyBytes and, when
// it has a rate limit, a burst of one second's worth of requests (Rate.DefaultBurst). A
// flows section with no allow list allows none (Allow becomes empty, not nil).
func (s *Service) Default() {
	if s == nil {
		return
	}
	sp := &s.Spec
	if im := sp.Depot.Image; im != nil && im.Digest == "" && isDigest(im.Ref) {
		im.Digest = im.Ref
	}
	if w := sp.Depot.Wasm; w != nil && w.Digest == "" && isDigest(w.Module) {
		w.Digest = w.Module
	}
	if sp.Resources.CPU == 0 {
		sp.Resources.CPU = DefaultCPU
	}
	if sp.Resources.Memory == 0 {
		sp.Resources.Memory = DefaultMemory
	}
	for i := range sp.Ports {
		if sp.Ports[i].Protocol == "" {
			sp.Ports[i].Protocol = DefaultProtocol
		}
	}
	firstPort := ""
	if len(sp.Ports) > 0 {
		firstPort = sp.Ports[0].Name
		if firstPort == "" {
			firstPort = strconv.Itoa(sp.Ports[0].Port)
		}
	}
	for _, p := range []*Probe{sp.Health.Liveness, sp.Health.Readiness} {
		if p != nil {
			p.defaults(firstPort)
		}
	}
	r := &sp.Restart
	if r.Policy == "" {
		r.Policy = DefaultRestartPolicy
	}
	if r.Backoff == 0 {
		r.Backoff = DefaultBackoff
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = max(DefaultMaxBackoff, r.Backoff)
	}
	if sp.Placement.Strategy == "" {
		sp.Placement.Strategy = DefaultStrategy
	}
	if sp.Placement.SpreadBy == "" {
		sp.Placement.SpreadBy = DefaultSpreadBy
	}
	if sp.Flows != nil && sp.Flows.Allow == nil {
		sp.Flows.Allow = []string{}
	}
	if sp.Rollout != nil {
		sp.Rollout.defaults()
	}
	if in := sp.Ingress; in != nil {
		if in.Port == "" {
			in.Port = firstExposed(sp.Ports)
		}
		if in.Burst == 0 && in.RateLimit.valid() {
			in.Burst = in.RateLimit.DefaultBurst()
		}
		if in.MaxBodyBytes == 0 {
			in.MaxBodyBytes = DefaultMaxBodyBytes
		}
	}
}

// firstExposed is the name of the first exposed tcp port, the one ingress serves by
// default; "" when there is none.
func firstExposed(ports []Port) string {
	for _, p := range ports {
		if p.Expose && p.Name != "" && (p.Protocol == "tcp" || p.Protocol == "") {
			return p.Name
		}
	}
	return ""
}

// defaults fills the unset fields of one probe; firstPort is the check port to use when
// none is given ("" when the service has no ports).
func (p *Probe) defaults(firstPort string) {
	if p.HTTP != nil && p.HTTP.Port == "" {
		p.HTTP.Port = firstPort
	}
	if p.TCP != nil && p.TCP.Port == "" {
		p.TCP.Port = firstPort
	}
	if p.Interval == 0 {
		p.Interval = DefaultProbeInterval
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultProbeTimeout
		if p.Interval > 0 {
			p.Timeout = min(p.Timeout, p.Interval)
		}
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultFailureThreshold
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = DefaultSuccessThreshold
	}
}

// clone returns a deep copy of s, so that Validate can default a copy without touching s.
func (s *Service) clone() *Service {
	c := *s
	c.Metadata.Labels = cloneMap(s.Metadata.Labels)
	if e := s.Spec.Depot.Exec; e != nil {
		ce := *e
		ce.Args = append([]string(nil), e.Args...)
		c.Spec.Depot.Exec = &ce
	}
	if im := s.Spec.Depot.Image; im != nil {
		ci := *im
		ci.Command = slices.Clone(im.Command)
		ci.Args = slices.Clone(im.Args)
		c.Spec.Depot.Image = &ci
	}
	if w := s.Spec.Depot.Wasm; w != nil {
		cw := *w
		cw.Args = slices.Clone(w.Args)
		c.Spec.Depot.Wasm = &cw
	}
	c.Spec.Ports = append([]Port(nil), s.Spec.Ports...)
	c.Spec.Env = cloneMap(s.Spec.Env)
	c.Spec.Health.Liveness = s.Spec.Health.Liveness.clone()
	c.Spec.Health.Readiness = s.Spec.Health.Readiness.clone()
	if s.Spec.Placement.Constraints != nil {
		c.Spec.Placement.Constraints = make([]Constraint, len(s.Spec.Placement.Constraints))
		for i, con := range s.Spec.Placement.Constraints {
			con.Values = append([]string(nil), con.Values...)
			c.Spec.Placement.Constraints[i] = con
		}
	}
	if f := s.Spec.Flows; f != nil {
		c.Spec.Flows = &Flows{Allow: slices.Clone(f.Allow)}
	}
	if in := s.Spec.Ingress; in != nil {
		ci := *in
		ci.SchemaJSON = slices.Clone(in.SchemaJSON)
		c.Spec.Ingress = &ci
	}
	c.Spec.Rollout = s.Spec.Rollout.clone()
	return &c
}

// clone returns a deep copy of p (nil for nil).
func (p *Probe) clone() *Probe {
	if p == nil {
		return nil
	}
	c := *p
	if p.HTTP != nil {
		h := *p.HTTP
		c.HTTP = &h
	}
	if p.TCP != nil {
		t := *p.TCP
		c.TCP = &t
	}
	if p.Exec != nil {
		c.Exec = &ExecCheck{Command: append([]string(nil), p.Exec.Command...)}
	}
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
