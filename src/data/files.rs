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
}

impl Fingerprint {
    /// The fingerprint of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<Fingerprint> {
        let path = absolute(path);
        let meta = std::fs::metadata(&path)?;
        let mtime_ns =
            meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        let mut file = std::fs::File::open(&path)?;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            for b in &buf[..n] {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        Ok(Fingerprint { path, size, mtime_ns, hash: format!("{h:016x}") })
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
/// a CSV file, IDX images and labels; none for built-in and synthetic datasets.
pub fn files(value: &Value, base: &Path) -> Vec<PathBuf> {
    let Value::Call(call) = value else { return Vec::new() };
    let path = |k: &str, pos: usize| match call.arg(k, pos) {
        Some(Value::Str(s)) => Some(base.join(s)),
        _ => None,
    };
    match catalogue::kind(catalogue::DATASETS, &call.name) {
        Some(Kind::Csv | Kind::Text) => path("path", 0).into_iter().collect(),
        Some(Kind::Idx) => path("images", 0).into_iter().chain(path("labels", 1)).collect(),
        _ => Vec::new(),
    }
}

/// Fingerprints of the files `value` reads (see [`files`]). A file that cannot be read is
/// left out: loading the data reports it.
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
}
