//! Combined bugs (`combine/file`, `combine/module`): several validated
//! candidates merged into one harder task.
//!
//! Input is candidates that validation kept (each breaks tests on its own).
//! [`combine`] picks deterministic, seeded groups of 2..N of them whose
//! changes do not overlap or touch, from one file (`combine/file`) or from
//! several files of one package directory (`combine/module`), and merges
//! their patches into one. Generating combinations runs nothing; the caller
//! validates them again and keeps a combination only when it breaks tests
//! and [`components_contribute`] holds.

use std::collections::{BTreeMap, BTreeSet};

use smith_core::{
    Candidate, Error, FileChange, LineKind, Patch, Result, TestId, Validation, Verdict,
};

use smith_core::rng::Rng;

/// Which candidates may be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CombineScope {
    /// Components change the same file (`combine/file`).
    File,
    /// Components change different files of the same package directory
    /// (`combine/module`).
    Module,
}

impl CombineScope {
    /// The strategy name written into combined candidates.
    pub fn strategy(self) -> &'static str {
        match self {
            CombineScope::File => "combine/file",
            CombineScope::Module => "combine/module",
        }
    }

    /// The group a file belongs to: the file itself, or its directory.
    fn group_of(self, path: &str) -> String {
        match self {
            CombineScope::File => path.to_string(),
            CombineScope::Module => path.rsplit_once('/').map_or("", |(d, _)| d).to_string(),
        }
    }
}

/// How many combinations [`combine`] makes and of what size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CombineOptions {
    /// File or module scope.
    pub scope: CombineScope,
    /// Fewest components in a combination (at least 2).
    pub min_components: usize,
    /// Most components in a combination.
    pub max_components: usize,
    /// At most this many combinations per file (or per package directory).
    pub max_per_group: usize,
    /// Seed for every choice.
    pub seed: u64,
}

impl Default for CombineOptions {
    fn default() -> Self {
        CombineOptions {
            scope: CombineScope::File,
            min_components: 2,
            max_components: 3,
            max_per_group: 10,
            seed: 0,
        }
    }
}

/// One combined candidate and the ids of the candidates it merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combination {
    /// The merged bug (strategy `combine/file` or `combine/module`).
    pub candidate: Candidate,
    /// Component candidate ids, sorted.
    pub components: Vec<String>,
}

/// One contiguous change of a file on the old side: lines
/// `start..start + removed` (0-based) are replaced by `added`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LineChange {
    start: usize,
    removed: usize,
    added: Vec<String>,
}

/// A kept candidate ready to be combined: its changes per file.
#[derive(Debug, Clone)]
struct Component<'a> {
    candidate: &'a Candidate,
    changes: BTreeMap<String, Vec<LineChange>>,
}

impl Component<'_> {
    /// Whether two components can be merged: different entities, and no
    /// change of one overlaps or touches (is adjacent to) a change of the
    /// other in any file.
    fn compatible(&self, other: &Component<'_>) -> bool {
        if self
            .candidate
            .entities
            .iter()
            .any(|e| other.candidate.entities.contains(e))
        {
            return false;
        }
        self.changes.iter().all(|(path, mine)| {
            other.changes.get(path).is_none_or(|theirs| {
                mine.iter()
                    .all(|a| theirs.iter().all(|b| separated(a, b) && separated(b, a)))
            })
        })
    }
}

/// `a` ends before `b` starts with at least one untouched line between
/// them, or `b` ends before `a` starts likewise (checked both ways by the
/// caller). A pure insertion occupies the gap before its start line.
fn separated(a: &LineChange, b: &LineChange) -> bool {
    a.start + a.removed < b.start || b.start + b.removed < a.start
}

/// The changed runs of every file of `patch`, from its hunks.
fn line_changes(patch: &Patch) -> Result<BTreeMap<String, Vec<LineChange>>> {
    let mut out = BTreeMap::new();
    for file in patch.files()? {
        if file.old_path.is_none() || file.new_path.is_none() || file.old_path != file.new_path {
            return Err(Error::invalid(
                "combine component",
                format!("{}: only modified files can be combined", file.path()),
            ));
        }
        let mut changes: Vec<LineChange> = Vec::new();
        for hunk in &file.hunks {
            let mut old_line = hunk.old_start.saturating_sub(1);
            let mut open: Option<LineChange> = None;
            for line in &hunk.lines {
                match line.kind {
                    LineKind::Context => {
                        changes.extend(open.take());
                        old_line += 1;
                    }
                    LineKind::Removed => {
                        open.get_or_insert_with(|| LineChange {
                            start: old_line,
                            removed: 0,
                            added: Vec::new(),
                        })
                        .removed += 1;
                        old_line += 1;
                    }
                    LineKind::Added => open
                        .get_or_insert_with(|| LineChange {
                            start: old_line,
                            removed: 0,
                            added: Vec::new(),
                        })
                        .added
                        .push(line.text.clone()),
                }
            }
            changes.extend(open.take());
        }
        out.insert(file.path().to_string(), changes);
    }
    Ok(out)
}

/// Apply non-overlapping line changes to `text` in one pass.
///
/// The changes come from different patches made against the same clean
/// file, so they are spliced by line number rather than applied patch after
/// patch: a later patch's context lines may include lines an earlier one
/// changed, which would make hunk matching fail for no real conflict.
fn splice(path: &str, text: &str, changes: &[&LineChange]) -> Result<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut sorted: Vec<&LineChange> = changes.to_vec();
    sorted.sort_by_key(|c| (c.start, c.removed));
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0usize;
    for change in sorted {
        if change.start < at || change.start + change.removed > lines.len() {
            return Err(Error::PatchApply {
                path: path.into(),
                reason: format!(
                    "changes at line {} overlap or run past the end",
                    change.start + 1
                ),
            });
        }
        for line in &lines[at..change.start] {
            out.push_str(line);
        }
        for line in &change.added {
            out.push_str(line);
        }
        at = change.start + change.removed;
    }
    for line in &lines[at..] {
        out.push_str(line);
    }
    Ok(out)
}

/// Merge the patches of `components` (all made against the clean `sources`)
/// into one patch: every file changed by any component, with all their
/// changes, diffed once against the clean text.
///
/// Fails when a file is missing from `sources`, a patch is not a plain
/// modification, or changes overlap.
pub fn merge_patches(
    components: &[&Candidate],
    sources: &BTreeMap<String, String>,
) -> Result<Patch> {
    let mut per_file: BTreeMap<String, Vec<LineChange>> = BTreeMap::new();
    for c in components {
        for (path, changes) in line_changes(&c.patch)? {
            per_file.entry(path).or_default().extend(changes);
        }
    }
    let mut file_changes = Vec::new();
    for (path, changes) in &per_file {
        let before = sources.get(path).ok_or_else(|| Error::PatchApply {
            path: path.into(),
            reason: "no clean source given for this file".into(),
        })?;
        let refs: Vec<&LineChange> = changes.iter().collect();
        let after = splice(path, before, &refs)?;
        file_changes.push(FileChange::modified(path.clone(), before.clone(), after));
    }
    Ok(Patch::from_changes(&file_changes))
}

/// Kept candidates paired with their F2P sets: the input of [`combine`].
///
/// Candidates without a `Kept` validation are left out.
pub fn kept_with_f2p<'a>(
    candidates: &'a [Candidate],
    validations: &[Validation],
) -> Vec<(&'a Candidate, BTreeSet<TestId>)> {
    let by_id: BTreeMap<&str, &Validation> = validations
        .iter()
        .map(|v| (v.candidate_id.as_str(), v))
        .collect();
    candidates
        .iter()
        .filter_map(|c| match by_id.get(c.id.as_str()).map(|v| &v.verdict) {
            Some(Verdict::Kept { fail_to_pass, .. }) => Some((c, fail_to_pass.clone())),
            _ => None,
        })
        .collect()
}

/// Combine kept candidates into multi-bug candidates.
///
/// `kept` are candidates validation kept (see [`kept_with_f2p`] to build
/// the list from records; only the candidates are used here), `sources`
/// the clean text of every file they touch. Candidates are grouped by file
/// or package directory (per `options.scope`); within a group, groups of
/// `min_components..=max_components` pairwise compatible candidates are
/// drawn with a seeded generator (components touch different entities and
/// their changed lines neither overlap nor touch), each set at most once,
/// at most `max_per_group` per group. In module scope a combination spans
/// at least two files, and candidates touching several directories are not
/// used. The result is sorted by group then by component ids, and is the
/// same for the same input and seed.
pub fn combine(
    kept: &[&Candidate],
    sources: &BTreeMap<String, String>,
    options: &CombineOptions,
) -> Result<Vec<Combination>> {
    if options.min_components < 2 || options.max_components < options.min_components {
        return Err(Error::invalid(
            "combine sizes",
            format!(
                "need 2 <= min ({}) <= max ({})",
                options.min_components, options.max_components
            ),
        ));
    }
    let groups = group_components(kept, options.scope);
    let mut out = Vec::new();
    for (key, members) in &groups {
        let mut rng = Rng::new(options.seed ^ smith_core::stable_hash(&[key.as_bytes()]) as u64);
        let mut seen: BTreeSet<Vec<usize>> = BTreeSet::new();
        let mut made: Vec<Combination> = Vec::new();
        // Bounded attempts: a group with few compatible members cannot
        // yield `max_per_group` distinct sets, and must not loop forever.
        let attempts = options.max_per_group * 8 + 8;
        for _ in 0..attempts {
            if made.len() >= options.max_per_group || members.len() < options.min_components {
                break;
            }
            let span = options.max_components - options.min_components + 1;
            let want = options.min_components + rng.below(span);
            let mut order: Vec<usize> = (0..members.len()).collect();
            rng.shuffle(&mut order);
            let mut chosen: Vec<usize> = Vec::new();
            for i in order {
                if chosen.len() == want {
                    break;
                }
                if chosen.iter().all(|j| members[*j].compatible(&members[i])) {
                    chosen.push(i);
                }
            }
            if chosen.len() < options.min_components {
                continue;
            }
            chosen.sort_unstable();
            if options.scope == CombineScope::Module {
                let files: BTreeSet<&String> = chosen
                    .iter()
                    .flat_map(|i| members[*i].changes.keys())
                    .collect();
                if files.len() < 2 {
                    continue;
                }
            }
            if !seen.insert(chosen.clone()) {
                continue;
            }
            let parts: Vec<&Candidate> = chosen.iter().map(|i| members[*i].candidate).collect();
            let Ok(patch) = merge_patches(&parts, sources) else {
                continue;
            };
            made.push(combination(&parts, patch, options.scope));
        }
        made.sort_by(|a, b| a.components.cmp(&b.components));
        out.extend(made);
    }
    Ok(out)
}

/// The candidates (each once, by id) whose patches parse and change lines,
/// grouped by the one file or directory of `scope` they touch; a candidate
/// spanning several groups is left out.
fn group_components<'a>(
    kept: &[&'a Candidate],
    scope: CombineScope,
) -> BTreeMap<String, Vec<Component<'a>>> {
    let mut groups: BTreeMap<String, Vec<Component<'a>>> = BTreeMap::new();
    let mut sorted: Vec<&Candidate> = kept.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted.dedup_by(|a, b| a.id == b.id);
    for candidate in sorted {
        let Ok(changes) = line_changes(&candidate.patch) else {
            continue;
        };
        let keys: BTreeSet<String> = changes.keys().map(|p| scope.group_of(p)).collect();
        if keys.len() != 1 || changes.values().all(Vec::is_empty) {
            continue;
        }
        let key = keys.into_iter().next().unwrap_or_default();
        groups
            .entry(key)
            .or_default()
            .push(Component { candidate, changes });
    }
    groups
}

fn combination(parts: &[&Candidate], patch: Patch, scope: CombineScope) -> Combination {
    let first = parts[0];
    let mut entities: Vec<String> = parts.iter().flat_map(|c| c.entities.clone()).collect();
    entities.sort();
    entities.dedup();
    let mut components: Vec<String> = parts.iter().map(|c| c.id.clone()).collect();
    components.sort();
    let description = parts
        .iter()
        .map(|c| c.description.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Combination {
        candidate: Candidate::new(
            &first.repo_ref(),
            scope.strategy(),
            entities,
            format!("{} bugs combined: {description}", parts.len()),
            patch,
        ),
        components,
    }
}

/// Whether every component of a combination still contributes failures of
/// its own.
///
/// Precisely: for each component `i`, let `own(i)` be the tests in its own
/// F2P set that no other component's F2P set contains. The combination
/// passes when its F2P set is non-empty and, for every component,
/// `own(i) ∩ combined_f2p` is non-empty — some test that only this
/// component broke on its own still fails with all bugs applied. A
/// component whose failures are all explained by the others (or masked in
/// the combination) makes the combination no harder than fewer bugs, so it
/// is rejected. Fewer than two components never pass.
///
/// ```
/// use std::collections::BTreeSet;
/// use smith_core::TestId;
/// use smith_mutate::components_contribute;
/// let set = |ids: &[&str]| ids.iter().map(|s| TestId::from(*s)).collect::<BTreeSet<_>>();
/// let (a, b) = (set(&["t1", "t2"]), set(&["t2", "t3"]));
/// assert!(components_contribute(&set(&["t1", "t2", "t3"]), &[a.clone(), b.clone()]));
/// // b's only own failure (t3) no longer fails in the combination.
/// assert!(!components_contribute(&set(&["t1", "t2"]), &[a.clone(), b]));
/// // c breaks nothing a does not.
/// assert!(!components_contribute(&set(&["t1", "t2"]), &[a, set(&["t1"])]));
/// ```
pub fn components_contribute(
    combined_f2p: &BTreeSet<TestId>,
    component_f2ps: &[BTreeSet<TestId>],
) -> bool {
    if combined_f2p.is_empty() || component_f2ps.len() < 2 {
        return false;
    }
    component_f2ps.iter().enumerate().all(|(i, mine)| {
        mine.iter().any(|t| {
            combined_f2p.contains(t)
                && component_f2ps
                    .iter()
                    .enumerate()
                    .all(|(j, other)| j == i || !other.contains(t))
        })
    })
}
