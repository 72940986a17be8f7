// Package depot is the content-addressed store of depots on a node, and the ways images
// get into it: import of an OCI image layout or a `docker save` tarball, pull from an
// OCI registry, build from a directory or a static binary, import of a WebAssembly
// module, and fetch from a peer.
//
// Everything in the store is a blob named by the SHA-256 of its bytes. A blob is
// written to a temporary file inside the store, hashed and counted while it is written,
// synced, and only then renamed to its name; bytes that do not hash to the digest they
// were asked for (or a size that is not the one announced) are refused with an error
// that names the blob and both digests, and nothing is stored. So a blob file that
// exists is complete and correct, whoever wrote it and however the writer died.
//
// An image is an OCI image manifest (application/vnd.oci.image.manifest.v1+json or
// Docker's schema 2) stored as a blob, with its config and layers as blobs; the image is
// named by the digest of its manifest. Only single-platform manifests are images here:
// an image index (multi-platform) is resolved to one platform when it is imported or
// pulled, because a node runs one platform. A WebAssembly module is an OCI artifact of
// the same shape whose one layer has media type application/wasm (Kind "wasm").
// Layers are stored as they came (gzip, zstd or plain tar); LayerReader gives the plain
// tar stream and checks it against the config's diff_id as it is read. A classic
// `docker save` tarball has no registry manifest: its layers are stored as the plain
// tars its config's diff_ids name and the image gets an OCI manifest, as Docker 25+
// writes them, so its config digest is still Docker's image ID.
//
// # On-disk layout
//
//	<dir>/
//	  blobs/sha256/<hex>   every blob: manifests, configs, layers, exactly the bytes
//	                       received, read-only (0444)
//	  images/<hex>.json    one record per image (its manifest's digest): when it was
//	                       added and from where; the manifest itself is a blob
//	  names.json           names (tags) to image digests: {"names": {"web:1.2": "sha256:…"}}
//	  tmp/                 blobs being written; never read as content, and files left
//	                       there by a crash are removed by Open and GC
//
// Names follow Docker's reference grammar ("web", "web:1.2", "registry:5000/team/web:1.2");
// a name without a tag gets ":latest", as in Docker.
//
// # Concurrency
//
// A Store is safe for concurrent use. Several pulls of the same image at once fetch and
// write each blob once: the first writer of a digest writes it and the others wait for
// it. Imports, pulls, builds and fetches hold a shared lock for their whole run and
// GC and Remove an exclusive one, so a blob an import is about to reference is never
// collected under it. The store assumes one process owns its directory (the node's
// agent): names.json and the image records are kept in memory and written through.
package depot
