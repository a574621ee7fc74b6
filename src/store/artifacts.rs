//! Trained models that travel through the store: a trial's saved model folder packed into
//! one byte string (an *artifact*), hashed, cut into chunks for the database, and put back
//! into a folder on any machine.
//!
//! Takes a model folder (`<out>/trials/<n>/`: weights, graph, fitted preprocessing, the
//! manifest: every plain file under it); gives an [`Artifact`] ([`pack`]), its chunks
//! ([`Artifact::chunks`], [`CHUNK`] bytes each) with their SHA-256, and back from chunks read
//! out of a store a verified artifact ([`assemble`]) unpacked into a folder ([`unpack`]).
//!
//! The packed form: `BMAART1\n`, then per file (sorted by path, `/`-separated, relative)
//! the path's length (u32 LE), the path, the content's length (u64 LE), the content.
//!
//! **Invariants:**
//! - an artifact's `sha256` is the SHA-256 of its packed bytes and every chunk carries its
//!   own; [`assemble`] gives bytes only when every chunk and the whole match their hashes,
//!   else an error naming the trial and the chunk, never a model built from damaged bytes;
//! - [`unpack`] writes nothing outside its folder (absolute paths and `..` are refused),
//!   and puts the folder in place whole (a temporary sibling, then a rename): a reader never
//!   sees half a model;
//! - stores write an artifact's chunks and its header row in one transaction, guarded by
//!   the trial's claim, before the trial is recorded complete: a process killed while
//!   uploading leaves nothing, and the trial is requeued as any trial of a dead worker.
//!
//! [`set_chunk_hook`] is test-only fault injection: the CLI installs it from
//! `BMA_TEST_KILL_UPLOAD` to kill its own process after a chunk is sent and before the
//! transaction commits. The library reads no environment variable.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The size of one stored chunk: 1 MiB, well below PostgreSQL's 1 GB field limit and small
/// enough that one row never strains a connection's buffers.
pub const CHUNK: usize = 1 << 20;

const MAGIC: &[u8] = b"BMAART1\n";

/// A packed model folder and its content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lowercase hex.
    pub sha256: String,
    /// How many files it holds.
    pub files: u32,
}

/// One artifact as a store lists it (no content).
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactInfo {
    pub number: u64,
    /// Packed size in bytes.
    pub size: u64,
    pub sha256: String,
    pub chunks: u32,
    pub files: u32,
    /// The worker that uploaded it.
    pub worker: Option<String>,
}

/// One chunk as a store hands it back: its index, stored hash and bytes.
pub struct StoredChunk {
    pub index: u32,
    pub sha256: String,
    pub data: Vec<u8>,
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl Artifact {
    /// An artifact of already packed bytes (their hash computed here).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Artifact, String> {
        let files = list(&bytes)?.len() as u32;
        Ok(Artifact { sha256: sha256(&bytes), bytes, files })
    }

    /// The chunks to store, in order, each with its SHA-256 (at least one, even when empty).
    pub fn chunks(&self) -> Vec<(&[u8], String)> {
        let mut out: Vec<(&[u8], String)> = self.bytes.chunks(CHUNK).map(|c| (c, sha256(c))).collect();
        if out.is_empty() {
            out.push((&[], sha256(&[])));
        }
        out
    }
}

/// Packs every plain file under `dir` (recursively, sorted by path). A symbolic link or
/// anything but files and folders is refused.
pub fn pack(dir: &Path) -> Result<Artifact, String> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut bytes = MAGIC.to_vec();
    for rel in &files {
        let data = std::fs::read(dir.join(rel)).map_err(|e| format!("cannot read {}: {e}", dir.join(rel).display()))?;
        let name = rel.to_string_lossy().replace('\\', "/");
        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&data);
    }
    Ok(Artifact { sha256: sha256(&bytes), files: files.len() as u32, bytes })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).map_err(|e| e.to_string())?.to_path_buf());
        } else {
            return Err(format!("{} is not a plain file; a model folder holds only files", path.display()));
        }
    }
    Ok(())
}

/// The files of packed bytes: (path, content range), checked against the bytes' length.
fn list(bytes: &[u8]) -> Result<Vec<(String, std::ops::Range<usize>)>, String> {
    let bad = |why: &str| format!("not a bma model artifact: {why}");
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| bad("it does not start with BMAART1"))?;
    let mut at = MAGIC.len();
    let end = MAGIC.len() + rest.len();
    let mut out = Vec::new();
    let take = |at: &mut usize, n: usize| -> Result<std::ops::Range<usize>, String> {
        let stop = at.checked_add(n).filter(|s| *s <= end).ok_or_else(|| bad("it is truncated"))?;
        let r = *at..stop;
        *at = stop;
        Ok(r)
    };
    while at < end {
        let r = take(&mut at, 4)?;
        let n = u32::from_le_bytes(bytes[r].try_into().map_err(|_| bad("a bad path length"))?) as usize;
        let r = take(&mut at, n)?;
        let name = std::str::from_utf8(&bytes[r]).map_err(|_| bad("a path that is not UTF-8"))?.to_string();
        let r = take(&mut at, 8)?;
        let len = u64::from_le_bytes(bytes[r].try_into().map_err(|_| bad("a bad file length"))?);
        let len = usize::try_from(len).map_err(|_| bad("a file longer than memory"))?;
        let r = take(&mut at, len)?;
        out.push((name, r));
    }
    Ok(out)
}

/// A path of an artifact as a relative path inside its folder; `None` for one that
/// would leave it (absolute, `..`, empty).
fn safe(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    let ok = !name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| p.to_path_buf())
}

/// Writes the artifact's files into `dir` (made whole in a temporary sibling, then renamed
/// into place; an existing `dir` is replaced).
pub fn unpack(artifact: &Artifact, dir: &Path) -> Result<(), String> {
    let files = list(&artifact.bytes)?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "artifact".into());
    let tmp = parent.join(format!(".{name}.fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let write = || -> Result<(), String> {
        std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        for (name, range) in &files {
            let rel = safe(name).ok_or_else(|| format!("the artifact holds a path outside its folder: `{name}`"))?;
            let path = tmp.join(rel);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            }
            std::fs::write(&path, &artifact.bytes[range.clone()])
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("cannot replace {}: {e}", dir.display()))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| format!("cannot put {} in place: {e}", dir.display()))
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}

/// The artifact of trial `number` from its header (`sha256`, `chunks`) and the chunks read
/// back: every chunk and the whole checked against their SHA-256. An error names the trial,
/// the chunk and both hashes.
pub fn assemble(number: u64, sha256_whole: &str, count: u32, chunks: Vec<StoredChunk>) -> Result<Artifact, String> {
    if chunks.len() != count as usize {
        return Err(format!(
            "the stored model of trial {number} is damaged: {} of its {count} chunk(s) are in the store",
            chunks.len()
        ));
    }
    let mut bytes = Vec::with_capacity(chunks.iter().map(|c| c.data.len()).sum());
    for (i, c) in chunks.into_iter().enumerate() {
        if c.index as usize != i {
            return Err(format!("the stored model of trial {number} is damaged: chunk {i} is missing"));
        }
        let got = sha256(&c.data);
        if got != c.sha256 {
            return Err(format!(
                "the stored model of trial {number} is damaged: chunk {i} has SHA-256 {got}, but {} was stored \
                 with it; it is not used (rerun the trial, or restore the database)",
                c.sha256
            ));
        }
        bytes.extend_from_slice(&c.data);
    }
    let got = sha256(&bytes);
    if got != sha256_whole {
        return Err(format!(
            "the stored model of trial {number} is damaged: its content has SHA-256 {got}, but {sha256_whole} \
             was stored; it is not used"
        ));
    }
    let files = list(&bytes).map_err(|e| format!("the stored model of trial {number}: {e}"))?.len() as u32;
    Ok(Artifact { bytes, sha256: got, files })
}

/// Called by a store after each chunk it sent inside an upload's transaction, with the
/// trial's number and the chunk's index. Test-only fault injection (see the module header).
pub type ChunkHook = fn(u64, u32);

static HOOK: OnceLock<ChunkHook> = OnceLock::new();

/// Installs the chunk hook (once per process; later calls are ignored). Test-only.
pub fn set_chunk_hook(hook: ChunkHook) {
    let _ = HOOK.set(hook);
}

/// Stores call this after sending chunk `index` of trial `number`.
pub(crate) fn chunk_sent(number: u64, index: u32) {
    if let Some(h) = HOOK.get() {
        h(number, index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("a temp folder");
        for (name, data) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("create");
            std::fs::write(p, data).expect("write");
        }
        d
    }

    #[test]
    fn a_folder_packs_and_unpacks_byte_for_byte() {
        let big: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i * 31 % 251) as u8).collect();
        let d = folder(&[("model.json", b"{}"), ("model.safetensors", &big), ("sub/x.txt", b"x")]);
        let a = pack(d.path()).expect("packs");
        assert_eq!(a.files, 3);
        assert_eq!(a.sha256, sha256(&a.bytes));
        let chunks = a.chunks();
        assert_eq!(chunks.len(), 3, "two full chunks and a short one");
        let stored: Vec<StoredChunk> = chunks
            .iter()
            .enumerate()
            .map(|(i, (c, h))| StoredChunk { index: i as u32, sha256: h.clone(), data: c.to_vec() })
            .collect();
        let back = assemble(4, &a.sha256, 3, stored).expect("verifies");
        assert_eq!(back, a);
        let out = tempfile::tempdir().expect("a temp folder");
        let dir = out.path().join("trials").join("4");
        unpack(&back, &dir).expect("unpacks");
        assert_eq!(std::fs::read(dir.join("model.safetensors")).expect("read"), big);
        assert_eq!(std::fs::read(dir.join("sub/x.txt")).expect("read"), b"x");
        assert_eq!(pack(&dir).expect("packs again").sha256, a.sha256, "the same folder packs to the same bytes");
    }

    #[test]
    fn a_damaged_chunk_a_missing_chunk_and_a_wrong_whole_are_refused() {
        let d = folder(&[("model.json", b"{\"a\": 1}")]);
        let a = pack(d.path()).expect("packs");
        let (c, h) = a.chunks()[0].clone();
        let mut bad = c.to_vec();
        bad[9] ^= 1;
        let e = assemble(7, &a.sha256, 1, vec![StoredChunk { index: 0, sha256: h.clone(), data: bad }])
            .expect_err("a flipped bit is refused");
        assert!(e.contains("trial 7") && e.contains("chunk 0") && e.contains(&h), "{e}");
        let e = assemble(7, &a.sha256, 2, vec![StoredChunk { index: 0, sha256: h.clone(), data: c.to_vec() }])
            .expect_err("a missing chunk is refused");
        assert!(e.contains("1 of its 2"), "{e}");
        let e = assemble(7, &"0".repeat(64), 1, vec![StoredChunk { index: 0, sha256: h, data: c.to_vec() }])
            .expect_err("a wrong whole hash is refused");
        assert!(e.contains("content has SHA-256"), "{e}");
    }

    #[test]
    fn paths_outside_the_folder_and_truncated_bytes_are_refused() {
        let mut bytes = MAGIC.to_vec();
        let name = b"../evil";
        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.push(b'x');
        let a = Artifact::from_bytes(bytes.clone()).expect("well formed");
        let out = tempfile::tempdir().expect("a temp folder");
        let e = unpack(&a, &out.path().join("t")).expect_err("refused");
        assert!(e.contains("outside its folder"), "{e}");
        assert!(!out.path().join("evil").exists() && !out.path().join("t").exists());
        let e = Artifact::from_bytes(bytes[..bytes.len() - 1].to_vec()).expect_err("truncated");
        assert!(e.contains("truncated"), "{e}");
        assert_eq!(sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
