//! Batches of a split's rows, in a given order: the one way training, evaluation and
//! batch-norm recomputation read a [`data::Split`].
//!
//! Takes a split, an order of its rows and a batch size; gives, per batch, the rows' indices
//! (a slice of the order) and their values (`rows x features`, row-major). An in-memory split's
//! rows are copied (or converted from bytes and scaled) when the batch is asked for. A streamed
//! split's (`stream: true`) are read
//! from its cache file by a thread of their own, at most [`PREFETCH`] batches ahead, so
//! reading and converting overlap the network's work.
//!
//! **Invariants:** the values are the same for an in-memory and a streamed split of the same
//! data, batch for batch; the reader thread never runs more than [`PREFETCH`] batches ahead
//! (memory is bounded by the batch size, not the dataset), and it ends when the batches are
//! dropped, whether or not they were all read (a trial stopped mid-epoch does not hang); a
//! read error is given with the batch it spoils.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::data::{DataError, Split, StoredRows};

/// How many batches a streamed split's reader keeps ready beyond the one in use.
pub const PREFETCH: usize = 2;

type Batch = Result<Vec<f32>, DataError>;

/// The batches of `order` (split row indices) `batch` rows at a time; see the module header.
pub(super) fn batches<'a>(split: &'a Split, order: &'a [usize], batch: usize, features: usize) -> Batches<'a> {
    let batch = batch.max(1);
    let reader = split.stored.as_ref().filter(|rows| rows.cache.on_disk()).map(|rows| {
        let (tx, rx) = sync_channel(PREFETCH);
        let (rows, order) = (rows.clone(), order.to_vec());
        let handle = std::thread::Builder::new()
            .name("bma-batches".into())
            .spawn(move || read_ahead(&rows, &order, batch, &tx))
            .ok();
        (rx, handle)
    });
    Batches { split, order, batch, features, next: 0, reader }
}

/// The batches of a split, in order (see [`batches`]).
pub(super) struct Batches<'a> {
    split: &'a Split,
    order: &'a [usize],
    batch: usize,
    features: usize,
    next: usize,
    /// A streamed split's reader: its batches, and its thread (`None` when none could start:
    /// the batches are then read here).
    reader: Option<(Receiver<Batch>, Option<JoinHandle<()>>)>,
}

impl<'a> Iterator for Batches<'a> {
    type Item = (&'a [usize], Batch);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch).min(self.order.len());
        let rows = &self.order[self.next..end];
        self.next = end;
        let values = match &self.reader {
            Some((rx, Some(_))) => rx.recv().unwrap_or_else(|_| Err(DataError::new("the batch reader stopped"))),
            _ => {
                let mut v = Vec::with_capacity(rows.len() * self.features);
                self.split.gather(rows, self.features, &mut v).map(|()| v)
            }
        };
        Some((rows, values))
    }
}

impl Drop for Batches<'_> {
    fn drop(&mut self) {
        if let Some((rx, handle)) = self.reader.take() {
            // The receiver goes first: a reader blocked on a full channel then wakes and ends.
            drop(rx);
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
    }
}

fn read_ahead(rows: &StoredRows, order: &[usize], batch: usize, tx: &SyncSender<Batch>) {
    for chunk in order.chunks(batch) {
        let mut v = Vec::with_capacity(chunk.len() * rows.cache.features());
        let got = rows.gather(chunk, &mut v).map(|()| v);
        let failed = got.is_err();
        if tx.send(got).is_err() || failed {
            return;
        }
    }
}
