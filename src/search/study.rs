//! STUB (being written): the trial loop.
