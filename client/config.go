package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/goccy/go-yaml"
)

// Context says how to reach one network as one operator, as a kubeconfig context does.
type Context struct {
	// Server is the API's base URL, https://host:port.
	Server string `yaml:"server" json:"server"`
	// Token is the operator's API credential.
	Token string `yaml:"token" json:"token"`
	// OperatorKey is the path of the operator's signing key.
	OperatorKey string `yaml:"operatorKey" json:"operatorKey"`
	// ServerKey pins the node's TLS key: hex SHA-256 of its public key.
	ServerKey string `yaml:"serverKey" json:"serverKey"`
	// Network is the network's name, for people.
	Network string `yaml:"network,omitempty" json:"network,omitempty"`
}

// Config is the context file: named contexts and the current one.
type Config struct {
	Current  string              `yaml:"current"`
	Contexts map[string]*Context `yaml:"contexts"`
}

// Environment variables that override the context file.
const (
	EnvConfig  = "QNET_CONFIG"
	EnvContext = "QNET_CONTEXT"
)

// DefaultConfigPath is $QNET_CONFIG, or ~/.qnet/config.yaml.
func DefaultConfigPath() string {
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".qnet", "config.yaml")
	}
	return filepath.Join(home, ".qnet", "config.yaml")
}

// LoadConfig reads a context file; a missing file is an empty config.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{Contexts: map[string]*Context{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read context file: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("context file %s: %w", path, err)
	}
	if c.Contexts == nil {
		c.Contexts = map[string]*Context{}
	}
	return &c, nil
}

// Save writes the context file with mode 0600 (it holds tokens).
func (c *Config) Save(path string) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write context file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err != nil {
		return fmt.Errorf("write context file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(data)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
	}
	if err != nil {
		return fmt.Errorf("write context file %s: %w", path, err)
	}
	return nil
}

// Resolve picks a context: the one named (flag or $QNET_CONTEXT), else the current one.
func (c *Config) Resolve(name string) (string, *Context, error) {
	if name == "" {
		name = os.Getenv(EnvContext)
	}
	if name == "" {
		name = c.Current
	}
	if name == "" {
		return "", nil, errors.New("no qnet context is set: start a network with `qnet dev` (it writes one), or `qnet init`, or pass --context")
	}
	ctx, ok := c.Contexts[name]
	if !ok {
		names := make([]string, 0, len(c.Contexts))
		for n := range c.Contexts {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", nil, fmt.Errorf("context %q is not in the context file (have: %v)", name, names)
	}
	return name, ctx, nil
}

// Set stores a context under name and makes it current.
func (c *Config) Set(name string, ctx *Context) {
	c.Contexts[name] = ctx
	c.Current = name
}

// Remove deletes a context; if it was current, no context is current.
func (c *Config) Remove(name string) {
	delete(c.Contexts, name)
	if c.Current == name {
		c.Current = ""
	}
}
