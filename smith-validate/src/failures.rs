//! Cutting the failure output of particular tests out of a pytest log, for
//! [`Validation::log`](smith_core::Validation): issue writers describe the
//! symptom from it.

use std::collections::BTreeMap;

use smith_core::TestId;

/// Default budget for a failure excerpt, in bytes.
pub const FAILURE_LOG_BYTES: usize = 8 * 1024;

/// The sections of a pytest log's FAILURES and ERRORS blocks, by headline
/// (`test_name[param]`, `Class.test_name`, `ERROR at setup of test_name`,
/// `ERROR collecting tests/test_x.py`, `Class.test (i=1)` for subtests).
fn sections(log: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in log.lines() {
        if line.starts_with("====") {
            out.extend(current.take());
            continue;
        }
        if let Some(head) = headline(line) {
            out.extend(current.take());
            current = Some((head.to_string(), String::new()));
            continue;
        }
        if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.extend(current);
    out
}

/// `____ name ____` → `name`.
fn headline(line: &str) -> Option<&str> {
    let inner = line.strip_prefix("___")?.strip_suffix("___")?;
    let inner = inner.trim_matches('_');
    let inner = inner.strip_prefix(' ')?.strip_suffix(' ')?;
    (!inner.is_empty()).then_some(inner)
}

/// The headline pytest prints for a node id: the part after the file, with
/// `::` between classes written as `.`.
fn test_headline(id: &TestId) -> String {
    let s = id.as_str();
    match s.split_once("::") {
        Some((_, rest)) => {
            // Only split on `::` outside the parameter brackets.
            let (name, params) = match rest.find('[') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            format!("{}{}", name.replace("::", "."), params)
        }
        None => s.to_string(),
    }
}

/// The failure sections of `tests` from `log`, joined and cut to about
/// `budget` bytes. Falls back to the log's short-summary lines that name the
/// tests, and then to the log's tail, so an issue writer always has
/// something to work from.
pub fn failure_excerpt(log: &str, tests: &[&TestId], budget: usize) -> String {
    let sections = sections(log);
    let mut by_test: BTreeMap<&TestId, Vec<String>> = BTreeMap::new();
    for test in tests {
        let head = test_headline(test);
        let file = test.file();
        for (h, body) in &sections {
            let hit = *h == head
                || h.strip_prefix(head.as_str())
                    .is_some_and(|r| r.starts_with(" ("))
                || h.strip_prefix("ERROR at setup of ") == Some(head.as_str())
                || h.strip_prefix("ERROR at teardown of ") == Some(head.as_str())
                || h.strip_prefix("ERROR collecting ") == Some(file);
            if hit {
                by_test
                    .entry(test)
                    .or_default()
                    .push(format!("____ {h} ____\n{body}"));
            }
        }
    }
    let mut out = String::new();
    if by_test.is_empty() {
        for line in log.lines() {
            if tests.iter().any(|t| line.contains(t.as_str()))
                && (line.starts_with("FAILED ") || line.starts_with("ERROR "))
            {
                out.push_str(line);
                out.push('\n');
            }
        }
        if out.is_empty() {
            out = crate::pytest::tail(log, budget);
        }
        return cut(&out, budget);
    }
    let share = (budget / by_test.len().max(1)).max(1024);
    for (_, parts) in by_test {
        let joined = parts.concat();
        out.push_str(&cut(&joined, share));
    }
    cut(&out, budget)
}

/// At most `n` bytes of `s`: its head and tail with a marker between.
fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut head = n / 3;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - (n - head);
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}\n[...]\n{}", &s[..head], &s[tail..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headlines_follow_pytest() {
        assert_eq!(
            test_headline(&TestId::from("t/x.py::A::test_b[p::q]")),
            "A.test_b[p::q]"
        );
        assert_eq!(headline("____ A.b ____"), Some("A.b"));
        assert_eq!(headline("plain"), None);
    }

    #[test]
    fn cut_keeps_both_ends() {
        let s = "a".repeat(100) + &"b".repeat(100);
        let c = cut(&s, 50);
        assert!(c.starts_with('a') && c.ends_with('b') && c.len() < 70);
    }
}
