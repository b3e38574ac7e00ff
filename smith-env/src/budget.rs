//! Resource budgets for a command's whole process tree, and a way to end
//! every process of it.
//!
//! A per-process cap (`RLIMIT_AS`) does not hold a test that forks: two
//! children may each take the whole cap. Where the machine lets smith make
//! control groups (cgroup v2 with the `memory` and `pids` controllers, or
//! the v1 `memory` and `pids` hierarchies, as root or with delegation),
//! every command gets a group of its own ([`Lease`]): its memory and its
//! number of processes are counted over the whole tree, and when the
//! command ends every process still in the group is killed, whatever
//! session or process group it moved to. Elsewhere the sandboxes fall back
//! to rlimits: `RLIMIT_AS` per process, and `RLIMIT_NPROC` inside
//! bubblewrap's user namespace (which counts the namespace's processes
//! only for a caller that is not root: the kernel never applies
//! `RLIMIT_NPROC` to processes of the host's uid 0).
//!
//! Groups are named `smith-<pid>-<pid namespace>-<n>` after the smith
//! process that made them; groups of processes that no longer exist (a
//! killed run) are emptied and removed the first time a later run in the
//! same PID namespace looks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use smith_core::{Error, Result};

/// Processes (threads included) one command's tree may hold at once by
/// default: far more than a test suite starts, few enough that a fork bomb
/// stops long before the machine does.
pub const DEFAULT_PROCESS_LIMIT: u64 = 1024;

/// Limits for one command's whole process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of memory: the tree's total where control groups are
    /// available, and every process's address space (`RLIMIT_AS`) always.
    pub memory: Option<u64>,
    /// Processes and threads the tree may hold at once.
    pub processes: Option<u64>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            memory: Some(crate::process::DEFAULT_MEMORY_LIMIT),
            processes: Some(DEFAULT_PROCESS_LIMIT),
        }
    }
}

impl Budget {
    /// No limits.
    pub const NONE: Budget = Budget {
        memory: None,
        processes: None,
    };
}

/// How this machine holds a process tree to a [`Budget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// Control groups: the tree's memory and processes are counted
    /// together, and every process of it is killed when the command ends.
    Cgroups {
        /// Which hierarchies carry the limits, e.g. `v1 memory, v1 pids, v2`.
        hierarchies: String,
    },
    /// Only rlimits: memory per process, and processes per user namespace
    /// where the kernel counts them (not for root).
    Rlimits {
        /// Why no control group could be made.
        reason: String,
    },
}

impl Enforcement {
    /// Whether the tree's memory is counted as a whole.
    pub fn counts_the_whole_tree(&self) -> bool {
        matches!(self, Enforcement::Cgroups { .. })
    }
}

/// How budgets are enforced on this machine (probed once per process).
pub fn enforcement() -> Enforcement {
    match cgroups() {
        Ok(set) => Enforcement::Cgroups {
            hierarchies: set.describe(),
        },
        Err(reason) => Enforcement::Rlimits {
            reason: reason.clone(),
        },
    }
}

/// One hierarchy smith makes groups in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    /// This process's own group in it; new groups go underneath.
    parent: PathBuf,
    /// cgroup v2 (unified) or v1.
    v2: bool,
    /// Carries the memory limit.
    memory: bool,
    /// Carries the process limit.
    pids: bool,
}

#[derive(Debug, Clone)]
struct CgroupSet {
    hierarchies: Vec<Hierarchy>,
}

impl CgroupSet {
    fn describe(&self) -> String {
        self.hierarchies
            .iter()
            .map(|h| {
                let mut what = vec![if h.v2 { "v2" } else { "v1" }];
                if h.memory {
                    what.push("memory");
                }
                if h.pids {
                    what.push("pids");
                }
                what.join(" ")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn cgroups() -> &'static std::result::Result<CgroupSet, String> {
    static SET: OnceLock<std::result::Result<CgroupSet, String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let set = find_hierarchies(&mountinfo, &own)?;
        for h in &set.hierarchies {
            remove_dead_groups(&h.parent);
        }
        Ok(set)
    })
}

/// The hierarchies to use, from `/proc/self/mountinfo` and
/// `/proc/self/cgroup`: cgroup v2 for every controller it offers, v1
/// `memory` and `pids` for those it does not; each one probed by making and
/// removing a group.
fn find_hierarchies(mountinfo: &str, own: &str) -> std::result::Result<CgroupSet, String> {
    let (v2_path, v1_paths) = own_cgroups(own);
    let (v2_mount, v1_mounts) = cgroup_mounts(mountinfo);
    let mut hierarchies = Vec::new();
    let mut reasons = Vec::new();
    if let (Some(mount), Some(path)) = (&v2_mount, &v2_path) {
        let parent = under(mount, path);
        match probe(&parent) {
            Ok(()) => hierarchies.push(v2_hierarchy(parent)),
            Err(e) => reasons.push(e),
        }
    }
    for controller in ["memory", "pids"] {
        let v2_has = hierarchies.iter().any(|h| {
            if controller == "memory" {
                h.memory
            } else {
                h.pids
            }
        });
        if v2_has {
            continue;
        }
        let mount = v1_mounts.iter().find(|(c, _)| c == controller);
        let path = v1_paths.iter().find(|(c, _)| c == controller);
        let (Some((_, mount)), Some((_, path))) = (mount, path) else {
            reasons.push(format!("no cgroup hierarchy offers `{controller}`"));
            continue;
        };
        let parent = under(mount, path);
        match probe(&parent) {
            Ok(()) => hierarchies.push(Hierarchy {
                parent,
                v2: false,
                memory: controller == "memory",
                pids: controller == "pids",
            }),
            Err(e) => reasons.push(e),
        }
    }
    let memory = hierarchies.iter().any(|h| h.memory);
    let pids = hierarchies.iter().any(|h| h.pids);
    if memory && pids {
        Ok(CgroupSet { hierarchies })
    } else {
        Err(reasons.join("; "))
    }
}

/// This process's cgroups from `/proc/self/cgroup` (`0::/path` for v2,
/// `N:memory:/path` for v1): the v2 path, and v1 paths by controller.
fn own_cgroups(own: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut v2_path = None;
    let mut v1_paths: Vec<(String, String)> = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            v2_path = Some(path.to_string());
        } else {
            for c in controllers.split(',') {
                v1_paths.push((c.to_string(), path.to_string()));
            }
        }
    }
    (v2_path, v1_paths)
}

/// The cgroup mounts of `/proc/self/mountinfo` (`... mount-point ... -
/// fstype source super-options`): the first v2 one, and v1 ones of
/// `memory` and `pids` by controller.
fn cgroup_mounts(mountinfo: &str) -> (Option<PathBuf>, Vec<(String, PathBuf)>) {
    let mut v2_mount = None;
    let mut v1_mounts: Vec<(String, PathBuf)> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or("");
        let options = right.nth(1).unwrap_or("");
        let point = PathBuf::from(point.replace("\\040", " "));
        match fstype {
            "cgroup2" => v2_mount = v2_mount.or(Some(point)),
            "cgroup" => {
                for c in options.split(',') {
                    if c == "memory" || c == "pids" {
                        v1_mounts.push((c.to_string(), point.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    (v2_mount, v1_mounts)
}

/// The v2 hierarchy under `parent` (probed), with `memory` and `pids` where
/// they are enabled for its children, or offered and can be enabled.
fn v2_hierarchy(parent: PathBuf) -> Hierarchy {
    let enabled = read_words(&parent.join("cgroup.subtree_control"));
    let offered = read_words(&parent.join("cgroup.controllers"));
    let on = |c: &str| {
        enabled.iter().any(|w| w == c)
            || (offered.iter().any(|w| w == c)
                && std::fs::write(parent.join("cgroup.subtree_control"), format!("+{c}")).is_ok())
    };
    let memory = on("memory");
    let pids = on("pids");
    Hierarchy {
        parent,
        v2: true,
        memory,
        pids,
    }
}

fn under(mount: &Path, path: &str) -> PathBuf {
    smith_core::join_rel(mount, path.trim_start_matches('/'))
}

fn read_words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Whether a group can be made (and removed) under `parent`.
fn probe(parent: &Path) -> std::result::Result<(), String> {
    let dir = parent.join(format!("smith-probe-{}", std::process::id()));
    std::fs::create_dir(&dir)
        .map_err(|e| format!("cannot make a cgroup under {}: {e}", parent.display()))?;
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// This process's PID namespace as a number (the inode of
/// `/proc/self/ns/pid`), so that a group's owner is judged only by a
/// process that can see it.
fn pid_namespace() -> u64 {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|l| {
            let l = l.to_string_lossy().into_owned();
            l.trim_start_matches("pid:[")
                .trim_end_matches(']')
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The name of a group this process makes: `smith-<pid>-<pid namespace>-<n>`.
fn group_name(n: u64) -> String {
    format!("smith-{}-{}-{n}", std::process::id(), pid_namespace())
}

/// The owner of a group named by [`group_name`], if it is in this PID
/// namespace.
fn owner_here(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix("smith-")?.split('-');
    let pid = parts.next()?.parse().ok()?;
    let namespace: u64 = parts.next()?.parse().ok()?;
    (namespace == pid_namespace()).then_some(pid)
}

/// The control groups that the smith process `pid` (of this PID namespace)
/// made and that are still there; empty where control groups are not used.
/// Asking first removes those of dead processes, as every run does.
pub fn groups_of(pid: u32) -> Vec<PathBuf> {
    let Ok(set) = cgroups() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for h in &set.hierarchies {
        let Ok(entries) = std::fs::read_dir(&h.parent) else {
            continue;
        };
        for entry in entries.flatten() {
            if owner_here(&entry.file_name().to_string_lossy()) == Some(pid) {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Empty and remove the groups under `parent` whose smith process (in this
/// PID namespace) is gone.
fn remove_dead_groups(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = owner_here(&name) else {
            continue;
        };
        if !crate::process::is_alive(owner) {
            kill_members(&entry.path());
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// SIGKILL every process in the group at `dir` until it is empty (or a few
/// seconds have passed): a process forking while it is killed only adds
/// members that the next pass kills.
fn kill_members(dir: &Path) {
    let kill = dir.join("cgroup.kill");
    if kill.exists() && std::fs::write(&kill, "1").is_ok() {
        wait_empty(dir);
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = members(dir);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn members(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_empty(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !members(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// One command's control groups, made for it before it starts. Dropping the
/// lease kills every process left in them and removes them.
#[derive(Debug)]
pub struct Lease {
    dirs: Vec<PathBuf>,
}

impl Lease {
    /// Whether this machine offers control groups to smith.
    pub fn available() -> bool {
        cgroups().is_ok()
    }

    /// Groups for one command limited to `budget`, or `None` where this
    /// machine offers none (see [`enforcement`]).
    pub fn new(budget: &Budget) -> Result<Option<Lease>> {
        let Ok(set) = cgroups() else {
            return Ok(None);
        };
        let name = group_name(NEXT.fetch_add(1, Ordering::Relaxed));
        let mut lease = Lease { dirs: Vec::new() };
        for h in &set.hierarchies {
            let dir = h.parent.join(&name);
            std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            lease.dirs.push(dir.clone());
            let set_file = |file: &str, value: String| -> Result<()> {
                let path = dir.join(file);
                std::fs::write(&path, value).map_err(|e| Error::io(&path, e))
            };
            if let (true, Some(bytes)) = (h.memory, budget.memory) {
                if h.v2 {
                    set_file("memory.max", bytes.to_string())?;
                    // Swapping the overflow out would only slow the tree down.
                    if dir.join("memory.swap.max").exists() {
                        set_file("memory.swap.max", "0".into())?;
                    }
                } else {
                    set_file("memory.limit_in_bytes", bytes.to_string())?;
                    if dir.join("memory.memsw.limit_in_bytes").exists() {
                        set_file("memory.memsw.limit_in_bytes", bytes.to_string())?;
                    }
                }
            }
            if let (true, Some(n)) = (h.pids, budget.processes) {
                set_file("pids.max", n.to_string())?;
            }
        }
        Ok(Some(lease))
    }

    /// `command` started so that it joins these groups before it runs:
    /// through `sh`, which writes its own pid into each group and then
    /// `exec`s the command (the pid stays the same).
    pub fn wrap(&self, command: &Command) -> Command {
        let mut script = String::new();
        for (i, _) in self.dirs.iter().enumerate() {
            // $1..$n are the groups' `cgroup.procs` files.
            script.push_str(&format!("echo $$ > \"${}\" || exit 125; ", i + 1));
        }
        script.push_str(&format!("shift {}; exec \"$@\"", self.dirs.len()));
        let mut wrapped = Command::new("/bin/sh");
        wrapped
            .arg("-c")
            .arg(script)
            .arg("smith-cgroup")
            .args(self.dirs.iter().map(|d| d.join("cgroup.procs")))
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(v) => wrapped.env(key, v),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    }

    /// Kill every process in the groups.
    pub fn kill_all(&self) {
        for dir in &self.dirs {
            kill_members(dir);
        }
    }

    /// Peak memory of the tree so far in bytes, where the hierarchy keeps it.
    pub fn peak_memory(&self) -> Option<u64> {
        self.dirs.iter().find_map(|d| {
            ["memory.peak", "memory.max_usage_in_bytes"]
                .iter()
                .find_map(|f| std::fs::read_to_string(d.join(f)).ok()?.trim().parse().ok())
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.kill_all();
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_come_from_mountinfo_and_own_groups() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["unified/a", "memory/job/x", "pids/job"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        // A v2 hierarchy without controllers (only good for killing), v1
        // memory and pids: the limits go to v1.
        let mountinfo = format!(
            "30 25 0:26 / {r}/unified rw,relatime - cgroup2 cgroup2 rw\n\
             31 25 0:27 / {r}/memory rw,relatime - cgroup cgroup rw,memory\n\
             32 25 0:28 / {r}/pids rw,relatime - cgroup cgroup rw,pids\n\
             33 25 0:29 / {r}/cpu rw,relatime - cgroup cgroup rw,cpu\n",
            r = root.display()
        );
        let own = "8:pids:/job\n4:memory:/job/x\n1:cpu:/\n0::/a\n";
        let set = find_hierarchies(&mountinfo, own).unwrap();
        assert_eq!(set.describe(), "v2, v1 memory, v1 pids");
        assert_eq!(set.hierarchies[1].parent, root.join("memory/job/x"));
        assert_eq!(set.hierarchies[2].parent, root.join("pids/job"));
        // v2 with both controllers delegated needs nothing else.
        std::fs::write(
            root.join("unified/a/cgroup.subtree_control"),
            "memory pids\n",
        )
        .unwrap();
        let set = find_hierarchies(&mountinfo, own).unwrap();
        assert_eq!(set.describe(), "v2 memory pids");
        // Without a memory controller anywhere there is no tree budget.
        let err =
            find_hierarchies(&mountinfo.replace("rw,memory", "rw,cpuset"), "0::/b\n").unwrap_err();
        assert!(err.contains("memory"), "{err}");
    }

    #[test]
    fn groups_name_their_owner_and_its_pid_namespace() {
        let mine = group_name(7);
        assert_eq!(owner_here(&mine), Some(std::process::id()));
        assert_eq!(owner_here("smith-123-1-0"), None, "another PID namespace");
        assert_eq!(owner_here("smith-probe-123"), None);
        assert_eq!(owner_here("other-123-1-0"), None);
    }

    #[test]
    fn wrapping_keeps_program_arguments_environment_and_directory() {
        let lease = Lease {
            dirs: vec![PathBuf::from("/cg/a"), PathBuf::from("/cg/b")],
        };
        let mut cmd = Command::new("python3");
        cmd.args(["-c", "print(1)"])
            .env("A", "1")
            .env_remove("B")
            .current_dir("/w");
        let wrapped = lease.wrap(&cmd);
        let args: Vec<String> = wrapped
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[3..],
            [
                "/cg/a/cgroup.procs",
                "/cg/b/cgroup.procs",
                "python3",
                "-c",
                "print(1)"
            ]
        );
        assert!(args[1].contains("shift 2; exec \"$@\""), "{}", args[1]);
        assert_eq!(wrapped.get_current_dir(), Some(Path::new("/w")));
        let envs: Vec<_> = wrapped.get_envs().collect();
        assert!(envs.contains(&(std::ffi::OsStr::new("A"), Some(std::ffi::OsStr::new("1")))));
        assert!(envs.contains(&(std::ffi::OsStr::new("B"), None)));
        std::mem::forget(lease);
    }
}
