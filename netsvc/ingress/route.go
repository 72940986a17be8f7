package ingress

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Route is one exposed port of a service as the ingress offers it: over HTTP by the
// service's name, or over TCP on a port of its own.
type Route struct {
	// Service is the service's name; Port the name of its port in spec.ports.
	Service string
	Port    string
	// TCP makes the route a TCP route: connections to ListenPort on every node are
	// spliced to the service's port. ListenPort 0 picks a free port (see TCPAddr).
	TCP        bool
	ListenPort int
	// RateLimit is each client's allowance on this route: requests for HTTP,
	// connections for TCP. The zero Rate means no limit.
	RateLimit Rate
	// Schema is an optional JSON Schema document; when set, the bodies of POST, PUT and
	// PATCH requests must be JSON that it accepts. HTTP only.
	Schema []byte
	// MaxBodyBytes overrides Config.MaxBodyBytes for this route when positive. HTTP only.
	MaxBodyBytes int64
}

// dnsLabel is the form of service and port names, as the manifest has them: it lets a
// service name be the first label of a host name.
var dnsLabel = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

const dnsLabelRule = "1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"

// Validate reports the first problem of r, naming the field and what would be valid.
// It compiles the schema, so a manifest can be checked before it reaches an ingress.
func (r Route) Validate() error {
	_, err := r.compileSchema()
	return err
}

// compileSchema validates r and returns its compiled schema, nil when it has none.
func (r Route) compileSchema() (*jsonschema.Schema, error) {
	if !dnsLabel.MatchString(r.Service) {
		return nil, fmt.Errorf("route service %q is not valid: want a DNS label (%s)", r.Service, dnsLabelRule)
	}
	if !dnsLabel.MatchString(r.Port) {
		return nil, fmt.Errorf("route %s: port name %q is not valid: want a DNS label (%s)", r.Service, r.Port, dnsLabelRule)
	}
	if r.ListenPort < 0 || r.ListenPort > 65535 {
		return nil, fmt.Errorf("route %s/%s: listen port %d is out of range: want 0 to 65535", r.Service, r.Port, r.ListenPort)
	}
	if !r.TCP && r.ListenPort != 0 {
		return nil, fmt.Errorf("route %s/%s: listen port %d is only valid for a TCP route; HTTP routes share the ingress's HTTP address", r.Service, r.Port, r.ListenPort)
	}
	if err := r.RateLimit.Validate(); err != nil {
		return nil, fmt.Errorf("route %s/%s: %w", r.Service, r.Port, err)
	}
	if r.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("route %s/%s: max body bytes %d is negative: want 0 (the ingress default) or more", r.Service, r.Port, r.MaxBodyBytes)
	}
	if r.TCP && (len(r.Schema) > 0 || r.MaxBodyBytes > 0) {
		return nil, fmt.Errorf("route %s/%s: a TCP route carries no HTTP bodies, so it takes no schema or max body bytes", r.Service, r.Port)
	}
	if len(r.Schema) == 0 {
		return nil, nil
	}
	sch, err := compileSchema(r.Schema)
	if err != nil {
		return nil, fmt.Errorf("route %s/%s: schema: %w", r.Service, r.Port, err)
	}
	return sch, nil
}

// schemaURL names the route's schema document inside its compiler; nothing else is
// ever loaded.
const schemaURL = "qnet:///ingress/schema.json"

// errNoLoad refuses every $ref outside the schema document: a schema comes from a
// manifest, and must not make a node read its files or reach the network.
var errNoLoad = errors.New("references outside the schema document are not allowed; inline them or use $defs")

type noLoader struct{}

func (noLoader) Load(string) (any, error) { return nil, errNoLoad }

func compileSchema(doc []byte) (*jsonschema.Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("not a JSON document: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, v); err != nil {
		return nil, err
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, err
	}
	return sch, nil
}

// key identifies a route across changes of the route set, so that its counters, its
// connection pool and its listener survive an update that keeps it.
func (r Route) key() string {
	if r.TCP {
		return "tcp/" + r.Service + "/" + r.Port
	}
	return "http/" + r.Service
}

// RouteSource is where an ingress learns which routes to serve; the node builds routes
// from the exposed ports of its catalog and their manifests' ingress settings.
type RouteSource interface {
	// Routes returns the current routes.
	Routes() []Route
	// Changed returns a channel closed at the next change of the routes.
	Changed() <-chan struct{}
}

// RouteTable is a RouteSource whose routes are set by its owner. It is safe for
// concurrent use.
type RouteTable struct {
	mu      sync.Mutex
	routes  []Route
	changed chan struct{}
}

// NewRouteTable returns a table holding routes.
func NewRouteTable(routes ...Route) *RouteTable {
	return &RouteTable{routes: slices.Clone(routes), changed: make(chan struct{})}
}

// Set replaces the routes and wakes the watchers.
func (t *RouteTable) Set(routes []Route) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.routes = slices.Clone(routes)
	close(t.changed)
	t.changed = make(chan struct{})
}

// Routes returns a copy of the current routes.
func (t *RouteTable) Routes() []Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.routes)
}

// Changed returns a channel closed at the next Set.
func (t *RouteTable) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// String names the route for logs and errors.
func (r Route) String() string {
	if r.TCP {
		return "tcp " + r.Service + "/" + r.Port + " on port " + strconv.Itoa(r.ListenPort)
	}
	return "http " + r.Service + "/" + r.Port
}
