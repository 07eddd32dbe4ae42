//! `outpost-ocibuild`: builds OCI image layouts from `images/*/image.yaml`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use outpost_ocibuild::{build, build_all, write_archive, BuiltImage, ImageDef, OciLayout};

/// Build reproducible OCI image layouts from image.yaml definitions.
#[derive(Parser)]
#[command(name = "outpost-ocibuild", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build one image: DEF is an image directory (holding image.yaml) or a
    /// definition file. Give -o, --archive or both.
    Build {
        /// Image directory or image.yaml file.
        def: PathBuf,
        /// Write the OCI layout to this directory (replaced if it is a layout).
        #[arg(short, long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Also (or only) write the layout as an oci-archive tar to FILE.
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
    },
    /// Build every IMAGES/<name>/image.yaml into DIR/<name>/.
    BuildAll {
        /// Directory holding one subdirectory per image.
        images: PathBuf,
        /// Output directory.
        #[arg(short, long, value_name = "DIR")]
        out: PathBuf,
        /// Also write DIR/<name>.oci.tar archives.
        #[arg(long)]
        archives: bool,
    },
    /// Check a layout directory (or an archive ending in .tar) end to end.
    Verify {
        /// Layout directory or oci-archive file.
        path: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Build { def, out, archive } => build_one(&def, out, archive),
        Command::BuildAll {
            images,
            out,
            archives,
        } => {
            let built = build_all(&images, &out)
                .with_context(|| format!("building images under {}", images.display()))?;
            for b in &built {
                if archives {
                    let name = b.layout_dir.file_name().context("layout dir has no name")?;
                    let mut file = name.to_owned();
                    file.push(".oci.tar");
                    let file = out.join(file);
                    write_archive(&b.layout_dir, &file)?;
                }
                report(b);
            }
            Ok(())
        }
        Command::Verify { path } => {
            let layout = if path.is_file() {
                OciLayout::open_archive(&path)?
            } else {
                OciLayout::open(&path)?
            };
            layout.verify()?;
            let m = layout.manifest()?;
            println!(
                "ok {} {} ({} layers)",
                layout.ref_names().join(","),
                m.descriptor.digest(),
                m.value.layers().len()
            );
            Ok(())
        }
    }
}

fn build_one(def: &Path, out: Option<PathBuf>, archive: Option<PathBuf>) -> Result<()> {
    let yaml = if def.is_dir() {
        def.join("image.yaml")
    } else {
        def.to_owned()
    };
    let base = yaml.parent().unwrap_or(Path::new(".")).to_owned();
    let image = ImageDef::load(&yaml)?;
    let (out, temp) = match (out, &archive) {
        (Some(o), _) => (o, None),
        (None, Some(_)) => {
            let t = tempfile::tempdir().context("creating a temporary directory")?;
            (t.path().join("layout"), Some(t))
        }
        (None, None) => bail!("nothing to do: give -o DIR, --archive FILE or both"),
    };
    let built = build(&image, &base, &out)?;
    if let Some(file) = &archive {
        write_archive(&built.layout_dir, file)?;
    }
    report(&built);
    drop(temp);
    Ok(())
}

fn report(b: &BuiltImage) {
    println!(
        "{} {} {}",
        b.reference,
        b.manifest_digest,
        b.layout_dir.display()
    );
}
