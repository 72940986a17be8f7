package apiserver

import (
	"context"
	"errors"
	"net/http"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/state"
)

// SecretKeyRotator is what a Backend implements to rotate the network's secret key.
type SecretKeyRotator interface {
	RotateSecretKey(ctx context.Context) (api.SecretKeyRotation, error)
}

// secretRoutes serves secrets and configs. Nothing here answers with a secret's value,
// sealed or not: only names, versions, sizes and who changed them. Puts and removals
// are signed transactions (POST /v1/txs).
func (s *Server) secretRoutes(h func(string, func(http.ResponseWriter, *http.Request) error)) {
	h("GET /v1/network-key", s.networkKey)
	h("GET /v1/secrets", s.secrets)
	h("GET /v1/secrets/{name}", s.secret)
	h("POST /v1/secret-key/rotate", s.rotateSecretKey)
	h("GET /v1/configs", s.configs)
	h("GET /v1/configs/{name}", s.config)
}

// networkKey answers the public half of the network's secret key, which clients seal
// secrets to.
func (s *Server) networkKey(w http.ResponseWriter, r *http.Request) error {
	k, ok, err := s.b.Store().NetworkKey()
	if err != nil {
		return err
	}
	if !ok {
		return notFound("the network has no secret key yet (its leader makes one within seconds of starting); try again")
	}
	writeJSON(w, http.StatusOK, k.Key)
	return nil
}

func (s *Server) secrets(w http.ResponseWriter, r *http.Request) error {
	out, err := s.b.Store().SecretInfos()
	if err != nil {
		return err
	}
	if out == nil {
		out = []state.SecretInfo{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) secret(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	all, err := s.b.Store().SecretInfos()
	if err != nil {
		return err
	}
	for _, info := range all {
		if info.Name == name {
			writeJSON(w, http.StatusOK, info)
			return nil
		}
	}
	return notFound("secret %q not found (qnet secret list shows them)", name)
}

func (s *Server) rotateSecretKey(w http.ResponseWriter, r *http.Request) error {
	rot, ok := s.b.(SecretKeyRotator)
	if !ok {
		return errors.New("this node cannot rotate the network secret key")
	}
	res, err := rot.RotateSecretKey(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func configInfo(c state.Config) api.ConfigInfo {
	return api.ConfigInfo{Name: c.Name, Version: c.Version, Size: len(c.Data), SHA256: c.SHA256,
		UpdatedBy: c.UpdatedBy, Created: c.Created, Updated: c.Updated, UsedBy: c.UsedBy}
}

func (s *Server) configs(w http.ResponseWriter, r *http.Request) error {
	all, err := s.b.Store().Configs()
	if err != nil {
		return err
	}
	out := make([]api.ConfigInfo, 0, len(all))
	for _, c := range all {
		out = append(out, configInfo(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	c, ok, err := s.b.Store().Config(name)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("config %q not found (qnet config list shows them)", name)
	}
	writeJSON(w, http.StatusOK, configInfo(c))
	return nil
}
