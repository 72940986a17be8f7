package manifest

import (
	"path"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// MaxInputs is the most secrets, and the most configs, one service may name.
const MaxInputs = 64

// SecretRef names a secret the replicas of a service get: as the environment variable
// Env, as the file File, or both. The secret's value is on the ledger only sealed; a node
// gets it only while it runs a replica whose revision names it.
type SecretRef struct {
	// Name is the secret's name (qnet secret put NAME), a DNS label.
	Name string `json:"name"`
	// Env, when set, is the environment variable that holds the value.
	Env string `json:"env,omitempty"`
	// File, when set, is the absolute path the value appears at, read-only, as a file on
	// a tmpfs: bind-mounted into containers, preopened for wasm modules. Exec depots get
	// the file's real path in QNET_SECRET_FILE_<NAME> instead (their filesystem is the
	// node's).
	File string `json:"file,omitempty"`
}

// ConfigRef names a configuration file the replicas of a service get at Path.
type ConfigRef struct {
	// Name is the configuration's name (qnet config put NAME), a DNS label.
	Name string `json:"name"`
	// Path is the absolute path the file appears at, read-only: bind-mounted into
	// containers, preopened for wasm modules. Exec depots get the file's real path in
	// QNET_CONFIG_<NAME>.
	Path string `json:"path"`
}

// SecretNames returns the names of the secrets the spec names, in order.
func (sp *Spec) SecretNames() []string {
	out := make([]string, 0, len(sp.Secrets))
	for _, s := range sp.Secrets {
		out = append(out, s.Name)
	}
	return out
}

// ConfigNames returns the names of the configurations the spec names, in order.
func (sp *Spec) ConfigNames() []string {
	out := make([]string, 0, len(sp.Configs))
	for _, c := range sp.Configs {
		out = append(out, c.Name)
	}
	return out
}

// secrets decodes spec.secrets: a list of {name, env, file}.
func (d *docDecoder) secrets(n ast.Node, path string) []SecretRef {
	return decodeRefs(d, n, path, "a list of secret references like [{name: db-password, env: DB_PASSWORD}]",
		"a secret reference like {name: db-password, env: DB_PASSWORD} or {name: tls-key, file: /run/secrets/tls.key}",
		func(s *SecretRef) []field {
			return []field{
				{name: "name", dec: func(n ast.Node, p string) { d.str(n, p, "a secret name ("+dnsLabelRule+")", &s.Name) }},
				{name: "env", dec: func(n ast.Node, p string) { d.str(n, p, "an environment variable name like DB_PASSWORD", &s.Env) }},
				{name: "file", dec: func(n ast.Node, p string) { d.str(n, p, "an absolute file path like /run/secrets/tls.key", &s.File) }},
			}
		})
}

// configs decodes spec.configs: a list of {name, path}.
func (d *docDecoder) configs(n ast.Node, path string) []ConfigRef {
	return decodeRefs(d, n, path, "a list of config references like [{name: nginx-conf, path: /etc/nginx/nginx.conf}]",
		"a config reference like {name: nginx-conf, path: /etc/nginx/nginx.conf}",
		func(c *ConfigRef) []field {
			return []field{
				{name: "name", dec: func(n ast.Node, p string) { d.str(n, p, "a config name ("+dnsLabelRule+")", &c.Name) }},
				{name: "path", dec: func(n ast.Node, p string) { d.str(n, p, "an absolute file path like /etc/nginx/nginx.conf", &c.Path) }},
			}
		})
}

// decodeRefs decodes a list of references to secrets or configs at path, each an object
// (wantList and want say what the list and each item should be) whose fields, as
// fields gives them for the item being decoded, fill in one T.
func decodeRefs[T any](d *docDecoder, n ast.Node, path, wantList, want string, fields func(*T) []field) []T {
	var out []T
	for i, e := range d.list(n, path, wantList) {
		p := indexPath(path, i)
		d.record(p, nil, e)
		var r T
		d.object(e, p, want, fields(&r))
		if isNull(e) {
			d.errAt(e, p, "must be %s, got null", want)
		}
		out = append(out, r)
	}
	return out
}

// envVarName is what a secret's environment variable may be called: a portable shell
// name.
var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// inputs validates spec.secrets and spec.configs: names, unique names, variables that
// clash with spec.env or QNet's own, and file paths that are absolute, clean and unique.
func (v *validator) inputs(sp *Spec) {
	files := map[string]string{} // path -> field that claims it
	checkFile := func(field, p, what string) {
		switch {
		case p == "":
			return
		case !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" || strings.ContainsAny(p, "\x00\n"):
			v.add(field, "must be an absolute, clean file path like %s, got %q", what, p)
		case files[p] != "":
			v.add(field, "path %q is already used by %s", p, files[p])
		default:
			files[p] = field
		}
	}
	// checkName checks the name of item p, a secret or config (kind), against the names
	// seen before it; hint ends the message for a name given twice.
	checkName := func(p, kind, name string, seen map[string]bool, hint string) {
		switch {
		case name == "":
			v.add(p+".name", "is required: the name of a %s (qnet %s list shows them)", kind, kind)
		case !dnsLabel.MatchString(name):
			v.add(p+".name", "must be a DNS label (%s), got %q", dnsLabelRule, name)
		case seen[name]:
			v.add(p+".name", "%s %q is named twice%s", kind, name, hint)
		}
		seen[name] = true
	}
	if len(sp.Secrets) > MaxInputs {
		v.add("spec.secrets", "names %d secrets, at most %d are allowed", len(sp.Secrets), MaxInputs)
	}
	names, envs := map[string]bool{}, map[string]string{}
	for i, s := range sp.Secrets {
		p := indexPath("spec.secrets", i)
		checkName(p, "secret", s.Name, names, "; give one entry both env and file")
		if s.Env == "" && s.File == "" {
			v.add(p, "must say how the depot gets secret %q: env (an environment variable), file (a path), or both", s.Name)
		}
		if s.Env != "" {
			switch _, inEnv := sp.Env[s.Env]; {
			case !envVarName.MatchString(s.Env):
				v.add(p+".env", "must be an environment variable name (letters, digits and '_', not starting with a digit), got %q", s.Env)
			case strings.HasPrefix(s.Env, "QNET_") || s.Env == "PORT" || s.Env == "PATH":
				v.add(p+".env", "%s is set by QNet for every depot; choose another name", s.Env)
			case inEnv:
				v.add(p+".env", "%s is also set in spec.env; a variable has one source", s.Env)
			case envs[s.Env] != "":
				v.add(p+".env", "%s is already the variable of %s", s.Env, envs[s.Env])
			}
			envs[s.Env] = p
		}
		checkFile(p+".file", s.File, "/run/secrets/tls.key")
	}
	if len(sp.Configs) > MaxInputs {
		v.add("spec.configs", "names %d configs, at most %d are allowed", len(sp.Configs), MaxInputs)
	}
	cnames := map[string]bool{}
	for i, c := range sp.Configs {
		p := indexPath("spec.configs", i)
		checkName(p, "config", c.Name, cnames, "")
		if c.Path == "" {
			v.add(p+".path", "is required: the absolute path the file appears at, like /etc/nginx/nginx.conf")
		}
		checkFile(p+".path", c.Path, "/etc/nginx/nginx.conf")
	}
}
