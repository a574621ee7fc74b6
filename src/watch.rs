//! Watch mode's library half: which files to watch, waiting for a save, cancelling a run.
//!
//! Takes the [`Compiled`] result of the last successful check; [`local_files`] gives
//! the root file and its local imports (the stdlib is not on disk). [`FileWatcher`]
//! watches the *folders* of those files, not the files, and filters events by path,
//! so an editor that saves by writing a temporary file and renaming it over the old
//! one (vim, VS Code's atomic save, `bma fmt`) is seen like an in-place write.
//! [`FileWatcher::wait`] blocks until a watched file changes, then waits until the
//! burst of events is quiet for the debounce time. [`CancelToken`] is how the CLI
//! tells a background run to stop (the study's reuse of earlier trials is
//! [`crate::study::reuse`]). Nothing here prints.
//!
//! **Invariant:** after [`FileWatcher::set_files`], exactly the folders of the given
//! files are watched, and only events naming one of those files wake [`FileWatcher::wait`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
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

/// Watches a set of files through their folders.
pub struct FileWatcher {
    watcher: notify::RecommendedWatcher,
    events: Receiver<notify::Result<notify::Event>>,
    files: BTreeSet<PathBuf>,
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
        let watcher = notify::recommended_watcher(move |e| {
            let _ = tx.send(e);
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
        Ok(FileWatcher { watcher, events, files: BTreeSet::new(), dirs: BTreeSet::new() })
    }

    /// Watches exactly `files` from now on (their folders, non-recursively).
    pub fn set_files(&mut self, files: &[PathBuf]) -> Result<(), String> {
        let files: BTreeSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let dirs: BTreeSet<PathBuf> = files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
        for gone in self.dirs.difference(&dirs) {
            let _ = self.watcher.unwatch(gone);
        }
        for new in dirs.difference(&self.dirs) {
            self.watcher
                .watch(new, RecursiveMode::NonRecursive)
                .map_err(|e| format!("cannot watch {}: {e}", new.display()))?;
        }
        self.files = files;
        self.dirs = dirs;
        Ok(())
    }

    pub fn files(&self) -> &BTreeSet<PathBuf> {
        &self.files
    }

    /// The watched files an event names, if it is a change.
    fn relevant(&self, event: &notify::Event) -> Vec<PathBuf> {
        if matches!(event.kind, EventKind::Access(_)) {
            return Vec::new();
        }
        event.paths.iter().map(|p| absolute(p)).filter(|p| self.files.contains(p)).collect()
    }

    /// Blocks until a watched file changes and the events have been quiet for
    /// `debounce`; gives the changed files. `None` when `timeout` passes first or the
    /// watcher is gone.
    pub fn wait(&self, debounce: Duration, timeout: Option<Duration>) -> Option<Vec<PathBuf>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut changed = BTreeSet::new();
        // The first relevant event.
        while changed.is_empty() {
            let event = match deadline {
                Some(d) => match self.events.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(e) => e,
                    Err(_) => return None,
                },
                None => self.events.recv().ok()?,
            };
            if let Ok(e) = event {
                changed.extend(self.relevant(&e));
            }
        }
        // Then until the burst is quiet (an atomic save is several events).
        loop {
            match self.events.recv_timeout(debounce) {
                Ok(Ok(e)) => changed.extend(self.relevant(&e)),
                Ok(Err(_)) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Some(changed.into_iter().collect())
    }
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
