package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/depot"
)

// MaxImageUpload bounds an uploaded image, module or build context.
const MaxImageUpload = 8 << 30

func (s *Server) imageRoutes(h func(string, func(http.ResponseWriter, *http.Request) error)) {
	h("GET /v1/images", s.images)
	h("GET /v1/image", s.image)
	h("DELETE /v1/image", s.removeImage)
	h("GET /v1/images/resolve", s.resolveImage)
	h("POST /v1/images/import", s.importImage)
	h("POST /v1/images/pull", s.pullImage)
}

func (s *Server) images(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.b.Depots().Images()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, imgs)
	return nil
}

func refParam(r *http.Request) (string, error) {
	ref := strings.TrimSpace(r.URL.Query().Get("ref"))
	if ref == "" {
		return "", badRequest("query parameter ref is required: a name such as web:1.2, or sha256:<digest>")
	}
	return ref, nil
}

func (s *Server) lookup(ref string) (*depot.Image, error) {
	d, err := s.b.Depots().Resolve(ref)
	if err != nil {
		if errors.Is(err, depot.ErrNotFound) {
			return nil, notFound("depot %q is not in this node's store (qnet depot ls lists them): %v", ref, err)
		}
		return nil, badRequest("depot %q: %v", ref, err)
	}
	img, err := s.b.Depots().Image(d)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func (s *Server) image(w http.ResponseWriter, r *http.Request) error {
	ref, err := refParam(r)
	if err != nil {
		return err
	}
	img, err := s.lookup(ref)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ImageDetail{Image: img, Names: s.b.Depots().Names(img.Digest)})
	return nil
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request) error {
	ref, err := refParam(r)
	if err != nil {
		return err
	}
	img, err := s.lookup(ref)
	if err != nil {
		return err
	}
	if users := s.usersOf(string(img.Digest)); len(users) > 0 && !strings.HasPrefix(ref, "sha256:") {
		// Removing a name is always fine; the image stays while revisions use it.
	} else if len(users) > 0 {
		return httpError{http.StatusConflict, fmt.Sprintf("depot %s is used by %s; delete or change those services first", img.Digest.Short(), strings.Join(users, ", ")), nil}
	}
	if err := s.b.Depots().Remove(ref); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ImageDetail{Image: img})
	return nil
}

// usersOf lists the services whose current revision runs the depot.
func (s *Server) usersOf(digest string) []string {
	svcs, err := s.b.Store().Services()
	if err != nil {
		return nil
	}
	var out []string
	for _, svc := range svcs {
		dp := svc.Spec.Spec.Depot
		if (dp.Image != nil && dp.Image.Digest == digest) || (dp.Wasm != nil && dp.Wasm.Digest == digest) {
			out = append(out, svc.Name)
		}
	}
	return out
}

// resolveImage turns a reference into a digest: from the store, or, when it is not
// there and pull=true, by pulling it from its registry.
func (s *Server) resolveImage(w http.ResponseWriter, r *http.Request) error {
	ref, err := refParam(r)
	if err != nil {
		return err
	}
	pull, err := boolParam(r, "pull")
	if err != nil {
		return err
	}
	img, err := s.lookup(ref)
	if err != nil && pull && !strings.HasPrefix(ref, "sha256:") {
		if img, err = s.b.Depots().Pull(r.Context(), ref); err != nil {
			return httpError{http.StatusBadGateway, fmt.Sprintf("depot %q is not in this node's store, and pulling it failed: %v", ref, err), nil}
		}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ImageDetail{Image: img, Names: s.b.Depots().Names(img.Digest)})
	return nil
}

// upload saves a request body to a temporary file in the store's directory.
func (s *Server) upload(r *http.Request) (string, func(), error) {
	tmp, err := os.CreateTemp(filepath.Join(s.b.Depots().Dir(), "tmp"), "upload-*")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	n, err := io.Copy(tmp, io.LimitReader(r.Body, MaxImageUpload+1))
	if err == nil && n > MaxImageUpload {
		err = httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("upload is larger than %d bytes", int64(MaxImageUpload)), nil}
	}
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp.Name(), cleanup, nil
}

// importImage takes an OCI image layout (as a tar), a docker save tarball or a WASM
// module in the body.
func (s *Server) importImage(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("name")
	path, cleanup, err := s.upload(r)
	if err != nil {
		return err
	}
	defer cleanup()
	var img *depot.Image
	if isWasm(path) {
		img, err = s.b.Depots().ImportWasm(r.Context(), path, name)
	} else {
		img, err = s.b.Depots().Import(r.Context(), path, name)
	}
	if err != nil {
		return httpError{http.StatusUnprocessableEntity, "import: " + err.Error(), nil}
	}
	writeJSON(w, http.StatusOK, api.ImageDetail{Image: img, Names: s.b.Depots().Names(img.Digest)})
	return nil
}

func isWasm(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "\x00asm"
}

func (s *Server) pullImage(w http.ResponseWriter, r *http.Request) error {
	var req api.PullRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Ref == "" {
		return badRequest(`body must be {"ref": "registry/name:tag"}`)
	}
	var opts []depot.PullOption
	if req.Insecure {
		opts = append(opts, depot.WithInsecure())
	}
	img, err := s.b.Depots().Pull(r.Context(), req.Ref, opts...)
	if err != nil {
		return httpError{http.StatusBadGateway, "pull: " + err.Error(), nil}
	}
	if req.Name != "" {
		if err := s.b.Depots().Tag(req.Name, img.Digest); err != nil {
			return badRequest("name %q: %v", req.Name, err)
		}
	}
	writeJSON(w, http.StatusOK, api.ImageDetail{Image: img, Names: s.b.Depots().Names(img.Digest)})
	return nil
}
