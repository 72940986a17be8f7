package manifest

import (
	"encoding/json"
	"time"
)

// APIVersion is the only manifest API version this release understands.
const APIVersion = "qnet/v1"

// KindService is the kind of a Service manifest.
const KindService = "Service"

// Service is a Service manifest: what should run, how many, and how to tell it is healthy.
// Its JSON form (after Default) is what goes on the ledger.
type Service struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata names a service.
type Metadata struct {
	// Name is a DNS label: 1 to 63 characters of a-z, 0-9 and '-', starting with a letter.
	Name string `json:"name"`
	// Network optionally names the network the manifest is meant for; empty means any.
	Network string `json:"network,omitempty"`
	// Labels are free-form key/value pairs.
	Labels map[string]string `json:"labels,omitempty"`
}

// Spec is the desired state of a service.
type Spec struct {
	Depot Depot `json:"depot"`
	// Replicas is how many replicas should run, 0 to 10000; 0 stops the service. Default
	// does not touch it (0 is a valid count): the decoders put DefaultReplicas (1) when
	// the document has no replicas key.
	Replicas  int       `json:"replicas"`
	Resources Resources `json:"resources"`
	Ports     []Port    `json:"ports,omitempty"`
	// Env is given to every replica, whatever its depot kind.
	Env     map[string]string `json:"env,omitempty"`
	Health  Health            `json:"health"`
	Restart Restart           `json:"restart"`
	// Placement says which nodes replicas may run on and how they spread over them.
	Placement Placement `json:"placement"`
	// Flows, when set, limits the services the replicas may open connections to. Nil
	// (flows left out) lets them reach every service, as before flows existed.
	Flows *Flows `json:"flows,omitempty"`
	// Ingress, when set, is the rules the ingress applies to requests from outside the
	// network to one exposed port: a rate limit, a body size limit and a JSON Schema the
	// bodies must match. Without it, exposed ports are reached without these checks.
	Ingress *Ingress `json:"ingress,omitempty"`
	// Rollout says how a new revision replaces the running one; nil rolls out with
	// DefaultRollout (see RolloutPolicy).
	Rollout *Rollout `json:"rollout,omitempty"`
	// Secrets are the secrets the replicas get, as environment variables or files.
	Secrets []SecretRef `json:"secrets,omitempty"`
	// Configs are the configuration files the replicas get.
	Configs []ConfigRef `json:"configs,omitempty"`
}

// Depot says what runs. Exactly one kind is set.
type Depot struct {
	Exec  *ExecDepot  `json:"exec,omitempty"`
	Image *ImageDepot `json:"image,omitempty"`
	Wasm  *WasmDepot  `json:"wasm,omitempty"`
}

// Depot kinds, as Depot.Kind returns them and as they are written in a manifest.
const (
	DepotExec  = "exec"
	DepotImage = "image"
	DepotWasm  = "wasm"
)

// Kind returns "exec", "image" or "wasm": the kind of depot that is set. It returns ""
// when none is; a Depot that has not passed Validate may have several, and Kind then
// returns the first of exec, image and wasm.
func (d Depot) Kind() string {
	switch {
	case d.Exec != nil:
		return DepotExec
	case d.Image != nil:
		return DepotImage
	case d.Wasm != nil:
		return DepotWasm
	}
	return ""
}

// ExecDepot runs a plain executable found on the node.
// In YAML it may also be written as just the command: `exec: ./bin/web`.
type ExecDepot struct {
	Command    string   `json:"command"`
	Args       []string `json:"args,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
}

// ImageDepot runs an OCI container image.
// In YAML it may also be written as just the reference: `image: web:1.2`.
type ImageDepot struct {
	// Ref names the image: a name known to the node's depot store, a registry reference
	// (registry.local/web:1.2), or the image manifest's digest (sha256:<64 hex>). At most
	// 512 characters, without whitespace or control characters.
	Ref string `json:"ref"`
	// Digest is the digest of the image manifest, sha256:<64 lowercase hex>. qnet apply
	// resolves Ref and fills it in, so that a revision on the ledger names immutable
	// content (see ValidateResolved); it may also be written by hand. Default copies Ref
	// here when Ref is itself a digest.
	Digest string `json:"digest,omitempty"`
	// Command, when set, replaces the image's entrypoint.
	Command []string `json:"command,omitempty"`
	// Args, when set, replaces the image's cmd.
	Args []string `json:"args,omitempty"`
	// WorkingDir, when set, is the absolute directory the container starts in.
	WorkingDir string `json:"workingDir,omitempty"`
	// User, when set, is who the container runs as: uid[:gid], each a number or a name
	// the image defines (1000:1000, nobody, www-data:www-data).
	User string `json:"user,omitempty"`
	// ReadOnlyRoot makes the container's root filesystem read-only.
	ReadOnlyRoot bool `json:"readOnlyRoot,omitempty"`
}

// WasmDepot runs a WebAssembly (WASI) module.
// In YAML it may also be written as just the module reference: `wasm: ./hello.wasm`.
type WasmDepot struct {
	// Module names the module: a file path for qnet apply to import, a name known to the
	// node's depot store (hello:1), or the module's digest (sha256:<64 hex>). At most 512
	// characters, without whitespace or control characters.
	Module string `json:"module"`
	// Digest is the digest of the module, sha256:<64 lowercase hex>, filled in by qnet
	// apply (see ValidateResolved) or written by hand. Default copies Module here when
	// Module is itself a digest.
	Digest string `json:"digest,omitempty"`
	// Args are the module's arguments (argv after the program name).
	Args []string `json:"args,omitempty"`
}

// Resources is what one replica reserves on its node and the limit it runs under.
type Resources struct {
	// CPU in millicores ("250m", "0.5", "2" in YAML).
	CPU MilliCPU `json:"cpu"`
	// Memory in bytes ("64Mi", "1Gi", "500M" in YAML).
	Memory Bytes `json:"memory"`
}

// MilliCPU is a CPU quantity in thousandths of a core.
type MilliCPU int64

// Bytes is a memory quantity in bytes.
type Bytes int64

// Port is a port a replica listens on.
type Port struct {
	Name string `json:"name"`
	// Port is the port the service answers on (the stable service port).
	Port int `json:"port"`
	// HostPort, when set, pins the port each replica binds on its node; otherwise the agent
	// assigns a free one and passes it in QNET_PORT_<NAME> and, for the first port, PORT.
	HostPort int    `json:"hostPort,omitempty"`
	Protocol string `json:"protocol,omitempty"` // tcp (default) or udp
	Expose   bool   `json:"expose,omitempty"`
}

// Health holds the probes of a replica.
type Health struct {
	Liveness  *Probe `json:"liveness,omitempty"`
	Readiness *Probe `json:"readiness,omitempty"`
}

// Probe is one health check. Exactly one of HTTP, TCP and Exec is set.
type Probe struct {
	HTTP             *HTTPCheck `json:"http,omitempty"`
	TCP              *TCPCheck  `json:"tcp,omitempty"`
	Exec             *ExecCheck `json:"exec,omitempty"`
	InitialDelay     Duration   `json:"initialDelay,omitempty"`
	Interval         Duration   `json:"interval,omitempty"`
	Timeout          Duration   `json:"timeout,omitempty"`
	FailureThreshold int        `json:"failureThreshold,omitempty"`
	SuccessThreshold int        `json:"successThreshold,omitempty"`
}

// HTTPCheck passes when GET Path on Port answers 2xx or 3xx.
// In YAML it may also be written as just the path: `http: /healthz`.
type HTTPCheck struct {
	Path string `json:"path"`
	// Port is a port name from spec.ports or a number; empty means the first port.
	Port string `json:"port,omitempty"`
}

// TCPCheck passes when a TCP connection to Port opens.
// In YAML it may also be written as just the port: `tcp: http` or `tcp: 8080`.
type TCPCheck struct {
	// Port is a port name from spec.ports or a number; empty means the first port.
	Port string `json:"port,omitempty"`
}

// ExecCheck passes when Command exits 0.
// In YAML it may also be written as just the list: `exec: [pg_isready, -q]`.
type ExecCheck struct {
	Command []string `json:"command"`
}

// RestartPolicy says when a replica that exited is started again.
type RestartPolicy string

// Restart policies.
const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// Restart says how exited replicas are restarted: with exponential backoff from
// Backoff up to MaxBackoff.
type Restart struct {
	Policy     RestartPolicy `json:"policy,omitempty"`
	Backoff    Duration      `json:"backoff,omitempty"`
	MaxBackoff Duration      `json:"maxBackoff,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5s", "250ms").
type Duration time.Duration

// Strategy says how the scheduler chooses among the nodes a replica fits on.
type Strategy string

// Placement strategies.
const (
	// StrategySpread puts each replica where the service has the fewest replicas (in
	// the SpreadBy domain, then on the node), then on the node with the most free
	// resources: replicas survive the loss of a node (or a zone).
	StrategySpread Strategy = "spread"
	// StrategyBinpack puts each replica on the node with the least free resources that
	// still fits it: nodes fill up one after another and the rest stay free.
	StrategyBinpack Strategy = "binpack"
)

// SpreadByNode is the SpreadBy that spreads replicas over nodes (the default).
const SpreadByNode = "node"

// Placement says where the replicas of a service may run and how they are spread.
type Placement struct {
	// Strategy is spread (default) or binpack.
	Strategy Strategy `json:"strategy,omitempty"`
	// SpreadBy is what spread balances replicas over: "node" (default), or a node label
	// key such as zone, whose values are the domains replicas are spread evenly across.
	// Nodes without the label form one domain together. Only for strategy spread.
	SpreadBy string `json:"spreadBy,omitempty"`
	// Constraints must all hold on a node for a replica to run there.
	Constraints []Constraint `json:"constraints,omitempty"`
}

// MaxFlowsAllow is the most services one flows.allow list may name.
const MaxFlowsAllow = 256

// Flows says which services the replicas of a service may open connections to, through
// the mesh. A flow to a service that no manifest allows is refused and counts against
// the node that tried it.
type Flows struct {
	// Allow names the services (DNS labels, each once, at most MaxFlowsAllow) that may
	// be reached. Empty allows none; Default turns nil into empty, so that both are
	// written [] in JSON. A service may name itself (replicas talking to each other).
	Allow []string `json:"allow"`
}

// Allows reports whether the replicas of a service with flows f may connect to the
// service named name. A nil f (no flows section) allows every service.
func (f *Flows) Allows(name string) bool {
	if f == nil {
		return true
	}
	for _, a := range f.Allow {
		if a == name {
			return true
		}
	}
	return false
}

// Ingress is how the ingress of every node treats requests from outside the network to
// one exposed port of a service, which must be a tcp port (HTTP or plain TCP).
type Ingress struct {
	// RateLimit, when set, bounds the rate of requests the ingress lets through to the
	// port: a token bucket filled at this rate, holding Burst tokens. Zero means no limit.
	RateLimit Rate `json:"rateLimit,omitzero"`
	// Burst is how many requests may pass at once, above the steady rate. Only with
	// RateLimit; Default sets it to the rate per second rounded up (at least 1).
	Burst int `json:"burst,omitempty"`
	// Port names the exposed tcp port of spec.ports that ingress serves; Default picks
	// the first exposed tcp port.
	Port string `json:"port,omitempty"`
	// MaxBodyBytes is the largest request body the ingress passes on (larger ones are
	// refused); DefaultMaxBodyBytes (1Mi) when left out.
	MaxBodyBytes Bytes `json:"maxBodyBytes,omitempty"`
	// Schema is the path of a JSON Schema file, relative to the manifest file, that
	// request bodies must match. qnet apply reads it (ResolveFiles) into SchemaJSON.
	Schema string `json:"schema,omitempty"`
	// SchemaJSON is the JSON Schema document request bodies must match (a JSON object
	// or boolean), as compact JSON with keys in sorted order. ResolveFiles fills it
	// from Schema; it may also be written inline, without Schema. A revision on the
	// ledger that names a Schema carries it (see ValidateResolved), so every node
	// checks bodies against the same document.
	SchemaJSON json.RawMessage `json:"schemaJSON,omitempty"`
}

// Rate is a number of events per second, minute or hour, written N/s, N/m or N/h
// ("200/s"). The zero Rate means no rate was given.
type Rate struct {
	// Count is how many events each Per allows: 1 to MaxRateCount.
	Count int
	// Per is time.Second, time.Minute or time.Hour.
	Per time.Duration
}
