//! A repository's git history as input for PR mirroring
//! ([`smith_mutate::mirror_history`]): the commits reachable from `HEAD`,
//! newest first, with their messages and diffs.

use std::path::Path;

use smith_core::Result;
use smith_mutate::{parse_git_log, HistoryCommit, GIT_LOG_FORMAT};

/// Non-merge commits reachable from `HEAD` of the git repository at `repo`,
/// newest first, at most `max` of them (`None` = all).
///
/// [`smith_core::Error::Command`] if `git` cannot run or fails (not a repository, no
/// commits).
pub fn commits(repo: &Path, max: Option<usize>) -> Result<Vec<HistoryCommit>> {
    let count = max.map(|n| format!("--max-count={n}"));
    let mut args = vec![
        "log",
        "--no-merges",
        "--no-color",
        "--no-ext-diff",
        "-p",
        GIT_LOG_FORMAT,
    ];
    args.extend(count.as_deref());
    let log = crate::repo::git_stdout(repo, &args)?;
    Ok(parse_git_log(&log))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        crate::repo::git(dir, args).unwrap();
    }

    #[test]
    fn reads_commits_newest_first_with_diffs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        std::fs::write(d.join("m.py"), "x = 1\n").unwrap();
        git(d, &["add", "m.py"]);
        git(d, &["commit", "-q", "-m", "first"]);
        std::fs::write(d.join("m.py"), "x = 2\n").unwrap();
        git(d, &["commit", "-q", "-am", "second\n\nwith a body"]);

        let all = commits(d, None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].message, "second\n\nwith a body");
        assert_eq!(all[0].sha.len(), 40);
        let changed = all[0].diff.apply_to_text("m.py", "x = 1\n").unwrap();
        assert_eq!(changed, "x = 2\n");
        assert_eq!(commits(d, Some(1)).unwrap().len(), 1);

        let empty = tempfile::tempdir().unwrap();
        let err = commits(empty.path(), None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(" log --no-merges"), "{text}");
        assert!(text.contains(&empty.path().display().to_string()), "{text}");
    }
}
