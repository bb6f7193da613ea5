//! The steps of a run, one file each. Every step lists what looks due, then handles each item
//! under a guard (a guarded status change, a conditional update, or a per-item advisory lock
//! with a re-check) so an overlapping run does each thing once.

mod expire;
mod idle;
mod missing;
mod orphans;
mod stale;
mod storage;
mod warnings;
