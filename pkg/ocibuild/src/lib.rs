//! Builds reproducible OCI image layouts from small `image.yaml` definitions,
//! and reads OCI layouts back for the containerd importer.
//!
//! No registry is reachable where Outpost is developed and tested, so every
//! test and demo image is assembled locally from host binaries
//! (`busybox-static`). The images live in `images/<name>/image.yaml`.
//!
//! # Definition format
//!
//! ```yaml
//! name: hello                  # repository name; [a-z0-9._-] components joined by /
//! tag: latest                  # optional, default "latest"; reference = "<name>:<tag>"
//! layers:                      # one or more, bottom first; each is one tar+gzip blob
//!   - files:                   # host files copied in (symlinks on the host are followed)
//!       - { from: /bin/busybox, to: /bin/busybox, mode: 0o755 }
//!     links:                   # symbolic links, target stored verbatim
//!       - { path: /bin/sh, target: busybox }
//!     busybox_applets: [sh, sleep, echo]   # each becomes /bin/<applet> -> busybox
//!     dirs: [/tmp, /etc, /proc]            # empty dirs, 0755 (/tmp and /var/tmp: 1777)
//!     write:                   # inline content, mode default 0644
//!       - { path: /etc/passwd, content: "root:x:0:0:root:/root:/bin/sh\n" }
//!     random:                  # deterministic pseudo-random bytes, mode default 0644
//!       - { path: /blob, size: 1048576, seed: 1 }
//! config:                      # all optional; becomes the image config's "config"
//!   entrypoint: [/bin/sh, -c]
//!   cmd: ["echo hi"]
//!   env: [PATH=/usr/sbin:/usr/bin:/sbin:/bin]
//!   working_dir: /
//!   user: "0:0"
//!   labels: { org.lfedge.eve.vnc_password: "..." }
//!   stop_signal: SIGTERM
//! ```
//!
//! Rules, all checked by [`ImageDef::load`] before anything is built:
//!
//! * Unknown fields anywhere are errors; every error names the file and the
//!   field (`layers[0].write[1].path`).
//! * Image paths are absolute and normalised (no `.`, `..`, `//`). Parent
//!   directories are added implicitly with mode 0755.
//! * Relative `from:` paths are resolved against the directory holding
//!   `image.yaml`. A `files` entry without `mode` gets 0755 if the host file
//!   is executable by its owner, else 0644 — never the host's exact bits,
//!   which depend on the umask of whoever checked out the tree.
//! * `mode:` is octal: write `0o755` or `"0755"` (a bare `755` is decimal).
//! * Within one layer a path may be declared twice only if both declarations
//!   are identical (so `links: [/bin/sh -> busybox]` together with
//!   `busybox_applets: [sh]` is fine); anything else is a conflict. A later
//!   layer may replace what an earlier one holds; deletions (whiteouts) are
//!   not supported.
//! * `random:` bytes are the SplitMix64 stream seeded with `seed`, each
//!   64-bit output written little-endian, truncated to `size`.
//!
//! # Output
//!
//! [`build`] writes an [OCI image layout]: `oci-layout`, `index.json` with one
//! manifest descriptor (platform `linux/<GOARCH of the host>`, annotated
//! `org.opencontainers.image.ref.name: <name>:<tag>`) and `blobs/sha256/`
//! holding the manifest (`application/vnd.oci.image.manifest.v1+json`), the
//! config (`rootfs.diff_ids` = SHA-256 of each uncompressed layer tar, one
//! `history` entry per layer, `created` = the Unix epoch) and the layers
//! (`application/vnd.oci.image.layer.v1.tar+gzip`). [`write_archive`] packs a
//! layout into an `oci-archive` tar.
//!
//! **Reproducible**: the same definition and the same host files give the
//! same digests — entries sorted, mtime 0, uid/gid 0, no owner names, gzip
//! header with mtime 0 / no name / OS 255 at level 6, JSON with sorted keys.
//! (The compressed bytes also depend on the `flate2` backend version pinned
//! in `Cargo.lock`.)
//!
//! # Reading
//!
//! [`OciLayout`] opens a layout directory (or an archive, see
//! [`OciLayout::open_archive`]) and resolves index → manifest → config,
//! returning each JSON document with its exact bytes ([`JsonBlob`]) so an
//! importer can store them unchanged and keep the digests.
//!
//! ```no_run
//! # fn main() -> Result<(), outpost_ocibuild::Error> {
//! use std::path::Path;
//! use outpost_ocibuild::{build, ImageDef, OciLayout};
//!
//! let def = ImageDef::load("images/hello/image.yaml")?;
//! let built = build(&def, Path::new("images/hello"), Path::new("/tmp/oci/hello"))?;
//! let layout = OciLayout::open(&built.layout_dir)?;
//! let manifest = layout.manifest_by_ref(&built.reference)?;
//! for layer in manifest.value.layers() {
//!     let _reader = layout.blob_reader(layer.digest())?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Current limitations
//!
//! * No whiteouts, hard links, device nodes, xattrs or non-root ownership in
//!   layers; `from:` copies single regular files, not directory trees.
//! * One image per layout; the reader handles several but not nested
//!   indexes, Docker (v2s2) manifests or non-sha256 digests when verifying.
//! * Layers are always gzip-compressed.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

mod archive;
mod build;
mod def;
mod digest;
mod error;
mod layer;
mod layer_def;
mod layout;
mod random;

pub use archive::write_archive;
pub use build::{build, build_all, BuiltImage, LayerInfo};
pub use def::{big_image, ConfigDef, ImageDef};
pub use error::{Error, Result};
pub use layer_def::{FileDef, LayerDef, LinkDef, Mode, RandomDef, WriteDef};
pub use layout::{JsonBlob, OciLayout};
