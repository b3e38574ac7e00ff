//! JSONL stores: every stage reads and writes one record per line, appended
//! and flushed as produced, so a killed stage resumes where it stopped; and
//! the lock that keeps one process at a time writing an output directory.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// Read every record of a JSONL file. A missing file is empty. A bad line is
/// an error naming the file and line, except a truncated last line (a write
/// cut short by a kill), which is ignored.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    Ok(read_lines(path)?.0)
}

fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<(Vec<T>, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut good_len = 0u64;
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        number += 1;
        let complete = line.ends_with('\n');
        if line.trim().is_empty() {
            good_len += n as u64;
            continue;
        }
        match serde_json::from_str::<T>(line.trim_end()) {
            Ok(r) if complete => {
                records.push(r);
                good_len += n as u64;
            }
            // An unterminated last line was cut short: drop it.
            _ if !complete => break,
            Ok(_) => unreachable!(),
            Err(e) => return Err(Error::record_source(path, number, "", e)),
        }
    }
    Ok((records, good_len))
}

/// Every record of a JSONL file (as [`read_jsonl`]), each id once: a record
/// whose `id` an earlier line already had is dropped, so a duplicated line
/// never counts twice.
pub fn read_jsonl_unique<T: DeserializeOwned>(
    path: &Path,
    id: impl Fn(&T) -> &str,
) -> Result<Vec<T>> {
    let mut seen = BTreeSet::new();
    Ok(read_jsonl::<T>(path)?
        .into_iter()
        .filter(|r| seen.insert(id(r).to_string()))
        .collect())
}

/// Whether an I/O error means the disk (or the user's quota) is full: the
/// machine's problem, not the input's.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(ENOSPC)
}

/// `ENOSPC`, the same on every Unix smith runs on.
const ENOSPC: i32 = 28;

/// The lock of an output directory: held (an advisory `flock` on
/// `smith.lock`) while a process writes the directory, released when it is
/// dropped or the process dies, so a second run into the same directory
/// stops at once instead of interleaving its records with the first's.
#[derive(Debug)]
pub struct OutDirLock {
    _file: File,
}

impl OutDirLock {
    /// The lock file's name in the output directory.
    pub const FILE: &'static str = "smith.lock";

    /// Take the lock of `dir` (created if missing), or fail naming the
    /// process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(Self::FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(Error::invalid(
                    path.display().to_string(),
                    format!(
                        "another smith process{} is writing to {}; wait for it to finish or choose another output directory",
                        if holder.is_empty() { String::new() } else { format!(" ({holder})") },
                        dir.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        file.set_len(0)
            .and_then(|_| file.write_all(format!("pid {}\n", std::process::id()).as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(OutDirLock { _file: file })
    }
}

/// Appends records to a JSONL file, one flushed line each.
#[derive(Debug)]
pub struct JsonlWriter<T> {
    path: PathBuf,
    file: File,
    _record: PhantomData<fn(&T)>,
}

impl<T: Serialize> JsonlWriter<T> {
    /// Open `path` for appending; a truncated last line left by a killed
    /// writer is cut off first so the file stays valid JSONL.
    pub fn append(path: &Path) -> Result<Self>
    where
        T: DeserializeOwned,
    {
        let (_, good_len) = read_lines::<serde_json::Value>(path)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.set_len(good_len).map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::io(path, e))?;
        Ok(JsonlWriter {
            path: path.to_path_buf(),
            file,
            _record: PhantomData,
        })
    }

    /// Start `path` afresh.
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(JsonlWriter {
            path: path.to_path_buf(),
            file,
            _record: PhantomData,
        })
    }

    /// Write one record as one line and flush it.
    pub fn write(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record)
            .map_err(|e| Error::record_source(&self.path, 0, "", e))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Ids already present in a JSONL file, read from the field `key`.
pub fn done_ids(path: &Path, key: &str) -> Result<BTreeSet<String>> {
    let records: Vec<serde_json::Value> = read_jsonl(path)?;
    Ok(records
        .iter()
        .filter_map(|r| r.get(key).and_then(|v| v.as_str()).map(str::to_string))
        .collect())
}

/// Write a whole file atomically (temp file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Write records as a whole JSONL file, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, records: &[T]) -> Result<()> {
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(r).map_err(|e| Error::record_source(path, 0, "", e))?);
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}

/// Read a JSON file, `None` if missing.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::record_source(path, 1, "", e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Write a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| Error::record_source(path, 0, "", e))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        id: String,
    }

    #[test]
    fn append_resumes_after_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut w = JsonlWriter::<Rec>::append(&path).unwrap();
        w.write(&Rec { id: "a".into() }).unwrap();
        drop(w);
        // A writer killed mid-line leaves a fragment.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"id\": \"b")
            .unwrap();
        assert_eq!(read_jsonl::<Rec>(&path).unwrap().len(), 1);
        let mut w = JsonlWriter::<Rec>::append(&path).unwrap();
        w.write(&Rec { id: "c".into() }).unwrap();
        let all = read_jsonl::<Rec>(&path).unwrap();
        assert_eq!(all, vec![Rec { id: "a".into() }, Rec { id: "c".into() }]);
        assert_eq!(
            done_ids(&path, "id").unwrap(),
            BTreeSet::from(["a".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn duplicate_records_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"a\"}\n").unwrap();
        let all = read_jsonl_unique::<Rec>(&path, |r| &r.id).unwrap();
        assert_eq!(all, vec![Rec { id: "a".into() }, Rec { id: "b".into() }]);
    }

    #[test]
    fn a_full_disk_is_named_and_recognised() {
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        let mut w = JsonlWriter::<Rec>::create(Path::new("/dev/full")).unwrap();
        let err = w.write(&Rec { id: "a".into() }).unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
        let Error::Io { source, .. } = &err else {
            panic!("not an I/O error: {err:?}");
        };
        assert!(is_disk_full(source), "{source:?}");
        assert!(!is_disk_full(&std::io::Error::from(
            std::io::ErrorKind::NotFound
        )));
    }

    #[test]
    fn an_output_directory_has_one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutDirLock::acquire(dir.path()).unwrap();
        let err = OutDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another smith process"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        OutDirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"id\":\"a\"}\nnot json\n").unwrap();
        let err = read_jsonl::<Rec>(&path).unwrap_err().to_string();
        assert!(err.contains("r.jsonl:2"), "{err}");
    }
}
