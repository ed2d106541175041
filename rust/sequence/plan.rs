//! The plan of a call: sequence lengths → which rows are active at each step,
//! and where every (row, step) lives in the driver's buffers. The masking
//! formula lives here:
//!
//! ```text
//! (output, state)(b, t) = t >= len[b] ? (0, state(b, len[b]-1)) : cell(x(b, t), state(b, t-1))
//! ```
//!
//! Rows are sorted by length (longest first, stable) and dealt round-robin
//! into *groups*; each group runs its whole sequence on one thread, so no
//! per-step synchronisation is needed. Inside a group the rows still active
//! at step `t` are always a prefix of length `active[t]`, so a finished row
//! costs nothing (PyTorch's packed-sequence idea).
//!
//! # Slot layout
//!
//! All per-token buffers (gathered inputs `X`, the gates, `aux`, `d_gates`)
//! and the state buffer `S` share one row layout: group after group, and inside a
//! group *blocks* `k = 0..=steps`, where block `k` holds `cap[k]` rows:
//!
//! ```text
//! cap[0] = active[0],   cap[k] = active[k-1]  (k >= 1)
//! S block k      = the state after step k-1 (block 0: the initial state)
//! X/dZ block k   = step k's rows (the first active[k]); the rest are zero
//! ```
//!
//! Because `S` block `t` and `dZ` block `t` line up row by row, the deferred
//! weight gradient `dW_h = Σ_t h_{t-1}ᵀ dZ_t` over a run of blocks is one
//! GEMM `Sᵀ @ dZ` over their rows, and `dW_x = Xᵀ @ dZ` likewise; the
//! backward pass makes them chunk by chunk of [`Plan::chunk_steps`] blocks.
//! The zero padding costs at most two rows per batch row in all.
//!
//! Group boundaries depend only on the batch size, never on the thread count.
//! The number of groups is a power of two (at least 16 rows each, at most 8
//! groups), so they share out evenly over 1, 2, 4 or 8 threads; 16 rows are
//! two blocks of the packed step kernel (`kernels/packed.rs`), which runs
//! them about as fast per row as 32, so a batch of 32 already uses two cores.

use crate::error::{Budget, Error, Result};
use crate::kernels::rows::try_vec;
use crate::pool::row_chunks;
use std::ops::Range;

/// Slot rows one chunk of the deferred products aims at (see
/// [`Plan::chunk_steps`]): enough for the weight-gradient products to run
/// at full speed, few enough that a chunk's gate gradients stay small.
pub const CHUNK_ROWS: usize = 512;

/// [`CHUNK_ROWS`] for a batch of one group (fewer than 32 rows): its one
/// time loop hands every chunk's products to the whole pool, and longer
/// chunks make fewer hand-overs (a tenth of a small call's time at 512 rows).
pub const SINGLE_GROUP_CHUNK_ROWS: usize = 4 * CHUNK_ROWS;

/// How the forward pass keeps what backpropagation needs (see
/// [`Plan::segment_steps`]). Without one it keeps every step's states,
/// gates and kept values; with one it keeps the state at the start of each
/// segment of steps only, and the backward pass recomputes each segment's
/// forward steps from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// A segment every `n >= 1` steps (rounded up to whole chunks).
    Every(usize),
    /// About `√T` steps per segment (`T` the longest length), which about
    /// minimises `T / n + n`.
    Auto,
}

/// Rows that run their sequence together, in one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Batch indices, longest sequence first.
    pub rows: Vec<usize>,
    /// `active[t]`: how many of `rows` are still running at step `t`.
    pub active: Vec<usize>,
    /// `start[k]`: first slot row of block `k`, `k = 0..=steps`;
    /// `start[steps + 1]` is the group's end.
    pub start: Vec<usize>,
}

impl Group {
    /// Steps this group runs (its longest length).
    pub fn steps(&self) -> usize {
        self.active.len()
    }
    /// Rows the group's initial-state block holds (`active[0]`, or 0).
    pub fn first_active(&self) -> usize {
        self.active.first().copied().unwrap_or(0)
    }
    /// The slot rows of the whole group.
    pub fn slots(&self) -> std::ops::Range<usize> {
        self.start[0]..*self.start.last().unwrap_or(&self.start[0])
    }

    /// Rows of block `k` (`cap[k]` in the module's slot layout).
    pub fn cap(&self, k: usize) -> usize {
        self.start[k + 1] - self.start[k]
    }

    /// Slot rows of blocks `k0..k1`, counted from the start of block `base`
    /// (a group's buffers that begin at block `base`).
    pub fn rows_from(&self, base: usize, k0: usize, k1: usize) -> Range<usize> {
        self.start[k0] - self.start[base]..self.start[k1] - self.start[base]
    }

    /// The segments `(t0, t1)` of `every` steps (the last may be shorter)
    /// that cover the group's steps, in order; none for a group of no steps.
    pub fn segments(&self, every: usize) -> impl DoubleEndedIterator<Item = (usize, usize)> {
        let steps = self.steps();
        (0..steps)
            .step_by(every.max(1))
            .map(move |t0| (t0, (t0 + every.max(1)).min(steps)))
    }

    /// Rows a checkpoint buffer holds for this group with segments of
    /// `every` steps: the state block at the start of each segment.
    pub fn checkpoint_rows(&self, every: usize) -> usize {
        self.segments(every).map(|(t0, _)| self.cap(t0)).sum()
    }
}

/// Where every (batch row, step) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Batch size `B`.
    pub batch: usize,
    /// Padded time `T`.
    pub time: usize,
    /// Each row's length.
    pub lengths: Vec<usize>,
    /// The groups, whose slot ranges tile `0..rows` in order.
    pub groups: Vec<Group>,
    /// `(group, rank)` of every batch row: its place in `groups[g].rows`.
    pub place: Vec<(usize, usize)>,
    /// Total slot rows.
    pub rows: usize,
}

/// The sizes of a call's plan, from its lengths, before anything is
/// allocated: what [`Plan::new`] will build and how many slot rows every
/// buffer of the call will have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Batch size `B`.
    pub batch: usize,
    /// Padded time `T`.
    pub time: usize,
    /// The longest length (0 for an empty batch).
    pub longest: usize,
    /// Tokens: the sum of the lengths.
    pub tokens: u128,
    /// Rows of length at least 1.
    pub running: usize,
}

impl Extent {
    /// Checks `lengths` (one per row, each in `[0, time]`; `None`: `time`
    /// for every row) and sums them, without allocating.
    pub fn new(batch: usize, time: usize, lengths: Option<&[i64]>) -> Result<Extent> {
        let Some(l) = lengths else {
            let running = if time > 0 { batch } else { 0 };
            return Ok(Extent {
                batch,
                time,
                longest: if batch > 0 { time } else { 0 },
                tokens: batch as u128 * time as u128,
                running,
            });
        };
        if l.len() != batch {
            return Err(Error::invalid(
                "sequence_length",
                format!("{batch} lengths (one per batch row)"),
                format!("{}", l.len()),
            ));
        }
        let (mut longest, mut tokens, mut running) = (0, 0u128, 0);
        for (b, &v) in l.iter().enumerate() {
            if v < 0 || v as u64 > time as u64 {
                return Err(Error::invalid(
                    "sequence_length",
                    format!("values in [0, {time}]"),
                    format!("{v} at index {b}"),
                ));
            }
            let v = v as usize;
            longest = longest.max(v);
            tokens += v as u128;
            running += usize::from(v > 0);
        }
        Ok(Extent {
            batch,
            time,
            longest,
            tokens,
            running,
        })
    }

    /// Slot rows `R` of every buffer of the call: each token's row, plus
    /// each running row's initial state (see the module's slot layout);
    /// `None` past `usize`.
    pub fn rows(&self) -> Option<usize> {
        usize::try_from(self.tokens + self.running as u128).ok()
    }

    /// Adds what [`Plan::new`] allocates to `budget`: per batch row its
    /// length, order, place, group entry and sorting scratch (six words);
    /// per group two words per step.
    pub fn add_plan(&self, budget: &mut Budget) {
        let word = std::mem::size_of::<usize>();
        budget.add("the plan's rows", &[self.batch, 6], word);
        let groups = row_chunks(self.batch);
        let steps = self.longest.saturating_mul(2).saturating_add(3);
        budget.add("the plan's steps", &[groups, steps], word);
    }
}

impl Plan {
    /// Builds the plan; `lengths` defaults to `time` for every row. Its
    /// tables are allocated fallibly ([`Error::OutOfMemory`] naming `inputs`
    /// when they cannot be), in time linear in the batch and the steps.
    pub fn new(batch: usize, time: usize, lengths: Option<&[i64]>) -> Result<Plan> {
        Extent::new(batch, time, lengths)?;
        let mut lens: Vec<usize> = try_vec(batch, "inputs", "the plan's lengths")?;
        match lengths {
            None => lens.resize(batch, time),
            Some(l) => lens.extend(l.iter().map(|&v| v as usize)),
        }
        let lengths = lens;
        let mut order: Vec<usize> = try_vec(batch, "inputs", "the plan's row order")?;
        order.extend(0..batch);
        if lengths.windows(2).any(|w| w[0] < w[1]) {
            order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
        }
        let n_groups = row_chunks(batch);
        let mut groups = Vec::with_capacity(n_groups);
        let mut place: Vec<(usize, usize)> = try_vec(batch, "inputs", "the plan's row places")?;
        place.resize(batch, (0, 0));
        let mut next = 0;
        for g in 0..n_groups {
            let mut rows: Vec<usize> =
                try_vec(batch.div_ceil(n_groups), "inputs", "a group's rows")?;
            rows.extend(order.iter().copied().skip(g).step_by(n_groups));
            for (rank, &b) in rows.iter().enumerate() {
                place[b] = (g, rank);
            }
            let steps = rows.first().map_or(0, |&b| lengths[b]);
            // Rows are sorted longest first: those running at step t are a
            // prefix, shrinking as t grows.
            let mut active: Vec<usize> = try_vec(steps, "inputs", "a group's steps")?;
            let mut running = rows.len();
            for t in 0..steps {
                while running > 0 && lengths[rows[running - 1]] <= t {
                    running -= 1;
                }
                active.push(running);
            }
            let mut start: Vec<usize> = try_vec(steps + 2, "inputs", "a group's blocks")?;
            start.push(next);
            for k in 0..=steps {
                next += if k == 0 {
                    active.first().copied().unwrap_or(0)
                } else {
                    active[k - 1]
                };
                start.push(next);
            }
            groups.push(Group {
                rows,
                active,
                start,
            });
        }
        Ok(Plan {
            batch,
            time,
            lengths,
            groups,
            place,
            rows: next,
        })
    }

    /// Slot row of batch row `b`'s token at step `t` in a per-token buffer
    /// (`X`, `dZ`), or `None` past its length.
    pub fn token_slot(&self, b: usize, t: usize) -> Option<usize> {
        (t < self.lengths[b]).then(|| {
            let (g, rank) = self.place[b];
            self.groups[g].start[t] + rank
        })
    }

    /// Slot row in `S` of batch row `b`'s state after step `t`, or `None`
    /// past its length.
    pub fn state_slot(&self, b: usize, t: usize) -> Option<usize> {
        (t < self.lengths[b]).then(|| {
            let (g, rank) = self.place[b];
            self.groups[g].start[t + 1] + rank
        })
    }

    /// Slot row in `S` of batch row `b`'s final state, or `None` when its
    /// length is 0 (its final state is the initial state).
    pub fn final_slot(&self, b: usize) -> Option<usize> {
        self.lengths[b]
            .checked_sub(1)
            .and_then(|t| self.state_slot(b, t))
    }

    /// Tokens (the sum of the lengths): the steps the rows actually run.
    pub fn tokens(&self) -> usize {
        self.lengths.iter().sum()
    }

    /// Steps per chunk of the deferred products: the smallest power of two
    /// that gives a group's rows [`CHUNK_ROWS`] slot rows (32 steps for 16
    /// rows; [`SINGLE_GROUP_CHUNK_ROWS`] when the batch is one group). The
    /// backward pass runs the weight-gradient products and
    /// `d inputs` over chunks of this many steps, in the same order whether
    /// the forward pass kept its states or recomputes them, so the sums are
    /// formed in the same order either way (a product over all tokens at
    /// once rounds differently from a sum of products over chunks). It
    /// depends on the batch size only.
    pub fn chunk_steps(&self) -> usize {
        chunk_steps(self.batch)
    }

    /// Steps per segment under `checkpoint`: its steps rounded up to whole
    /// chunks ([`Plan::chunk_steps`]), at least one chunk (and no more than
    /// the chunks the longest row runs).
    pub fn segment_steps(&self, checkpoint: Checkpoint) -> usize {
        let longest = self.groups.iter().map(Group::steps).max().unwrap_or(0);
        segment_steps(checkpoint, self.batch, longest)
    }
}

/// [`Plan::chunk_steps`] for a batch of `batch` rows.
pub fn chunk_steps(batch: usize) -> usize {
    let groups = row_chunks(batch);
    let per_group = batch.div_ceil(groups).max(1);
    let rows = if groups == 1 {
        SINGLE_GROUP_CHUNK_ROWS
    } else {
        CHUNK_ROWS
    };
    rows.div_ceil(per_group).next_power_of_two()
}

/// [`Plan::segment_steps`] for a batch of `batch` rows whose longest runs
/// `longest` steps.
pub fn segment_steps(checkpoint: Checkpoint, batch: usize, longest: usize) -> usize {
    let every = match checkpoint {
        Checkpoint::Every(n) => n,
        Checkpoint::Auto => (longest as f64).sqrt().ceil() as usize,
    };
    let chunk = chunk_steps(batch);
    every.clamp(1, longest.max(1)).div_ceil(chunk) * chunk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ragged_plan_of_the_chapter_example() {
        // seq_length_batch = [2, 1, 2, 2]: one group, rows sorted stably.
        let p = Plan::new(4, 2, Some(&[2, 1, 2, 2])).unwrap();
        assert_eq!(p.groups.len(), 1);
        let g = &p.groups[0];
        assert_eq!(g.rows, vec![0, 2, 3, 1]);
        assert_eq!(g.active, vec![4, 3]);
        // blocks: h0 (4 rows), step0 / S after step 0 (4), S after step 1 (3)
        assert_eq!(g.start, vec![0, 4, 8, 11]);
        assert_eq!(p.rows, 11);
        assert_eq!(p.token_slot(1, 0), Some(3));
        assert_eq!(p.token_slot(1, 1), None);
        assert_eq!(p.final_slot(1), Some(4 + 3));
        assert_eq!(p.final_slot(0), Some(8));
    }

    #[test]
    fn zero_lengths_and_empty_batches() {
        let p = Plan::new(3, 5, Some(&[0, 0, 0])).unwrap();
        assert_eq!(p.rows, 0);
        assert_eq!(p.final_slot(2), None);
        let p = Plan::new(0, 5, None).unwrap();
        assert_eq!(p.rows, 0);
        let p = Plan::new(2, 0, None).unwrap();
        assert_eq!(p.rows, 0);
    }

    #[test]
    fn rejects_bad_lengths() {
        let e = Plan::new(2, 3, Some(&[1, 4])).unwrap_err().to_string();
        assert!(
            e.contains("sequence_length") && e.contains("[0, 3]") && e.contains("4 at index 1"),
            "{e}"
        );
        assert!(Plan::new(2, 3, Some(&[-1, 1])).is_err());
        assert!(Plan::new(2, 3, Some(&[1])).is_err());
    }

    #[test]
    fn groups_tile_the_slots_and_balance() {
        let lens: Vec<i64> = (0..80).map(|i| (i * 7 % 11) as i64).collect();
        let p = Plan::new(80, 10, Some(&lens)).unwrap();
        assert_eq!(p.groups.len(), 4);
        let sizes = |b| Plan::new(b, 1, None).unwrap().groups.len();
        assert_eq!(
            [4, 16, 31, 32, 47, 48, 64, 100, 128, 1000].map(sizes),
            [1, 1, 1, 2, 2, 2, 4, 4, 8, 8]
        );
        let mut end = 0;
        for g in &p.groups {
            assert_eq!(g.slots().start, end);
            end = g.slots().end;
            for w in g.rows.windows(2) {
                assert!(p.lengths[w[0]] >= p.lengths[w[1]]);
            }
        }
        assert_eq!(end, p.rows);
        // every token has a distinct slot
        let mut seen = std::collections::HashSet::new();
        for b in 0..80 {
            for t in 0..10 {
                if let Some(s) = p.token_slot(b, t) {
                    assert!(seen.insert(s));
                }
            }
        }
        assert_eq!(seen.len(), p.tokens());
    }
}
