package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/secret"
	"qnet.dev/qnet/state"
)

// SecretInfo describes a secret without its value.
type SecretInfo = state.SecretInfo

// NetworkKey returns the public half of the network's secret key, checked.
func (c *Client) NetworkKey(ctx context.Context) (secret.NetworkPublicKey, error) {
	var k secret.NetworkPublicKey
	if err := c.do(ctx, http.MethodGet, "/network-key", nil, nil, &k); err != nil {
		return k, err
	}
	if err := k.Check(); err != nil {
		return k, fmt.Errorf("the node answered a bad network key: %w", err)
	}
	return k, nil
}

// Secrets lists the secrets: names, versions, sizes, who put them and when; never values.
func (c *Client) Secrets(ctx context.Context) ([]SecretInfo, error) {
	var out []SecretInfo
	return out, c.do(ctx, http.MethodGet, "/secrets", nil, nil, &out)
}

// Secret describes one secret, without its value.
func (c *Client) Secret(ctx context.Context, name string) (*SecretInfo, error) {
	var out SecretInfo
	return &out, c.do(ctx, http.MethodGet, "/secrets/"+url.PathEscape(name), nil, nil, &out)
}

// PutSecret seals value on this machine to the network's key, as the next version of
// secret name, and submits it signed by the operator: the plaintext never leaves this
// process. The caller still owns value and wipes it.
func (c *Client) PutSecret(ctx context.Context, name string, value secret.Value) (api.TxResult, uint64, error) {
	if err := secret.ValidateName(name); err != nil {
		return api.TxResult{}, 0, err
	}
	if err := secret.CheckSize(name, value.Len()); err != nil {
		return api.TxResult{}, 0, err
	}
	key, err := c.NetworkKey(ctx)
	if err != nil {
		return api.TxResult{}, 0, err
	}
	var version uint64 = 1
	if cur, err := c.Secret(ctx, name); err == nil {
		version = cur.Version + 1
	} else if !IsNotFound(err) {
		return api.TxResult{}, 0, err
	}
	sealed, err := secret.Seal(key, name, version, value)
	if err != nil {
		return api.TxResult{}, 0, err
	}
	res, err := c.submitOne(ctx, ledger.TxSecretPut, ledger.SecretPut{Secret: sealed})
	return res, version, err
}

// RemoveSecret removes a secret that no service names.
func (c *Client) RemoveSecret(ctx context.Context, name string) (api.TxResult, error) {
	return c.submitOne(ctx, ledger.TxSecretRemove, ledger.SecretRemove{Name: name})
}

// RotateSecretKey has the network replace its secret key and seal every secret again.
func (c *Client) RotateSecretKey(ctx context.Context) (*api.SecretKeyRotation, error) {
	var out api.SecretKeyRotation
	return &out, c.do(ctx, http.MethodPost, "/secret-key/rotate", nil, nil, &out)
}

// Configs lists the configurations, without their content.
func (c *Client) Configs(ctx context.Context) ([]api.ConfigInfo, error) {
	var out []api.ConfigInfo
	return out, c.do(ctx, http.MethodGet, "/configs", nil, nil, &out)
}

// Config describes one configuration, without its content.
func (c *Client) Config(ctx context.Context, name string) (*api.ConfigInfo, error) {
	var out api.ConfigInfo
	return &out, c.do(ctx, http.MethodGet, "/configs/"+url.PathEscape(name), nil, nil, &out)
}

// PutConfig submits data as the next version of configuration name.
func (c *Client) PutConfig(ctx context.Context, name string, data []byte) (api.TxResult, uint64, error) {
	if secret.ValidateName(name) != nil {
		return api.TxResult{}, 0, fmt.Errorf("config name %q must be a DNS label (1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'), like nginx-conf", name)
	}
	if len(data) == 0 || len(data) > ledger.MaxConfigSize {
		return api.TxResult{}, 0, fmt.Errorf("config %s is %d bytes: it must have 1 to %d (256 KiB)", name, len(data), ledger.MaxConfigSize)
	}
	var version uint64 = 1
	if cur, err := c.Config(ctx, name); err == nil {
		version = cur.Version + 1
	} else if !IsNotFound(err) {
		return api.TxResult{}, 0, err
	}
	res, err := c.submitOne(ctx, ledger.TxConfigPut, ledger.ConfigPut{Name: name, Version: version, Data: data})
	return res, version, err
}

// RemoveConfig removes a configuration that no service names.
func (c *Client) RemoveConfig(ctx context.Context, name string) (api.TxResult, error) {
	return c.submitOne(ctx, ledger.TxConfigRemove, ledger.ConfigRemove{Name: name})
}

// checkInputs refuses, before anything is signed, a manifest that names secrets or
// configs the network does not have, naming every missing one. The state store checks
// the same at the door; this says it sooner and for every service at once.
func (c *Client) checkInputs(ctx context.Context, s *manifest.Service, have *inputNames) error {
	if len(s.Spec.Secrets) == 0 && len(s.Spec.Configs) == 0 {
		return nil
	}
	if err := have.load(ctx, c); err != nil {
		return err
	}
	var missing []string
	for _, r := range s.Spec.Secrets {
		if !have.secrets[r.Name] {
			missing = append(missing, "secret "+r.Name)
		}
	}
	for _, r := range s.Spec.Configs {
		if !have.configs[r.Name] {
			missing = append(missing, "config "+r.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("names %s, which the network does not have (create with qnet secret put / qnet config put)", strings.Join(missing, ", "))
	}
	return nil
}

// inputNames are the names of the network's secrets and configs, read once per apply.
type inputNames struct {
	secrets, configs map[string]bool
}

func (h *inputNames) load(ctx context.Context, c *Client) error {
	if h.secrets != nil {
		return nil
	}
	ss, err := c.Secrets(ctx)
	if err != nil {
		return err
	}
	cs, err := c.Configs(ctx)
	if err != nil {
		return err
	}
	h.secrets, h.configs = map[string]bool{}, map[string]bool{}
	for _, s := range ss {
		h.secrets[s.Name] = true
	}
	for _, c := range cs {
		h.configs[c.Name] = true
	}
	return nil
}
