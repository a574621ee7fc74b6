//! The report while a run goes on: `report.html` rewritten at most every few seconds,
//! with a `<meta http-equiv="refresh">` so that an open browser tab follows the run.
//!
//! Takes the report's path and the study's trials as they finish ([`Live::update`], or
//! [`Observer`] around the trial loop's observer); gives nothing but the file. Each
//! write renders the whole report (O(n log n), see the parent module) on the thread that
//! recorded the trial, at most once per [`Live::every`]. **Invariants:** a write happens at most once per [`Live::every`] (the first
//! trial always writes); each write replaces the file whole ([`super::write_with`]); the
//! run's end writes the report without the refresh through [`super::write`], so a
//! finished study's page stands still. A live write that fails is skipped, never a
//! failed run: the final write reports its own failure as a note.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Options, ReportData};
use crate::search::study::{self as trial_loop, Event};
use crate::trial::Direction;

/// How often the page reloads itself, in seconds.
pub const REFRESH_SECONDS: u32 = 5;

/// A throttled writer of the live report.
#[derive(Debug)]
pub struct Live {
    path: PathBuf,
    /// The least time between two writes.
    pub every: Duration,
    last: Option<Instant>,
    /// What the last write showed, for [`Live::finish`].
    shown: Option<ReportData>,
}

impl Live {
    /// A live report at `path`, rewritten at most every [`REFRESH_SECONDS`].
    pub fn new(path: &Path) -> Live {
        Live {
            path: path.to_path_buf(),
            every: Duration::from_secs(u64::from(REFRESH_SECONDS)),
            last: None,
            shown: None,
        }
    }

    /// Whether a write now would be due.
    pub fn due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed() >= self.every)
    }

    /// Writes the report from `data()` with the refresh tag when one is due (`data` is
    /// called only then); gives whether it wrote.
    pub fn update(&mut self, data: impl FnOnce() -> ReportData) -> std::io::Result<bool> {
        if !self.due() {
            return Ok(false);
        }
        self.last = Some(Instant::now());
        let data = data();
        super::write_with(&self.path, &data, &Options { refresh: Some(REFRESH_SECONDS) })?;
        self.shown = Some(data);
        Ok(true)
    }

    /// The run ended: rewrites the last live report without the refresh (nothing when
    /// none was written), so that a run that ends before its results are written (an
    /// error) does not leave a page reloading for ever.
    pub fn finish(&mut self) -> std::io::Result<()> {
        match self.shown.take() {
            Some(data) => super::write(&self.path, &data),
            None => Ok(()),
        }
    }
}

/// A trial-loop observer that passes every event on to `inner` and rewrites the live
/// report when a trial finishes.
pub struct Observer<'a> {
    inner: &'a dyn trial_loop::Observer,
    live: Mutex<Live>,
    title: String,
    objectives: Vec<(String, Direction)>,
}

impl<'a> Observer<'a> {
    /// Watches a study titled `title` whose report is at `path`.
    pub fn new(
        inner: &'a dyn trial_loop::Observer,
        path: &Path,
        title: &str,
        objectives: Vec<(String, Direction)>,
    ) -> Observer<'a> {
        Observer { inner, live: Mutex::new(Live::new(path)), title: title.to_string(), objectives }
    }
}

impl Observer<'_> {
    /// See [`Live::finish`]; call it when the loop has returned, whatever it returned.
    pub fn finish(&self) -> std::io::Result<()> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).finish()
    }
}

impl trial_loop::Observer for Observer<'_> {
    fn event(&self, event: Event<'_>) {
        if let Event::Finished { history, .. } = &event {
            // Another thread writing now: this trial shows in the next write.
            if let Ok(mut live) = self.live.try_lock() {
                let _ = live.update(|| ReportData::new(&self.title, &history.trials, self.objectives.clone(), None));
            }
        }
        self.inner.event(event);
    }
}
