//! Watch mode's library half: which files to watch, waiting for a save, cancelling a run.
//!
//! Takes the [`Compiled`] result of the last successful check; [`local_files`] gives
//! the root file and its local imports (the stdlib is not on disk). [`FileWatcher`]
//! watches the *folders* of those files, not the files, and filters events by path,
//! so an editor that saves by writing a temporary file and renaming it over the old
//! one (vim, VS Code's atomic save, `bma fmt`) is seen like an in-place write.
//! [`FileWatcher::wait`] blocks until a watched file changes, then waits until the
//! burst of events is quiet for the debounce time. A folder on the way to a watched
//! file that is removed, moved away or moved back (`mv lib lib.bak; mv lib.bak lib`)
//! wakes it too, naming the files below that folder, and every folder is watched
//! again, so what reappears is seen. [`Waker`] wakes a waiting [`FileWatcher::wait`]
//! from another thread (Ctrl-C). [`CancelToken`] is how the CLI tells a background
//! run to stop (the study's reuse of earlier trials is [`crate::study::reuse`]).
//! Nothing here prints.
//!
//! **Invariant:** after [`FileWatcher::set_files`], the folders of the given files and
//! the folders between them and the files' common folder are watched (those that
//! exist), and only events naming one of those files or folders wake
//! [`FileWatcher::wait`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::Compiled;

/// The default quiet time after the last event of a save.
pub const DEBOUNCE: Duration = Duration::from_millis(15);

/// A shared stop flag: the watcher sets it, the run polls it between epochs and trials.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, as the study loop's stop flag.
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }
}

/// The files on disk a compilation read: the root file and its local imports, absolute.
pub fn local_files(compiled: &Compiled) -> Vec<PathBuf> {
    let mut out = BTreeSet::new();
    for (_, s) in compiled.sources.iter() {
        if let Some(p) = &s.path {
            out.insert(absolute(p));
        }
    }
    out.into_iter().collect()
}

/// `path` made absolute with its folder canonicalised (the file itself may be mid-rename).
pub fn absolute(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent).unwrap_or(parent);
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// What the watcher's channel carries: a file event, or a wake-up from a [`Waker`].
enum Message {
    Event(notify::Result<notify::Event>),
    Wake,
}

/// Wakes a [`FileWatcher::wait`] from another thread (a signal handler).
#[derive(Clone)]
pub struct Waker(Sender<Message>);

impl Waker {
    pub fn wake(&self) {
        let _ = self.0.send(Message::Wake);
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// Watches a set of files through their folders.
pub struct FileWatcher {
    watcher: notify::RecommendedWatcher,
    events: Receiver<Message>,
    wake: Sender<Message>,
    files: BTreeSet<PathBuf>,
    /// The folders to watch: each file's folder and those between it and the common folder.
    dirs: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher").field("files", &self.files).field("dirs", &self.dirs).finish()
    }
}

impl FileWatcher {
    pub fn new() -> Result<FileWatcher, String> {
        let (tx, events) = channel();
        let wake = tx.clone();
        let watcher = notify::recommended_watcher(move |e| {
            let _ = tx.send(Message::Event(e));
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
        Ok(FileWatcher { watcher, events, wake, files: BTreeSet::new(), dirs: BTreeSet::new() })
    }

    /// A handle that makes [`FileWatcher::wait`] return at once.
    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    /// Watches exactly `files` from now on (their folders and the folders between those
    /// and the files' common folder, non-recursively). A folder that does not exist
    /// now is watched once it reappears (see [`FileWatcher::wait`]).
    pub fn set_files(&mut self, files: &[PathBuf]) -> Result<(), String> {
        let files: BTreeSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let dirs = folders(&files);
        for gone in self.dirs.difference(&dirs) {
            let _ = self.watcher.unwatch(gone);
        }
        for new in dirs.difference(&self.dirs) {
            if let Err(e) = self.watcher.watch(new, RecursiveMode::NonRecursive)
                && new.exists()
            {
                return Err(format!("cannot watch {}: {e}", new.display()));
            }
        }
        self.files = files;
        self.dirs = dirs;
        Ok(())
    }

    pub fn files(&self) -> &BTreeSet<PathBuf> {
        &self.files
    }

    /// The watched files an event names, if it is a change: the files it names, and
    /// every file below a watched folder it names (the folder moved or was removed).
    /// Adds the watched folders it names to `folders`.
    fn relevant(&self, event: &notify::Event, folders: &mut BTreeSet<PathBuf>) -> Vec<PathBuf> {
        if matches!(event.kind, EventKind::Access(_)) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for p in event.paths.iter().map(|p| absolute(p)) {
            if self.files.contains(&p) {
                out.push(p);
            } else if self.dirs.contains(&p) {
                out.extend(self.files.iter().filter(|f| f.starts_with(&p)).cloned());
                folders.insert(p);
            }
        }
        out
    }

    /// Watches the folders at and below `moved` again: a folder moved away and back
    /// is a new watch on whatever is at its path now (the old watch followed the
    /// folder away, or ended with it); one that is still gone is watched once an
    /// event in its parent names it again.
    fn rewatch(&mut self, moved: &BTreeSet<PathBuf>) {
        for dir in self.dirs.iter().filter(|d| moved.iter().any(|m| d.starts_with(m))) {
            let _ = self.watcher.unwatch(dir);
            let _ = self.watcher.watch(dir, RecursiveMode::NonRecursive);
        }
    }

    /// Blocks until a watched file changes and the events have been quiet for
    /// `debounce`; gives the changed files (none when a [`Waker`] woke it). `None`
    /// when `timeout` passes first or the watcher is gone.
    pub fn wait(&mut self, debounce: Duration, timeout: Option<Duration>) -> Option<Vec<PathBuf>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut changed = BTreeSet::new();
        let mut folders = BTreeSet::new();
        // The first relevant event.
        while changed.is_empty() {
            let message = match deadline {
                Some(d) => match self.events.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(m) => m,
                    Err(_) => return None,
                },
                None => self.events.recv().ok()?,
            };
            match message {
                Message::Event(Ok(e)) => changed.extend(self.relevant(&e, &mut folders)),
                Message::Event(Err(_)) => {}
                Message::Wake => return Some(Vec::new()),
            }
        }
        // Then until the burst is quiet (an atomic save is several events).
        loop {
            match self.events.recv_timeout(debounce) {
                Ok(Message::Event(Ok(e))) => changed.extend(self.relevant(&e, &mut folders)),
                Ok(Message::Event(Err(_))) => {}
                // The caller checks why it was woken after every return.
                Ok(Message::Wake) => break,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if !folders.is_empty() {
            self.rewatch(&folders);
        }
        Some(changed.into_iter().collect())
    }
}

/// The folders to watch for `files`: each one's folder, and every folder between
/// that and the folder all of them share (so a move of any of those is seen).
fn folders(files: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let parents: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    let Some(first) = parents.first() else { return BTreeSet::new() };
    let common = parents.iter().fold(first.to_path_buf(), |common, p| {
        common.ancestors().find(|a| p.starts_with(a)).map(Path::to_path_buf).unwrap_or_default()
    });
    let mut dirs = BTreeSet::new();
    for p in parents {
        for a in p.ancestors() {
            dirs.insert(a.to_path_buf());
            if a == common || !a.starts_with(&common) {
                break;
            }
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_token_is_shared() {
        let t = CancelToken::new();
        let u = t.clone();
        assert!(!u.is_cancelled());
        t.cancel();
        assert!(u.is_cancelled());
    }

    #[test]
    fn in_place_writes_and_atomic_renames_are_seen_and_other_files_are_not() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("bma-watch-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let file = dir.join("a.bma");
        std::fs::write(&file, "x").map_err(|e| e.to_string())?;
        let mut w = FileWatcher::new()?;
        w.set_files(std::slice::from_ref(&file))?;
        // Another file in the folder: not a change.
        std::fs::write(dir.join("other.txt"), "y").map_err(|e| e.to_string())?;
        assert_eq!(w.wait(DEBOUNCE, Some(Duration::from_millis(300))), None);
        // In place.
        std::fs::write(&file, "xx").map_err(|e| e.to_string())?;
        assert_eq!(w.wait(DEBOUNCE, Some(Duration::from_secs(5))), Some(vec![absolute(&file)]));
        // Atomic replace: write a temporary file, rename it over.
        let tmp = dir.join(".a.bma.tmp");
        std::fs::write(&tmp, "xxx").map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &file).map_err(|e| e.to_string())?;
        assert_eq!(w.wait(DEBOUNCE, Some(Duration::from_secs(5))), Some(vec![absolute(&file)]));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
