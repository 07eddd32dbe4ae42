//! Resolving the image config's `user` against the rootfs's passwd/group.

use std::path::Path;

/// uid, gid and supplementary gids for `user` (`""`, `name`, `uid`,
/// `name:group`, `uid:gid`), looked up in `rootfs/etc/passwd` and `/etc/group`.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), String> {
    let user = user.trim();
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let entries = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(':').map(str::to_owned).collect())
            .collect()
    };
    let pw = entries(&passwd);
    let gr = entries(&group);
    let (uid, default_gid, name) = match u.parse::<u32>() {
        Ok(uid) => {
            let row = pw
                .iter()
                .find(|r| r.get(2).and_then(|x| x.parse::<u32>().ok()) == Some(uid));
            let gid = row
                .and_then(|r| r.get(3))
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            (uid, gid, row.and_then(|r| r.first().cloned()))
        }
        Err(_) => {
            let row = pw
                .iter()
                .find(|r| r.first().map(String::as_str) == Some(u))
                .ok_or_else(|| format!("user {u:?} is not in the image's /etc/passwd"))?;
            let uid = row
                .get(2)
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| format!("bad passwd entry for {u:?}"))?;
            let gid = row.get(3).and_then(|x| x.parse().ok()).unwrap_or(0);
            (uid, gid, Some(u.to_owned()))
        }
    };
    let gid = match g {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => gr
                .iter()
                .find(|r| r.first().map(String::as_str) == Some(g))
                .and_then(|r| r.get(2))
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
        },
    };
    let extra = match (&name, g) {
        (Some(name), None) => gr
            .iter()
            .filter(|r| {
                r.get(3)
                    .map(|m| m.split(',').any(|x| x == name))
                    .unwrap_or(false)
            })
            .filter_map(|r| r.get(2).and_then(|x| x.parse().ok()))
            .filter(|x| *x != gid)
            .collect(),
        _ => Vec::new(),
    };
    Ok((uid, gid, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_numbers_and_groups() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nvideo:x:44:app\n",
        )
        .unwrap();
        let r = |u| resolve_user(t.path(), u);
        assert_eq!(r("").unwrap(), (0, 0, vec![]));
        assert_eq!(r("app").unwrap(), (1000, 1000, vec![44]));
        assert_eq!(r("1000").unwrap(), (1000, 1000, vec![44]));
        assert_eq!(r("app:video").unwrap(), (1000, 44, vec![]));
        assert_eq!(r("5:6").unwrap(), (5, 6, vec![]));
        assert!(r("nobody").unwrap_err().contains("nobody"));
        assert!(r("app:nogroup").is_err());
    }
}
