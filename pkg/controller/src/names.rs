//! Device names: what is allowed, names made from serials, and suggestions
//! for a name that does not exist.

/// Longest device name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks an operator-chosen device name (letters, digits, `.`, `_`, `-`;
/// not a UUID-looking string, so names and UUIDs never collide).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "device name {name:?} must be 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "device name {name:?} has {c:?}: use letters, digits, '.', '_' and '-'"
        ));
    }
    if uuid::Uuid::parse_str(name).is_ok() {
        return Err(format!(
            "device name {name:?} looks like a UUID; pick another"
        ));
    }
    Ok(())
}

/// Checks a serial number as given by a device or an operator.
pub fn check_serial(serial: &str) -> Result<(), String> {
    if serial.trim().is_empty() || serial.len() > 256 || serial.chars().any(char::is_control) {
        return Err(format!(
            "serial {serial:?} must be 1 to 256 printable characters"
        ));
    }
    Ok(())
}

/// A valid name derived from a serial, not in `taken`.
pub fn name_from_serial(serial: &str, taken: &[String]) -> String {
    let mut base: String = serial
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NAME_LEN - 4)
        .collect();
    if base.is_empty() || check_name(&base).is_err() {
        base = format!(
            "device-{}",
            base.chars().take(MAX_NAME_LEN - 12).collect::<String>()
        );
    }
    let mut name = base.clone();
    let mut n = 2;
    while taken.iter().any(|t| t == &name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Up to three candidates close to `key` (edit distance, substring or UUID
/// prefix), most similar first.
pub fn suggest<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let key_l = key.to_lowercase();
    let mut scored: Vec<(usize, String)> = candidates
        .into_iter()
        .filter_map(|c| {
            let cl = c.to_lowercase();
            let d = edit_distance(&key_l, &cl);
            let close = d <= (c.len() / 3).max(2)
                || (!key_l.is_empty() && (cl.contains(&key_l) || key_l.contains(&cl)));
            close.then(|| (d, c.to_owned()))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("gw-1.lab_2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10").is_err());
        assert_eq!(name_from_serial("SN 1/2", &[]), "SN-1-2");
        assert_eq!(name_from_serial("x", &["x".into(), "x-2".into()]), "x-3");
        let uuidish = "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10";
        assert!(check_name(&name_from_serial(uuidish, &[])).is_ok());
    }

    #[test]
    fn suggestions() {
        let names = ["gateway-1", "gateway-2", "camera"];
        assert_eq!(suggest("gatway-1", names), vec!["gateway-1", "gateway-2"]);
        assert_eq!(suggest("cam", names), vec!["camera"]);
        assert!(suggest("zzzzzzzz", names).is_empty());
    }
}
