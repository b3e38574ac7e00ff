//! Candidate generation: read files, extract entities, run mutators, keep
//! only mutations that re-parse and change the AST, and turn them into
//! [`Candidate`]s — in parallel over files, deterministic in output.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rayon::prelude::*;
use ruff_python_ast::ModModule;
use ruff_python_parser::Parsed;
use smith_core::{
    apply_edits, join_rel, stable_hash, Candidate, Edit, Entity, Error, FileChange, LineKind,
    Mutation, Mutator, Patch, RepoRef, Result, Shard, SourceFile,
};

use crate::entities::{entities_with_defs, EntityFilter};
use crate::mutators::{ActiveFile, CachedParse};
use smith_core::python::{changes_ast, AstChange};

/// Options for [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Seed for every random choice; the same seed gives the same candidates.
    pub seed: u64,
    /// Only run the mutators with these names (`None` = all given).
    pub strategies: Option<Vec<String>>,
    /// At most this many candidates per (entity, strategy), chosen by seed
    /// (`None` = no limit). Default 3.
    pub max_per_entity: Option<usize>,
    /// At most this many candidates in all, the first in output order
    /// (applied before sharding, so shards partition the capped set).
    pub max_candidates: Option<usize>,
    /// Keep only candidates whose id falls in this shard.
    pub shard: Shard,
    /// Which entities to mutate.
    pub entity_filter: EntityFilter,
    /// Worker threads (`None` = one per core).
    pub threads: Option<usize>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 0,
            strategies: None,
            max_per_entity: Some(3),
            max_candidates: None,
            shard: Shard::ALL,
            entity_filter: EntityFilter::default(),
            threads: None,
        }
    }
}

/// A file [`generate`] could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedFile {
    /// Repo-relative path.
    pub path: String,
    /// Why: unreadable, not UTF-8, syntax error, too big, too deeply nested.
    pub reason: String,
}

/// What happened to one strategy's proposals.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MutatorStats {
    /// Mutations the mutator returned.
    pub proposed: usize,
    /// Dropped: the mutated file does not parse.
    pub unparsable: usize,
    /// Dropped: the AST did not change (a formatting-only or no-op edit).
    pub unchanged: usize,
    /// Dropped: the edits overlapped or fell outside the file.
    pub invalid_edit: usize,
    /// Dropped: the same patch was already emitted.
    pub duplicate: usize,
    /// Not examined: the entity already had `max_per_entity` candidates.
    pub capped: usize,
    /// Turned into candidates (before `max_candidates` and sharding).
    pub emitted: usize,
}

impl MutatorStats {
    /// Proposals examined and dropped as invalid or no-ops.
    pub fn dropped(&self) -> usize {
        self.unparsable + self.unchanged + self.invalid_edit + self.duplicate
    }

    fn add(&mut self, other: &MutatorStats) {
        self.proposed += other.proposed;
        self.unparsable += other.unparsable;
        self.unchanged += other.unchanged;
        self.invalid_edit += other.invalid_edit;
        self.duplicate += other.duplicate;
        self.capped += other.capped;
        self.emitted += other.emitted;
    }
}

/// The result of [`generate`].
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// Candidates in deterministic order: by file, entity, then strategy.
    pub candidates: Vec<Candidate>,
    /// Files that could not be used.
    pub skipped: Vec<SkippedFile>,
    /// Per strategy: proposed, dropped, emitted.
    pub stats: BTreeMap<String, MutatorStats>,
    /// Files read and parsed.
    pub files: usize,
    /// Entities that passed the filter.
    pub entities: usize,
}

#[derive(Default)]
struct FileResult {
    candidates: Vec<Candidate>,
    skipped: Option<SkippedFile>,
    stats: BTreeMap<String, MutatorStats>,
    entities: usize,
}

/// Stack for worker threads: AST walks recurse once per nesting level.
const WORKER_STACK: usize = 256 << 20;

/// Read `files` under `root`, extract entities, run `mutators` on each,
/// keep only mutations that re-parse and change the AST, and turn each
/// into a [`Candidate`] of `repo`.
///
/// ```
/// # fn main() -> smith_core::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("calc.py"), "def add(a, b):\n    return a + b\n").unwrap();
/// let out = smith_mutate::generate(dir.path(), &smith_core::RepoRef::new("acme/calc", "0123abcd"), &["calc.py".into()],
///     &smith_mutate::procedural_mutators(), &Default::default())?;
/// assert!(out.candidates.iter().any(|c| c.strategy == "func_pm_op_change"));
/// # Ok(()) }
/// ```
pub fn generate(
    root: &Path,
    repo: &RepoRef,
    files: &[String],
    mutators: &[Box<dyn Mutator>],
    options: &GenerateOptions,
) -> Result<Generated> {
    let selected: Vec<&dyn Mutator> = match &options.strategies {
        None => mutators.iter().map(|m| m.as_ref()).collect(),
        Some(names) => {
            let known: Vec<&str> = mutators.iter().map(|m| m.name()).collect();
            if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
                return Err(Error::invalid(
                    "strategy",
                    format!("`{bad}` is not one of: {}", known.join(", ")),
                ));
            }
            mutators
                .iter()
                .filter(|m| names.iter().any(|n| n == m.name()))
                .map(|m| m.as_ref())
                .collect()
        }
    };
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(WORKER_STACK)
        .thread_name(|i| format!("smith-mutate-{i}"))
        .build()
        .map_err(|e| Error::invalid_source("threads", "", e))?;
    let results: Vec<FileResult> = pool.install(|| {
        files
            .par_iter()
            .map(|path| process_file(root, repo, path, &selected, options))
            .collect()
    });

    let mut out = Generated::default();
    let mut seen = HashSet::new();
    for result in results {
        match result.skipped {
            Some(skip) => out.skipped.push(skip),
            None => out.files += 1,
        }
        out.entities += result.entities;
        for (name, stats) in result.stats {
            out.stats.entry(name).or_default().add(&stats);
        }
        for c in result.candidates {
            if seen.insert(c.id.clone()) {
                out.candidates.push(c);
            }
        }
    }
    if let Some(max) = options.max_candidates {
        out.candidates.truncate(max);
    }
    out.candidates.retain(|c| options.shard.contains(&c.id));
    Ok(out)
}

fn read_source(root: &Path, path: &str) -> std::result::Result<SourceFile, String> {
    let bytes = std::fs::read(join_rel(root, path)).map_err(|e| format!("unreadable: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(SourceFile::new(path, text))
}

/// The seed of one (file, entity, strategy), independent of run order.
fn site_seed(seed: u64, entity: &Entity, strategy: &str) -> u64 {
    stable_hash(&[
        &seed.to_le_bytes(),
        entity.file.as_bytes(),
        entity.qualname.as_bytes(),
        strategy.as_bytes(),
    ]) as u64
}

fn process_file(
    root: &Path,
    repo: &RepoRef,
    path: &str,
    mutators: &[&dyn Mutator],
    options: &GenerateOptions,
) -> FileResult {
    let skip = |reason: String| {
        tracing::debug!(path, %reason, "skipping file");
        FileResult {
            skipped: Some(SkippedFile {
                path: path.to_string(),
                reason,
            }),
            ..Default::default()
        }
    };
    let file = match read_source(root, path) {
        Ok(file) => file,
        Err(reason) => return skip(reason),
    };
    let parsed = CachedParse::parse(&file, false);
    let module = match parsed.module() {
        Ok(module) => module,
        Err(reason) => return skip(reason.to_string()),
    };
    let _active = ActiveFile::set(&file, parsed.clone());
    let lines = LineIndex::new(&file.text);
    let entities: Vec<Entity> = entities_with_defs(&file, module)
        .into_iter()
        .map(|(e, _)| e)
        .filter(|e| options.entity_filter.accepts(e))
        .collect();
    let mut result = FileResult {
        entities: entities.len(),
        ..Default::default()
    };
    let cap = options.max_per_entity.unwrap_or(usize::MAX);
    let mut seen = HashSet::new();
    for entity in &entities {
        let mut region = Region::new(&file.text, entity);
        for mutator in mutators {
            let name = mutator.name();
            let mutations = mutator.mutate(&file, entity, site_seed(options.seed, entity, name));
            let stats = result.stats.entry(name.to_string()).or_default();
            stats.proposed += mutations.len();
            let mut kept = 0;
            for (i, mutation) in mutations.iter().enumerate() {
                if kept == cap {
                    stats.capped += mutations.len() - i;
                    break;
                }
                let patch = match bug_patch(&file, module, &lines, &mut region, mutation) {
                    Ok(patch) => patch,
                    Err(dropped) => {
                        stats.count_dropped(dropped);
                        continue;
                    }
                };
                let candidate = Candidate::new(
                    repo,
                    mutation.strategy.as_str(),
                    mutation_entities(entity, mutation),
                    mutation.description.as_str(),
                    patch,
                );
                if seen.insert(candidate.id.clone()) {
                    kept += 1;
                    stats.emitted += 1;
                    result.candidates.push(candidate);
                } else {
                    stats.duplicate += 1;
                }
            }
        }
    }
    result
}

/// The entities a mutation of `entity` touches: its own list, or `entity`.
fn mutation_entities(entity: &Entity, mutation: &Mutation) -> Vec<String> {
    if mutation.entities.is_empty() {
        vec![entity.id()]
    } else {
        mutation.entities.clone()
    }
}

impl MutatorStats {
    /// Count a mutation dropped before it became a candidate, by why.
    fn count_dropped(&mut self, why: AstChange) {
        match why {
            AstChange::Unparsable => self.unparsable += 1,
            AstChange::Unchanged => self.unchanged += 1,
            _ => self.invalid_edit += 1,
        }
    }
}

/// Byte offsets of line starts, for line numbers without rescanning.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        LineIndex(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }

    /// 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|s| *s <= offset) - 1
    }

    /// First byte of 0-based `line`, or `len` past the last line.
    fn start(&self, line: usize, len: usize) -> usize {
        self.0.get(line).copied().unwrap_or(len)
    }
}

/// An entity's full lines and, parsed once, the AST of those lines on their
/// own. Mutations inside it are checked by re-parsing just this region, so
/// the cost of a candidate does not grow with the size of its file.
struct Region {
    start: usize,
    end: usize,
    /// The lines are indented: wrap them in a block so they parse alone.
    indented: bool,
    original: Option<Option<Parsed<ModModule>>>,
}

impl Region {
    fn new(text: &str, entity: &Entity) -> Self {
        let start = text[..entity.range.start].rfind('\n').map_or(0, |i| i + 1);
        let end = text[entity.range.end..]
            .find('\n')
            .map_or(text.len(), |i| entity.range.end + i + 1);
        Region {
            start,
            end,
            indented: start < entity.range.start,
            original: None,
        }
    }

    fn snippet(&self, lines: &str) -> String {
        if self.indented {
            format!("if True:\n{lines}")
        } else {
            lines.to_string()
        }
    }

    fn original(&mut self, text: &str) -> Option<&ModModule> {
        if self.original.is_none() {
            let snippet = self.snippet(&text[self.start..self.end]);
            self.original = Some(ruff_python_parser::parse_module(&snippet).ok());
        }
        self.original
            .as_ref()
            .and_then(|p| p.as_ref())
            .map(Parsed::syntax)
    }
}

/// The patch planting `mutation`, or why it is dropped (`AstChange::Changed`
/// stands for invalid edits here).
fn bug_patch(
    file: &SourceFile,
    module: &ModModule,
    lines: &LineIndex,
    region: &mut Region,
    mutation: &Mutation,
) -> std::result::Result<Patch, AstChange> {
    let text = file.text.as_str();
    let inside = mutation
        .edits
        .iter()
        .all(|e| region.start <= e.range.start && e.range.end <= region.end);
    if inside && region.original(text).is_some() {
        let shifted: Vec<Edit> = mutation
            .edits
            .iter()
            .map(|e| {
                Edit::replacement(
                    e.content.clone(),
                    e.range.start - region.start,
                    e.range.end - region.start,
                )
            })
            .collect();
        let new_lines = apply_edits(&text[region.start..region.end], &shifted)
            .map_err(|_| AstChange::Changed)?;
        let snippet = region.snippet(&new_lines);
        let original = region.original(text).expect("checked above");
        match changes_ast(original, &snippet) {
            AstChange::Changed => {}
            other => return Err(other),
        }
        if let Some(patch) = window_patch(file, lines, region, &new_lines) {
            return Ok(patch);
        }
        let after = format!(
            "{}{new_lines}{}",
            &text[..region.start],
            &text[region.end..]
        );
        return Ok(Patch::from_changes(&[FileChange::modified(
            file.path.as_str(),
            text,
            after,
        )]));
    }
    let after = mutation.apply(text).map_err(|_| AstChange::Changed)?;
    match changes_ast(module, &after) {
        AstChange::Changed => Ok(Patch::from_changes(&[FileChange::modified(
            file.path.as_str(),
            text,
            after,
        )])),
        other => Err(other),
    }
}

/// Lines of unchanged text diffed around a region: enough that the diff's
/// three context lines never run into the window's edge.
const WINDOW_MARGIN: usize = 6;

/// The unified diff of replacing the region's lines with `new_lines`, made
/// from a window around the region instead of the whole file; `None` if a
/// hunk's context reaches the window's edge (then the whole file is diffed).
fn window_patch(
    file: &SourceFile,
    lines: &LineIndex,
    region: &Region,
    new_lines: &str,
) -> Option<Patch> {
    let text = file.text.as_str();
    let first = lines.line_of(region.start);
    let last = lines.line_of(region.end.saturating_sub(1).max(region.start));
    let from_line = first.saturating_sub(WINDOW_MARGIN);
    let from = lines.start(from_line, text.len());
    let to = lines.start(last + 1 + WINDOW_MARGIN, text.len());
    let before = &text[from..to];
    let after = format!(
        "{}{new_lines}{}",
        &text[from..region.start],
        &text[region.end..to]
    );
    let window = Patch::from_changes(&[FileChange::modified(file.path.as_str(), before, after)]);
    let at_top = from_line == 0;
    let at_bottom = to == text.len();
    for hunk in window.files().ok()?.iter().flat_map(|f| f.hunks.iter()) {
        let leading = hunk
            .lines
            .iter()
            .take_while(|l| l.kind == LineKind::Context)
            .count();
        let trailing = hunk
            .lines
            .iter()
            .rev()
            .take_while(|l| l.kind == LineKind::Context)
            .count();
        if (leading < 3 && !at_top) || (trailing < 3 && !at_bottom) {
            return None;
        }
    }
    if from_line == 0 {
        return Some(window);
    }
    let mut shifted = String::with_capacity(window.as_str().len());
    for line in window.as_str().split_inclusive('\n') {
        match line
            .strip_prefix("@@ -")
            .and_then(|rest| shift_header(rest, from_line))
        {
            Some(header) => shifted.push_str(&header),
            None => shifted.push_str(line),
        }
    }
    Some(Patch::from_text(shifted))
}

/// `a,b +c,d @@\n` with `offset` added to both starts, as a full header.
fn shift_header(rest: &str, offset: usize) -> Option<String> {
    let (ranges, tail) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let shift = |r: &str| -> Option<String> {
        let (start, len) = r.split_once(',')?;
        Some(format!("{},{len}", start.parse::<usize>().ok()? + offset))
    };
    Some(format!("@@ -{} +{} @@{tail}", shift(old)?, shift(new)?))
}
