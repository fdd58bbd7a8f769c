//! Writing files and folders whole or not at all.
//!
//! * [`write_file`]: the bytes go to a temporary file beside the target, which is flushed to
//!   disk (`fsync`) and renamed over the target: a reader (or a crash) sees the old file or the
//!   new one, never a part.
//! * [`replace_dir`]: a whole folder (a checkpoint, a saved detector) is built in a fresh
//!   sibling `NAME.new`, every file in it flushed, then swapped in by two renames
//!   (`NAME` -> `NAME.old`, `NAME.new` -> `NAME`) and the old one removed. [`recover_dir`]
//!   repairs what a crash between the two renames leaves (no `NAME`, a complete `NAME.old`) by
//!   renaming `NAME.old` back, and drops a half-built `NAME.new`: after any crash the folder is
//!   the previous version or the new one, never a mix.
//!
//! Every flush and rename goes through a [`Storage`], so that tests can make the n-th one
//! fail ([`FailAfter`]) and check what an interruption at that point leaves.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{MotionError, Result};

/// The write points of [`write_file`] and [`replace_dir`]: flushing a written file and renaming.
pub trait Storage: Send + Sync {
    /// Flushes the file at `path` (already written) to stable storage.
    fn sync_file(&self, path: &Path) -> std::io::Result<()>;
    /// Renames `from` to `to` (replacing a file `to`) and flushes the parent folder of `to`.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Storage for Disk {
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        fs::File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        fs::rename(from, to)?;
        sync_parent(to);
        Ok(())
    }
}

/// Flushes a folder's entry list (the renames in it); a no-op where folders cannot be opened.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Fault injection for tests: the real disk until `n` write points have passed, then every
/// write point fails as a crash would. A failing flush first cuts the last 5 bytes off the file
/// (a torn write); a failing rename does nothing.
#[derive(Debug)]
pub struct FailAfter {
    left: AtomicUsize,
    passed: AtomicUsize,
}

impl FailAfter {
    /// Lets `n` write points pass, fails from the `n + 1`-th on.
    pub fn new(n: usize) -> Self {
        Self {
            left: AtomicUsize::new(n),
            passed: AtomicUsize::new(0),
        }
    }

    /// Write points that have passed so far (with `n` large: how many a run has).
    pub fn passed(&self) -> usize {
        self.passed.load(Ordering::SeqCst)
    }

    fn take(&self) -> bool {
        let ok = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
            .is_ok();
        if ok {
            self.passed.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }
}

fn injected() -> std::io::Error {
    std::io::Error::other("injected fault (FailAfter)")
}

impl Storage for FailAfter {
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        if self.take() {
            return Disk.sync_file(path);
        }
        let f = fs::OpenOptions::new().write(true).open(path)?;
        let len = f.metadata()?.len();
        f.set_len(len.saturating_sub(5))?;
        Err(injected())
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        if self.take() {
            return Disk.rename(from, to);
        }
        Err(injected())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MotionError + '_ {
    move |source| MotionError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes `bytes` to `path` whole or not at all (temp file, flush, rename) on the real disk.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_on(&Disk, path, bytes)
}

/// [`write_file`] through `storage`.
pub fn write_file_on(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling(path, ".partial");
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    storage.sync_file(&tmp).map_err(io(&tmp))?;
    storage.rename(&tmp, path).map_err(io(path))
}

/// Appends `line` and a newline to `path` (created if missing) and flushes it. A crash may
/// leave a part of the line without its newline; readers of such logs drop an unterminated
/// last line ([`complete_lines`]).
pub fn append_line(storage: &dyn Storage, path: &Path, line: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(format!("{line}\n").as_bytes())
        .map_err(io(path))?;
    drop(f);
    storage.sync_file(path).map_err(io(path))
}

/// The newline-terminated lines of `text`: an unterminated last line (an append cut short) is
/// left out.
pub fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end].lines()
}

/// Repairs a folder that [`replace_dir`] was writing when it was interrupted: restores
/// `DIR.old` when `DIR` is missing, removes a leftover `DIR.new` and `DIR.old`.
pub fn recover_dir(dir: &Path) -> Result<()> {
    let (new, old) = (sibling(dir, ".new"), sibling(dir, ".old"));
    if !dir.exists() && old.is_dir() {
        fs::rename(&old, dir).map_err(io(dir))?;
        sync_parent(dir);
    }
    for leftover in [new, old] {
        if leftover.exists() {
            fs::remove_dir_all(&leftover).map_err(io(&leftover))?;
        }
    }
    Ok(())
}

/// Replaces the folder `dir` whole: `fill` writes the new content into a fresh staging folder
/// (given as its argument), every file there is flushed, and the staging folder is swapped in
/// (see the module docs). On the real disk.
pub fn replace_dir<E>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    E: From<MotionError>,
{
    replace_dir_on(&Disk, dir, fill)
}

/// [`replace_dir`] through `storage`.
pub fn replace_dir_on<E>(
    storage: &dyn Storage,
    dir: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    E: From<MotionError>,
{
    recover_dir(dir)?;
    let (new, old) = (sibling(dir, ".new"), sibling(dir, ".old"));
    fs::create_dir_all(&new).map_err(io(&new))?;
    fill(&new)?;
    let mut files = Vec::new();
    list_files(&new, &mut files)?;
    files.sort();
    for f in &files {
        storage.sync_file(f).map_err(io(f))?;
    }
    if dir.exists() {
        storage.rename(dir, &old).map_err(io(dir))?;
    }
    storage.rename(&new, dir).map_err(io(dir))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Every file under `dir`, depth first; folders are flushed on the way.
fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            list_files(&path, out)?;
            sync_parent(&path.join("x"));
        } else {
            out.push(path);
        }
    }
    sync_parent(&dir.join("x"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("haad-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn fill<'a>(files: &'a [(&'a str, &'a str)]) -> impl FnOnce(&Path) -> Result<()> + 'a {
        move |d: &Path| {
            for (n, t) in files {
                fs::create_dir_all(d.join(n).parent().unwrap()).unwrap();
                fs::write(d.join(n), t).unwrap();
            }
            Ok(())
        }
    }

    fn read(dir: &Path) -> Vec<(String, String)> {
        let mut files = Vec::new();
        list_files(dir, &mut files).unwrap();
        files.sort();
        files
            .iter()
            .map(|f| {
                let rel = f.strip_prefix(dir).unwrap().display().to_string();
                (rel, fs::read_to_string(f).unwrap())
            })
            .collect()
    }

    #[test]
    fn file_is_old_or_new_at_every_fault() {
        let d = tmp("file");
        let path = d.join("a.json");
        write_file(&path, b"old").unwrap();
        for n in 0..2 {
            assert!(write_file_on(&FailAfter::new(n), &path, b"new").is_err());
            assert_eq!(fs::read(&path).unwrap(), b"old", "fault {n}");
        }
        let ok = FailAfter::new(usize::MAX);
        write_file_on(&ok, &path, b"new").unwrap();
        assert_eq!(
            (fs::read(&path).unwrap(), ok.passed()),
            (b"new".to_vec(), 2)
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn folder_is_old_or_new_at_every_fault() {
        let d = tmp("dir");
        let dir = d.join("last");
        let old = [("a", "1"), ("sub/b", "2")];
        let new = [("a", "10"), ("sub/b", "20"), ("c", "30")];
        replace_dir(&dir, fill(&old)).unwrap();
        let want_old = read(&dir);
        let counter = FailAfter::new(usize::MAX);
        replace_dir_on(&counter, &d.join("probe"), fill(&new)).unwrap();
        // 3 flushes + 1 rename for a fresh folder, + 1 rename over an existing one.
        let points = counter.passed() + 1;
        assert_eq!(points, 5);
        for n in 0..points {
            let r = replace_dir_on(&FailAfter::new(n), &dir, fill(&new));
            assert!(r.is_err(), "fault {n}");
            recover_dir(&dir).unwrap();
            assert_eq!(read(&dir), want_old, "fault {n}");
            assert!(!sibling(&dir, ".new").exists() && !sibling(&dir, ".old").exists());
        }
        replace_dir(&dir, fill(&new)).unwrap();
        assert_eq!(read(&dir).len(), 3);
        assert_eq!(read(&dir)[0], ("a".to_string(), "10".to_string()));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn crash_between_renames_keeps_the_old_folder() {
        let d = tmp("between");
        let dir = d.join("last");
        replace_dir(&dir, fill(&[("a", "1")])).unwrap();
        // Flush (1) and the first rename (2) pass; the second rename fails: no `last`.
        let r = replace_dir_on(&FailAfter::new(2), &dir, fill(&[("a", "2")]));
        assert!(r.is_err());
        assert!(!dir.exists());
        recover_dir(&dir).unwrap();
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_append_is_dropped_by_readers() {
        let d = tmp("append");
        let log = d.join("log.jsonl");
        append_line(&Disk, &log, "one").unwrap();
        assert!(append_line(&FailAfter::new(0), &log, "two-two").is_err());
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(text, "one\ntwo");
        assert_eq!(complete_lines(&text).collect::<Vec<_>>(), vec!["one"]);
        assert_eq!(complete_lines("").count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }
}
