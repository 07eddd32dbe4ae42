//! Checks of single app fields a hostile or careless config can abuse:
//! image references (a local name like `..:latest` would leave the
//! `--images` directory), mount points over the kernel's pseudo file
//! systems, env names that break the `K=V` environment block, and resource
//! numbers whose byte or microsecond values overflow.

use crate::config::AppConfig;
use crate::problem::{clip, quoted, Problem};

/// Largest memory limit accepted for an app, in KiB: 1 TiB. Its value in
/// bytes (× 1024) fits an `i64`, as the OCI spec's `memory.limit` needs.
pub const MAX_MEMORY_KIB: u64 = 1 << 30;

/// Top-level directories an app volume may not be mounted on or under:
/// the kernel's pseudo file systems the runtime sets up.
pub const FORBIDDEN_MOUNT_ROOTS: [&str; 3] = ["proc", "sys", "dev"];

/// Appends the problems of `app`'s image reference, memory limit, env names
/// and volume mount points (at path `p`, e.g. `apps[1]`).
pub fn validate_fields(app: &AppConfig, p: &str, out: &mut Vec<Problem>) {
    if !app.image.trim().is_empty() && !app.image.chars().any(char::is_whitespace) {
        if let Err(e) = crate::reference::check(&app.image) {
            out.push(Problem::new(
                format!("{p}.image"),
                format!(
                    "{} is not a valid image reference: {}",
                    quoted(&app.image),
                    e.problem
                ),
            ));
        }
    }
    let kib = app.resources.memory_kib;
    if kib > MAX_MEMORY_KIB {
        out.push(Problem::new(
            format!("{p}.resources.memory_kib"),
            format!("must be at most {MAX_MEMORY_KIB} (1 TiB) (got {kib})"),
        ));
    }
    for k in app.env.keys() {
        if k.chars().any(|c| c.is_control() && c != '\0') {
            out.push(Problem::new(
                format!("{p}.env.{}", env_name_shown(k)),
                "a variable name must not contain a newline or other control character",
            ));
        }
    }
    for (j, v) in app.volumes.iter().enumerate() {
        if let Some(why) = v.mount_dir.as_deref().and_then(mount_dir_problem) {
            out.push(Problem::new(format!("{p}.volumes[{j}].mount_dir"), why));
        }
    }
}

/// An env name as a problem path shows it: escaped (`A\nB`), cut.
pub fn env_name_shown(name: &str) -> String {
    let escaped: String = name.escape_debug().collect();
    clip(&escaped, crate::validate_size::MAX_ENV_NAME_BYTES)
}

/// Why `dir` cannot be a mount point in an app, if it cannot: it must be
/// absolute, below `/`, without `.` or `..` components, NUL or control
/// characters, and not on or under `/proc`, `/sys` or `/dev`.
pub fn mount_dir_problem(dir: &str) -> Option<String> {
    let shown = quoted(dir);
    let components: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    if !dir.starts_with('/') || components.is_empty() {
        return Some(format!("{shown} must be an absolute path below /"));
    }
    if components.iter().any(|c| *c == "." || *c == "..") {
        return Some(format!("{shown} must not have '.' or '..' components"));
    }
    if dir.chars().any(char::is_control) {
        return Some(format!(
            "{shown} must not contain NUL, newlines or other control characters"
        ));
    }
    if let Some(root) = FORBIDDEN_MOUNT_ROOTS.iter().find(|r| components[0] == **r) {
        return Some(format!(
            "{shown} is on or under /{root}, which the runtime owns; choose another directory"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VolumeMount;
    use crate::test_apps::app;

    fn problems(a: AppConfig) -> Vec<String> {
        crate::test_apps::problems(vec![a])
    }

    #[test]
    fn memory_over_one_tib_is_refused_and_its_bytes_fit_i64() {
        let mut a = app();
        a.resources.memory_kib = MAX_MEMORY_KIB;
        assert!(problems(a.clone()).is_empty());
        assert!(i64::try_from(MAX_MEMORY_KIB * 1024).is_ok());
        for kib in [MAX_MEMORY_KIB + 1, 1 << 54, u64::MAX] {
            a.resources.memory_kib = kib;
            assert_eq!(
                problems(a.clone()),
                [format!(
                    "apps[0].resources.memory_kib: must be at most 1073741824 (1 TiB) (got {kib})"
                )]
            );
        }
    }

    #[test]
    fn image_references_are_parsed() {
        for (image, want) in [
            ("..:latest", "apps[0].image: \"..:latest\" is not a valid image reference: local image name"),
            ("team/app:1", "apps[0].image: \"team/app:1\" is not a valid image reference: a local image name is one path component"),
            ("../hello:latest", "apps[0].image: \"../hello:latest\" is not a valid image reference: registry host must be"),
            ("r.io/Team/app:1", "apps[0].image: \"r.io/Team/app:1\" is not a valid image reference: repository must be lowercase"),
            ("r.io/app@sha256:12", "apps[0].image: \"r.io/app@sha256:12\" is not a valid image reference: digest must be"),
            ("r.io/app:b@d", "apps[0].image: \"r.io/app:b@d\" is not a valid image reference: digest must be"),
            ("r.io/app:-bad", "apps[0].image: \"r.io/app:-bad\" is not a valid image reference: tag must be"),
            ("r.io/a/../../x:1", "apps[0].image: \"r.io/a/../../x:1\" is not a valid image reference: repository must be"),
        ] {
            let mut a = app();
            a.image = image.into();
            let got = problems(a);
            assert_eq!(got.len(), 1, "{image}: {got:#?}");
            assert!(got[0].starts_with(want), "{image}: {got:#?}");
        }
        for good in [
            "hello",
            "hello:1.0",
            "127.0.0.1:5000/outpost/hello:multi",
            "vnc-labelled:latest",
        ] {
            let mut a = app();
            a.image = good.into();
            assert!(problems(a).is_empty(), "{good}");
        }
    }

    #[test]
    fn mount_dirs_on_kernel_file_systems_are_refused() {
        for dir in [
            "/proc",
            "/proc/sys",
            "//sys/",
            "/dev",
            "/dev/shm/x",
            "/sys/fs/cgroup",
        ] {
            let mut a = app();
            a.volumes = vec![VolumeMount {
                uuid: "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10".into(),
                generation: 0,
                name: None,
                mount_dir: Some(dir.into()),
                read_only: false,
            }];
            let got = problems(a);
            assert_eq!(got.len(), 1, "{dir}: {got:#?}");
            assert!(
                got[0].starts_with("apps[0].volumes[0].mount_dir: ")
                    && got[0].contains("the runtime owns"),
                "{dir}: {got:#?}"
            );
        }
        for (dir, want) in [
            ("data", "absolute"),
            ("/", "absolute"),
            ("/a/../proc", "'..'"),
            ("/a/./b", "'..'"),
            ("/a\nb", "control"),
            ("/a\0b", "control"),
        ] {
            let why = mount_dir_problem(dir).unwrap_or_default();
            assert!(why.contains(want), "{dir:?}: {why}");
        }
        for ok in ["/data", "/devices", "/proc2", "/srv/dev", "/var/lib/x/"] {
            assert_eq!(mount_dir_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn env_names_with_newlines_are_refused_with_an_escaped_path() {
        let mut a = app();
        a.env.insert("A\nB".into(), "x".into());
        a.env.insert("C\rD".into(), "x".into());
        a.env.insert("OK".into(), "multi\nline value".into());
        assert_eq!(
            problems(a),
            [
                "apps[0].env.A\\nB: a variable name must not contain a newline or other control character",
                "apps[0].env.C\\rD: a variable name must not contain a newline or other control character",
            ]
        );
    }
}
