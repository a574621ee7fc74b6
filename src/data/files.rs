//! The data files a data value reads: the folder they are relative to, and fingerprints
//! that tell whether a file changed since a study or a saved model read it.
//!
//! Takes a `.bma` file's path (for [`base_folder`]) or an evaluated data value and its
//! base folder (for [`fingerprints`]); gives an absolute folder, [`Fingerprint`]s, and
//! for stored fingerprints the [`changes`] found on disk now, each a sentence naming the
//! file and what changed.
//!
//! **Invariants:** [`base_folder`] is absolute whatever the current directory (a spec
//! given as `spec.bma` has the current directory's absolute path as its folder), so a
//! stored base never depends on where a later command runs; a file counts as changed
//! when its size or content hash differs, or when it can no longer be read (a new
//! modification time over the same bytes is not a change); nothing here panics.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalogue::{self, Dataset as Kind};
use crate::ir::Value;

/// The folder relative data paths of the `.bma` file at `spec` are read from: the file's
/// folder, absolute and canonical (the current directory for a bare name or no path).
pub fn base_folder(spec: Option<&Path>) -> PathBuf {
    absolute(spec.and_then(Path::parent).unwrap_or(Path::new(".")))
}

/// `path` made absolute: canonical when it exists, else joined to the current directory
/// (an empty path is the current directory).
pub fn absolute(path: &Path) -> PathBuf {
    let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    std::fs::canonicalize(path).or_else(|_| std::path::absolute(path)).unwrap_or_else(|_| path.to_path_buf())
}

/// What a data file was when it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The file's absolute path.
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 when the system gives none).
    pub mtime_ns: u128,
    /// FNV-1a (64-bit) of the content, as 16 hex digits.
    pub hash: String,
    /// For a folder of samples (an image or audio class-folder tree): how many files it
    /// holds. Its `size` is then their total, its `hash` that of every file's path
    /// (relative to the folder) and content in path order, so one fingerprint stands for
    /// thousands of files. `None` for a single file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<usize>,
}

/// FNV-1a (64-bit), continued over `bytes`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Every file below `dir` (hidden entries, whose names start with `.`, left out), sorted.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        if e.file_type()?.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

impl Fingerprint {
    /// The fingerprint of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<Fingerprint> {
        let path = absolute(path);
        let meta = std::fs::metadata(&path)?;
        let mtime_ns =
            meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        if meta.is_dir() {
            return Fingerprint::of_folder(path, mtime_ns);
        }
        let (h, size) = Fingerprint::hash_file(&path, FNV_START)?;
        Ok(Fingerprint { path, size, mtime_ns, hash: format!("{h:016x}"), files: None })
    }

    /// `h` continued over the content of the file at `path`, and its size.
    fn hash_file(path: &Path, mut h: u64) -> std::io::Result<(u64, u64)> {
        let mut file = std::fs::File::open(path)?;
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h = fnv(h, &buf[..n]);
        }
        Ok((h, size))
    }

    /// The fingerprint of the folder `dir` (absolute) and every file below it.
    fn of_folder(dir: PathBuf, mtime_ns: u128) -> std::io::Result<Fingerprint> {
        let mut files = Vec::new();
        walk(&dir, &mut files)?;
        let (mut h, mut size) = (FNV_START, 0u64);
        for f in &files {
            let rel = f.strip_prefix(&dir).unwrap_or(f);
            h = fnv(h, rel.to_string_lossy().as_bytes());
            h = fnv(h, &[0]);
            let (next, n) = Fingerprint::hash_file(f, h)?;
            (h, size) = (next, size + n);
        }
        Ok(Fingerprint { path: dir, size, mtime_ns, hash: format!("{h:016x}"), files: Some(files.len()) })
    }

    /// What differs between this stored fingerprint and the file now; `None` if nothing
    /// that matters (size and content) does.
    pub fn change(&self) -> Option<String> {
        let now = match Fingerprint::of(&self.path) {
            Ok(f) => f,
            Err(e) => return Some(format!("{} cannot be read any more ({e})", self.path.display())),
        };
        if now.size == self.size && now.hash == self.hash {
            return None;
        }
        let mut what = Vec::new();
        if let (Some(was), Some(is)) = (self.files, now.files)
            && was != is
        {
            what.push(format!("{was} → {is} files"));
        }
        if now.size != self.size {
            what.push(format!("size {} → {} bytes", self.size, now.size));
        }
        if now.hash != self.hash {
            what.push("content differs".to_string());
        }
        if now.mtime_ns != self.mtime_ns {
            what.push("modified since".to_string());
        }
        Some(format!("{} changed ({})", self.path.display(), what.join(", ")))
    }
}

/// The files `value` (an evaluated `data = ...` value) reads, relative paths from `base`:
/// a CSV file, IDX images and labels, an image or audio class folder (one fingerprint for
/// the whole tree) or an image CSV list and its images, CIFAR batches, NumPy arrays; none
/// for built-in and synthetic datasets. The files of its splits' own sources (`test:`,
/// `valid:`) follow its own.
pub fn files(value: &Value, base: &Path) -> Vec<PathBuf> {
    let Value::Call(call) = value else { return Vec::new() };
    let path = |k: &str, pos: usize| match call.arg(k, pos) {
        Some(Value::Str(s)) => Some(base.join(s)),
        _ => None,
    };
    let mut own: Vec<PathBuf> = match catalogue::kind(catalogue::DATASETS, &call.name) {
        Some(Kind::Csv | Kind::Text) => path("path", 0).into_iter().collect(),
        Some(Kind::Idx) => path("images", 0).into_iter().chain(path("labels", 1)).collect(),
        // A class-folder tree is one fingerprint (the folder's), not one per image.
        Some(Kind::Images) => match path("dir", 0) {
            Some(dir) if dir.is_dir() => vec![dir],
            _ => super::ImageSpec::from_call(call, base).map(|s| super::images::files(&s)).unwrap_or_default(),
        },
        Some(Kind::Cifar) => {
            super::CifarSpec::from_call(call, base).map(|s| super::cifar::files(&s)).unwrap_or_default()
        }
        Some(Kind::Npy | Kind::Npz) => {
            super::NpySpec::from_call(call, base).map(|s| super::npy::files(&s)).unwrap_or_default()
        }
        Some(Kind::Audio) => match path("dir", 0) {
            Some(dir) if dir.is_dir() => vec![dir],
            _ => super::audio::clip_files(call, base),
        },
        _ => Vec::new(),
    };
    for part in super::FIXED_PARTS {
        if let Some(nested) = call.arg(part, usize::MAX) {
            // One level: a split's own source has no `test:` or `valid:` of its own.
            let Value::Call(inner) = nested else { continue };
            let bare = Value::Call(crate::ir::CallValue {
                name: inner.name.clone(),
                args: inner
                    .args
                    .iter()
                    .filter(|(k, _)| !k.as_deref().is_some_and(|k| super::FIXED_PARTS.contains(&k)))
                    .cloned()
                    .collect(),
            });
            own.extend(files(&bare, base));
        }
    }
    own
}

/// Fingerprints of the files `value` reads (see [`files`]; a folder of samples is one
/// fingerprint of all its files). A file that cannot be read is left out: loading the
/// data reports it.
pub fn fingerprints(value: &Value, base: &Path) -> Vec<Fingerprint> {
    files(value, base).iter().filter_map(|p| Fingerprint::of(p).ok()).collect()
}

/// What changed in the files `stored` describes, one sentence per changed file.
pub fn changes(stored: &[Fingerprint]) -> Vec<String> {
    stored.iter().filter_map(Fingerprint::change).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_absolute_for_a_bare_file_name() {
        let b = base_folder(Some(Path::new("spec.bma")));
        assert!(b.is_absolute(), "{}", b.display());
        assert_eq!(b, std::fs::canonicalize(".").expect("cwd"));
        assert!(base_folder(None).is_absolute());
    }

    #[test]
    fn a_rewritten_file_is_a_change_and_a_touched_one_is_not() {
        let dir = std::env::temp_dir().join(format!("bma-fingerprint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("d.csv");
        std::fs::write(&f, "a,y\n1,0\n").expect("write");
        let stored = Fingerprint::of(&f).expect("reads");
        assert_eq!(stored.size, 8);
        std::fs::write(&f, "a,y\n1,0\n").expect("rewrite");
        assert_eq!(stored.change(), None, "same bytes");
        std::fs::write(&f, "a,y\n2,0\n").expect("rewrite");
        let change = stored.change().expect("changed");
        assert!(change.contains("d.csv changed") && change.contains("content differs"), "{change}");
        std::fs::remove_file(&f).expect("remove");
        assert!(stored.change().expect("gone").contains("cannot be read"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_folder_of_samples_is_one_fingerprint_that_sees_any_file_change() {
        let dir = std::env::temp_dir().join(format!("bma-fingerprint-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (f, body) in [("a/1.png", "x"), ("a/2.png", "yy"), ("b/1.png", "zzz")] {
            std::fs::create_dir_all(dir.join(f).parent().expect("parent")).expect("dir");
            std::fs::write(dir.join(f), body).expect("write");
        }
        std::fs::write(dir.join(".hidden"), "ignored").expect("write");
        let stored = Fingerprint::of(&dir).expect("reads");
        assert_eq!((stored.files, stored.size), (Some(3), 6));
        assert_eq!(stored.change(), None, "nothing changed");
        std::fs::write(dir.join(".hidden"), "still ignored").expect("write");
        assert_eq!(stored.change(), None, "hidden entries are not samples");
        // The same bytes under another class: a change, though sizes and contents agree.
        std::fs::create_dir_all(dir.join("c")).expect("dir");
        std::fs::rename(dir.join("b/1.png"), dir.join("c/1.png")).expect("move");
        assert!(stored.change().expect("moved").contains("content differs"));
        std::fs::write(dir.join("c/2.png"), "w").expect("write");
        let change = stored.change().expect("added");
        assert!(change.contains("3 → 4 files"), "{change}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
