package client

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/manifest"
)

// Images lists the depots in the node's store.
func (c *Client) Images(ctx context.Context) ([]depot.ImageSummary, error) {
	var out []depot.ImageSummary
	return out, c.do(ctx, http.MethodGet, "/images", nil, nil, &out)
}

// Image describes one depot of the node's store.
func (c *Client) Image(ctx context.Context, ref string) (*api.ImageDetail, error) {
	var out api.ImageDetail
	return &out, c.do(ctx, http.MethodGet, "/image", url.Values{"ref": {ref}}, nil, &out)
}

// RemoveImage removes a depot (or one of its names) from the node's store.
func (c *Client) RemoveImage(ctx context.Context, ref string) (*api.ImageDetail, error) {
	var out api.ImageDetail
	return &out, c.do(ctx, http.MethodDelete, "/image", url.Values{"ref": {ref}}, nil, &out)
}

// ResolveImage turns a reference into the node's image (and its digest); with pull, a
// reference the store lacks is pulled from its registry.
func (c *Client) ResolveImage(ctx context.Context, ref string, pull bool) (*api.ImageDetail, error) {
	var out api.ImageDetail
	return &out, c.do(ctx, http.MethodGet, "/images/resolve", url.Values{"ref": {ref}, "pull": {fmt.Sprint(pull)}}, nil, &out)
}

// PullImage has the node pull an image from an OCI registry.
func (c *Client) PullImage(ctx context.Context, req api.PullRequest) (*api.ImageDetail, error) {
	var out api.ImageDetail
	return &out, c.do(ctx, http.MethodPost, "/images/pull", nil, req, &out)
}

// ImportImage uploads an image (an OCI image layout as a directory or tar, a docker
// save tarball, or a WASM module) to the node's store, under name if given.
func (c *Client) ImportImage(ctx context.Context, path, name string) (*api.ImageDetail, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if st.IsDir() {
		// A layout directory travels as a tar of it: pack it with a local store.
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarDir(path, pw)) }()
		body = pr
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		body = f
	}
	return c.upload(ctx, "/images/import", url.Values{"name": {name}}, body)
}

// BuildImage packs a directory or one static binary as a one-layer image, here, and
// uploads it to the node's store.
func (c *Client) BuildImage(ctx context.Context, src, name string, opts depot.BuildOptions) (*api.ImageDetail, error) {
	tmp, err := os.MkdirTemp("", "qnet-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	store, err := depot.Open(filepath.Join(tmp, "store"))
	if err != nil {
		return nil, err
	}
	img, err := store.Build(ctx, src, name, opts)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(store.Export(ctx, img.Digest, name, pw)) }()
	return c.upload(ctx, "/images/import", url.Values{"name": {name}}, pr)
}

func (c *Client) upload(ctx context.Context, path string, q url.Values, body io.Reader) (*api.ImageDetail, error) {
	req, err := c.newRequest(ctx, http.MethodPost, path, q, nil)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(body)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach qnet API at %s: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	var out api.ImageDetail
	if err := decodeJSON(resp.Body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// resolveDepots fills in the digests of a service's image or wasm depot: a reference is
// resolved by the node (pulled from its registry when the store lacks it); a wasm module
// given as a local file is uploaded first. Every revision on the ledger names its depot
// by digest.
func (c *Client) resolveDepots(ctx context.Context, s *manifest.Service) error {
	dp := &s.Spec.Depot
	switch {
	case dp.Image != nil && dp.Image.Digest == "":
		img, err := c.ResolveImage(ctx, dp.Image.Ref, true)
		if err != nil {
			return fmt.Errorf("image %s: %w", dp.Image.Ref, err)
		}
		dp.Image.Digest = string(img.Digest)
	case dp.Wasm != nil && dp.Wasm.Digest == "":
		ref := dp.Wasm.Module
		if st, err := os.Stat(ref); err == nil && !st.IsDir() && (strings.HasSuffix(ref, ".wasm") || strings.ContainsRune(ref, os.PathSeparator)) {
			name := strings.TrimSuffix(filepath.Base(ref), ".wasm") + ":latest"
			img, err := c.ImportImage(ctx, ref, name)
			if err != nil {
				return fmt.Errorf("wasm module %s: %w", ref, err)
			}
			dp.Wasm.Digest = string(img.Digest)
			return nil
		}
		img, err := c.ResolveImage(ctx, ref, true)
		if err != nil {
			return fmt.Errorf("wasm module %s: %w", ref, err)
		}
		dp.Wasm.Digest = string(img.Digest)
	}
	return nil
}

func decodeJSON(r io.Reader, v any) error {
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// tarDir writes the files under dir as a tar (an OCI image layout directory).
func tarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
