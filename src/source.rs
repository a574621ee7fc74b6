//! Source files and spans.
//!
//! Takes a path and its text, gives a [`Source`] with a [`FileId`]; every AST and IR
//! node carries a [`Span`] into one of them.
//! **Invariant:** a span's `start..end` is a valid byte range on char boundaries of
//! the source named by its `file`.

use std::path::{Path, PathBuf};

/// Which source a span points into: an index into [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range in one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: clamp_u32(start), end: clamp_u32(end) }
    }

    /// The smallest span covering both (same file assumed; `self`'s file wins).
    pub fn to(self, other: Span) -> Span {
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The largest `.bma` file read (bytes): far beyond any real one, and a guard against reading a
/// device or a huge data file given by mistake (`bma check /dev/zero` read until memory ran out).
pub const MAX_SOURCE: u64 = 16 << 20;

/// Reads at most [`MAX_SOURCE`] bytes of `reader` as UTF-8 text.
pub fn read_text(reader: impl std::io::Read) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let mut bytes = Vec::new();
    reader.take(MAX_SOURCE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SOURCE {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB: not a .bma file", MAX_SOURCE >> 20),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::new(ErrorKind::InvalidData, format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
    })
}

/// Reads the file at `path` with [`read_text`]; only a regular file (or a symlink to one)
/// is read. A named pipe blocked `bma check` forever and a device was read until memory ran
/// out: anything else is refused with `InvalidData` ("not a regular file (a named pipe)").
/// The type is checked before the file is opened (opening a pipe waits for a writer) and
/// again on the opened file, so a file swapped in between is refused too.
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    regular(&std::fs::metadata(path)?)?;
    let file = std::fs::File::open(path)?;
    regular(&file.metadata()?)?;
    read_text(file)
}

/// `Ok` for a regular file, else the `InvalidData` error that names what it is.
fn regular(meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("not a regular file ({})", file_kind(&meta.file_type())),
    ))
}

/// What a file that is not a regular file is, in words.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() { "a folder" } else { "not a file" }
}

/// One file's text and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name shown in diagnostics (the path as given, or `std::blocks`).
    pub name: String,
    /// The path on disk, for resolving relative imports; `None` for the stdlib and tests.
    pub path: Option<PathBuf>,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source { name: name.into(), path: None, text: text.into() }
    }

    pub fn from_path(path: &Path, text: impl Into<String>) -> Source {
        Source { name: path.display().to_string(), path: Some(path.to_path_buf()), text: text.into() }
    }

    /// 1-based line and column (in chars) of a byte offset.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let offset = (offset as usize).min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// Every source a compilation read: the root file first, then imports and the stdlib.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<Source>,
}

impl Sources {
    pub fn add(&mut self, source: Source) -> FileId {
        self.files.push(source);
        FileId(clamp_u32(self.files.len() - 1))
    }

    pub fn get(&self, id: FileId) -> Option<&Source> {
        self.files.get(id.0 as usize)
    }

    /// The text a span covers, or `""` when it is out of range.
    pub fn text(&self, span: Span) -> &str {
        self.get(span.file).and_then(|s| s.text.get(span.range())).unwrap_or("")
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &Source)> {
        self.files.iter().enumerate().map(|(i, s)| (FileId(clamp_u32(i)), s))
    }

    pub fn find(&self, name: &str) -> Option<FileId> {
        self.iter().find(|(_, s)| s.name == name).map(|(id, _)| id)
    }
}
