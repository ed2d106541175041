//! One group's time steps split by hidden units over several threads.
//!
//! A batch of fewer than two groups' rows runs as one group, and a group's
//! steps follow one another, so such a batch (`B < 32`) used one core: the
//! step's product `h_prev @ W_h` for a few rows is too small to share out
//! by rows, and its weights, read once per step, are what it waits for. Cut
//! by *units* instead, each thread reads only its own columns of `W_h` (half
//! of them on two cores, which then fit in each core's L2) and runs the
//! element-wise update of its own units; the threads meet once per step,
//! since the next step's product reads every unit of the new state.
//!
//! [`run`] hands out (step, slice) *tickets* in order: whoever is free takes
//! the next one, and starts it once every slice of the previous step is
//! done. The thread that called it works too, so the loop finishes whatever
//! number of helpers actually shows up (none, when the pool is busy with
//! other calls): it never waits for a thread that has not started, not even
//! at the end (the helpers are detached jobs that a finished loop turns
//! away, `with_helpers`), so a caller off the pool's threads (a single step
//! from Python) is never held up by other calls keeping the pool busy. Each
//! slice computes its units exactly as the unsplit step would (the packed
//! product is one FMA chain per element, the update element-wise), so the
//! results do not depend on the split or on who ran which slice.
//!
//! The buffers are the forward loop's (see [`crate::sequence::plan`]): rows
//! of `width = parts × units` elements, in blocks, block `k` being rows
//! `starts[k]..starts[k + 1]`. Step `t` reads the first `active[t]` rows of
//! the states' block `t` and writes, in those rows, its slice's columns of
//! the gates' and kept values' block `t`, of the states' block `t + 1` and
//! of the scratch rows (the same rows, from 0, at every step).
//!
//! A step may have more than one *phase* (a GRU's candidate product reads
//! `r ⊙ h` of every unit): the threads meet after each phase, and in the
//! phases after the first the kept values' block `t` is read whole instead
//! of written.
//!
//! [`run_back`] is the backward loop, last step first, on the same tickets
//! (`tickets`): a slice writes its columns of the step's gate gradients
//! `dZ` (phase 0, the element-wise step) and then, once every slice has,
//! its columns of `dZ @ W_hᵀ` (phase 1), which reads all of `dZ`. A cell
//! may also write a few leading segments of `dZ` in phase 1 while the rest
//! is read whole ([`Kept`]; TensorFlow's GRU, three phases a step).

use crate::pool;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A buffer of the loop and how its rows are cut: `parts` segments of
/// `units` columns side by side (`parts` 0: a buffer the cell does not use).
#[derive(Debug)]
pub struct Buffer<'a, T> {
    /// The elements, whole rows.
    pub data: &'a mut [T],
    /// Segments per row.
    pub parts: usize,
}

/// Rows of one block of a [`Buffer`], restricted to one slice's columns of
/// each segment: the part of the buffer a slice may write at a step.
#[derive(Debug)]
pub struct UnitsMut<'s, T> {
    /// Row 0, column 0 of the block.
    ptr: *mut T,
    rows: usize,
    parts: usize,
    units: usize,
    cols: Range<usize>,
    /// The segments it may write (all but in a backward step's second
    /// phase, [`run_back`]).
    writable: Range<usize>,
    _borrow: PhantomData<&'s mut T>,
}

impl<T> UnitsMut<'_, T> {
    /// Rows of the block.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Segments per row.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Columns per segment (the slice's columns are some of them).
    pub fn units(&self) -> usize {
        self.units
    }

    /// Row `r`'s slice of each of its `N` segments.
    ///
    /// # Panics
    /// When `r` is out of range or `N` is not the buffer's number of parts.
    pub fn row<const N: usize>(&mut self, r: usize) -> [&mut [T]; N] {
        assert!(
            r < self.rows && N == self.parts && self.writable == (0..N),
            "UnitsMut::row out of range"
        );
        let width = self.parts * self.units;
        std::array::from_fn(|p| {
            // SAFETY: row `r < rows` of a block of `rows` rows of `width`
            // elements (checked by `run`), columns `p·units + cols` with
            // `cols.end <= units`: inside the block. The `N` segments are
            // disjoint, and `run` gives these columns of this block to this
            // slice alone, for as long as `self` is borrowed.
            unsafe {
                std::slice::from_raw_parts_mut(
                    self.ptr.add(r * width + p * self.units + self.cols.start),
                    self.cols.len(),
                )
            }
        })
    }

    /// Row `r`'s slice of segment `p` (for a number of parts known at run
    /// time only; [`UnitsMut::row`] otherwise).
    ///
    /// # Panics
    /// When `r` or `p` is out of range (`p` not a writable segment).
    pub fn part(&mut self, r: usize, p: usize) -> &mut [T] {
        assert!(
            r < self.rows && self.writable.contains(&p),
            "UnitsMut::part out of range"
        );
        let width = self.parts * self.units;
        // SAFETY: as in `row`, for one segment.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.add(r * width + p * self.units + self.cols.start),
                self.cols.len(),
            )
        }
    }

    /// Segment `p`'s slice of every row: a `[rows, slice]` view with the
    /// buffer's row stride, as the packed product writes it
    /// ([`super::packed::PackedB::gemm_cols`]).
    pub fn segment(&mut self, p: usize) -> ndarray::ArrayViewMut2<'_, T> {
        assert!(self.writable.contains(&p), "UnitsMut::segment out of range");
        let width = self.parts * self.units;
        let shape = ndarray::ShapeBuilder::strides((self.rows, self.cols.len()), (width, 1));
        // SAFETY: as in `row`: rows `0..rows`, `width` apart, columns
        // `p·units + cols` of the block, given to this slice alone; the view
        // borrows `self` mutably, so no other view of them is live.
        unsafe {
            ndarray::ArrayViewMut2::from_shape_ptr(
                shape,
                self.ptr.add(p * self.units + self.cols.start),
            )
        }
    }
}

/// A block of the gate gradients to read in a backward step's phases
/// after the first ([`run_back`]): every unit of the segments `readable`
/// (those no thread writes in this phase).
#[derive(Debug)]
pub struct Kept<'s, T> {
    /// Row 0, column 0 of the block.
    ptr: *const T,
    rows: usize,
    parts: usize,
    units: usize,
    readable: Range<usize>,
    _borrow: PhantomData<&'s T>,
}

impl<T> Kept<'_, T> {
    /// Segments `parts` of every row, side by side: a `[rows, parts.len() ×
    /// units]` view with the buffer's row stride, as the packed product
    /// reads it ([`super::packed::PackedB::gemm_cols`]).
    ///
    /// # Panics
    /// When `parts` is empty or not readable in this phase.
    pub fn segments(&self, parts: Range<usize>) -> ndarray::ArrayView2<'_, T> {
        assert!(
            !parts.is_empty()
                && self.readable.start <= parts.start
                && parts.end <= self.readable.end,
            "Kept::segments out of range"
        );
        let width = self.parts * self.units;
        let shape =
            ndarray::ShapeBuilder::strides((self.rows, parts.len() * self.units), (width, 1));
        // SAFETY: rows `0..rows`, `width` apart, columns `parts.start·units..
        // parts.end·units` of a block inside the buffer (checked by
        // `run_back`), which no thread writes while the view lives: those
        // segments of the block were written in earlier rounds of the loop
        // (done and visible, the order of `tickets`), and this round writes
        // only other segments of the block or other blocks (see `run_back`).
        unsafe {
            ndarray::ArrayView2::from_shape_ptr(
                shape,
                self.ptr.wrapping_add(parts.start * self.units),
            )
        }
    }
}

/// What a slice sees at a step.
#[derive(Debug)]
pub struct UnitStep<'s, T> {
    /// The step (from 0, the first of the loop).
    pub step: usize,
    /// The phase of the step (from 0).
    pub phase: usize,
    /// The slice's units.
    pub units: Range<usize>,
    /// Rows running this step.
    pub rows: usize,
    /// `[rows, W]`: the states' block `step`, whole rows (every unit).
    pub prev: &'s [T],
    /// The gates' block `step`.
    pub gates: UnitsMut<'s, T>,
    /// The states' block `step + 1`.
    pub next: UnitsMut<'s, T>,
    /// The kept values' block `step`, in phase 0 (no rows after).
    pub aux: UnitsMut<'s, T>,
    /// `[rows, A]`: the kept values' block `step`, whole rows, in the phases
    /// after the first (empty in phase 0).
    pub kept: &'s [T],
    /// The scratch rows.
    pub scratch: UnitsMut<'s, T>,
}

/// A buffer's base pointer, shared by the loop's threads.
struct Shared<T>(*mut T);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a method, so that closures capture the whole `Shared`).
    fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: the pointer is only dereferenced through `UnitsMut` and the
// `prev` slices `run` builds, under its ticket protocol (see there).
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as for `Send`; the threads also share `&[T]` views.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

/// A [`Buffer`] as the loop's threads share it: its base pointer, its
/// length, and how its rows are cut.
struct Cut<T> {
    ptr: Shared<T>,
    len: usize,
    parts: usize,
    units: usize,
}

impl<T> Clone for Cut<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Cut<T> {}

impl<T> Cut<T> {
    fn new(buffer: Buffer<'_, T>, units: usize) -> Self {
        Cut {
            len: buffer.data.len(),
            ptr: Shared(buffer.data.as_mut_ptr()),
            parts: buffer.parts,
            units,
        }
    }

    /// Elements per row.
    fn width(self) -> usize {
        self.parts * self.units
    }

    /// Whether the buffer holds `rows` whole rows.
    fn holds(self, rows: usize) -> bool {
        self.len >= rows * self.width()
    }

    /// Row `row`'s first element.
    fn at(self, row: usize) -> *mut T {
        self.ptr.get().wrapping_add(row * self.width())
    }

    /// `rows` rows from row `first`, columns `cols` of each segment. The
    /// caller answers for what [`UnitsMut`] assumes (see its SAFETY
    /// comments): the rows inside the buffer, the columns given to one
    /// slice alone while the view lives.
    fn units_mut<'s>(self, first: usize, rows: usize, cols: &Range<usize>) -> UnitsMut<'s, T> {
        self.parts_mut(first, rows, cols, 0..self.parts)
    }

    /// [`Cut::units_mut`] restricted to the segments `parts` (the caller
    /// answers for those alone).
    fn parts_mut<'s>(
        self,
        first: usize,
        rows: usize,
        cols: &Range<usize>,
        parts: Range<usize>,
    ) -> UnitsMut<'s, T> {
        debug_assert!(parts.end <= self.parts);
        UnitsMut {
            ptr: self.at(first),
            rows,
            parts: self.parts,
            units: self.units,
            cols: cols.clone(),
            writable: parts,
            _borrow: PhantomData,
        }
    }

    /// `rows` rows from row `first`, every column of the segments
    /// `parts`, to read. The caller answers for what [`Kept`] assumes (see
    /// its SAFETY comment): the rows inside the buffer, and no thread
    /// writing those segments of them while the view lives.
    fn kept<'s>(self, first: usize, rows: usize, parts: Range<usize>) -> Kept<'s, T> {
        Kept {
            ptr: self.at(first).cast_const(),
            rows,
            parts: self.parts,
            units: self.units,
            readable: parts,
            _borrow: PhantomData,
        }
    }
}

/// Sets the stop flag when a slice panics, so the other threads leave.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// Spins until `done` reaches `need` (the previous step finished); false
/// when `stop` is raised first.
fn wait_for(done: &AtomicUsize, need: usize, stop: &AtomicBool) -> bool {
    let mut stopped = false;
    spin_until(|| {
        if done.load(Ordering::Acquire) >= need {
            return true;
        }
        stopped = stop.load(Ordering::Acquire);
        stopped
    });
    !stopped
}

/// Spins until `ready` (another thread's progress) returns true, yielding
/// the core after a while.
fn spin_until(mut ready: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        spins += 1;
        if spins < 1 << 12 {
            std::hint::spin_loop();
        } else {
            // the other thread was descheduled: let it run
            std::thread::yield_now();
        }
    }
}

/// Hands out the tickets `(step, phase, slice)` of `steps` steps of
/// `phases` phases of `slices` slices, in that order, to the calling thread
/// and up to `helpers` threads of the pool ([`pool::spawn`]; see the module
/// docs), and runs `body(step, phase, slice)` for each. `tick(step)` runs on
/// the calling thread before each ticket it takes and stops the loop when it
/// returns false. Returns false when stopped.
///
/// The order `body` may rely on (what the runners' SAFETY comments cite):
/// a ticket starts only once every ticket of the earlier (step, phase)
/// pairs is done, their writes visible to it (`done` counts a ticket after
/// its body, Release, and is read with Acquire before the next phase's
/// tickets start); the tickets of one (step, phase) may run at the same time,
/// one per slice; and the next (step, phase) starts only once all of them are
/// done. A panic in `body` stops the other threads and is passed on.
fn tickets(
    steps: usize,
    phases: usize,
    slices: usize,
    helpers: usize,
    mut tick: impl FnMut(usize) -> bool + Send,
    body: impl Fn(usize, usize, usize) + Sync,
) -> bool {
    let (n, phases) = (slices, phases.max(1));
    let total = steps * phases * n;
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let participant = |tick: &mut dyn FnMut(usize) -> bool| {
        let _guard = StopOnPanic(&stop);
        loop {
            // a stopped loop takes no more tickets (an interrupt or a panic
            // elsewhere: the helpers would otherwise run on alone)
            if stop.load(Ordering::Acquire) {
                return;
            }
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= total {
                return;
            }
            let (t, phase, s) = (k / (phases * n), k / n % phases, k % n);
            if !wait_for(&done, k - s, &stop) {
                return;
            }
            if !tick(t) {
                stop.store(true, Ordering::Release);
                return;
            }
            body(t, phase, s);
            done.fetch_add(1, Ordering::Release);
        }
    };
    if helpers == 0 || total == 0 {
        participant(&mut tick);
    } else {
        let spawn = |job: Job| pool::spawn(job);
        with_helpers(helpers, spawn, &|| participant(&mut |_| true), || {
            participant(&mut tick);
        });
    }
    !stop.load(Ordering::Acquire)
}

/// A helper's job, for [`with_helpers`]'s `spawn`.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs `caller` on the calling thread and `help` on up to `helpers` jobs
/// handed to `spawn` (the pool, [`pool::spawn`]; false: no more jobs
/// taken), and returns once `caller` has returned and every job that
/// started `help` has finished it. A job that has not started by the time
/// `caller` returns never runs `help`: the call never waits for a thread
/// that is busy elsewhere (a scope would wait for its jobs to run, and off
/// the pool's threads the caller cannot run them itself). `help` must
/// finish on its own once `caller` has returned (the tickets: none left).
/// A panic in `help` is passed on once the helpers are out.
fn with_helpers(
    helpers: usize,
    spawn: impl Fn(Job) -> bool,
    help: &(dyn Fn() + Sync),
    caller: impl FnOnce(),
) {
    // SAFETY: only the lifetime is changed. The pointer is dereferenced in
    // `Helpers::help` alone, by a helper that has entered (counted itself
    // in `state` while `CLOSED` was not set) and not yet left (uncounted
    // itself); `Close` (below) sets `CLOSED`, so that no helper enters
    // after it, and waits until every helper inside has left, before this
    // function returns, unwinding included. So `help` is alive whenever it
    // is called.
    let work = unsafe {
        std::mem::transmute::<*const (dyn Fn() + Sync + '_), *const (dyn Fn() + Sync + 'static)>(
            help,
        )
    };
    let shared = std::sync::Arc::new(Helpers {
        state: AtomicUsize::new(0),
        work,
        panic: std::sync::Mutex::new(None),
    });
    for _ in 0..helpers {
        let shared = shared.clone();
        if !spawn(Box::new(move || shared.help())) {
            break;
        }
    }
    let close = Close(&shared);
    caller();
    drop(close);
    let panic = shared
        .panic
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(payload) = panic {
        std::panic::resume_unwind(payload);
    }
}

/// What [`with_helpers`] shares with its jobs.
struct Helpers {
    /// [`Helpers::CLOSED`] once the caller is done, plus the number of
    /// helpers running `work`.
    state: AtomicUsize,
    /// The helpers' work; valid while they may enter (see `with_helpers`).
    work: *const (dyn Fn() + Sync + 'static),
    /// A helper's panic, for the caller to pass on.
    panic: std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

// SAFETY: `work` points to a `Sync` closure, called only by helpers that
// have entered and not left (see `with_helpers`); the rest is atomics and
// a mutex.
unsafe impl Send for Helpers {}
// SAFETY: as for `Send`.
unsafe impl Sync for Helpers {}

impl Helpers {
    const CLOSED: usize = 1 << (usize::BITS - 1);

    /// A job of the pool: runs the work unless the caller is done.
    fn help(&self) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & Self::CLOSED != 0 {
                return;
            }
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        // SAFETY: entered before `CLOSED` was set, so the caller waits for
        // the `fetch_sub` below before `work` goes (see `with_helpers`).
        let work = unsafe { &*self.work };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        if let Err(payload) = result {
            *self.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
        }
        self.state.fetch_sub(1, Ordering::Release);
    }
}

/// Shuts the helpers out and waits for those inside, also when the caller
/// unwinds.
struct Close<'a>(&'a Helpers);

impl Drop for Close<'_> {
    fn drop(&mut self) {
        self.0.state.fetch_or(Helpers::CLOSED, Ordering::AcqRel);
        spin_until(|| self.0.state.load(Ordering::Acquire) == Helpers::CLOSED);
    }
}

/// Checks that `slices` are in order, disjoint and inside `0..units`.
fn check_slices(units: usize, slices: &[Range<usize>]) {
    let mut end = 0;
    for s in slices {
        assert!(
            end <= s.start && s.start <= s.end && s.end <= units,
            "split: slices out of order"
        );
        end = s.end;
    }
}

/// Checks that `starts` has blocks `0..=steps` and the end, and that step
/// `t`'s `active[t]` rows fit its blocks `t` and `t + 1`.
fn check_blocks(starts: &[usize], active: &[usize]) {
    let steps = active.len();
    assert_eq!(
        starts.len(),
        steps + 2,
        "split: blocks 0..=steps and the end"
    );
    for t in 0..steps {
        assert!(
            starts[t] + active[t] <= starts[t + 1] && starts[t + 1] + active[t] <= starts[t + 2],
            "split: a step's rows do not fit its blocks"
        );
    }
}

/// Runs `active.len()` steps of `phases` phases, each cut into `slices`
/// (disjoint unit ranges of `units`), on the calling thread and up to
/// `helpers` threads of the current pool, or of the crate's pool when
/// called off the pools (see the module docs). `tick(step)` runs on the
/// calling thread before each slice it takes and stops the loop when it
/// returns false; `body` computes one slice of one phase of one step.
/// Returns false when stopped (the buffers then hold the finished steps; the
/// rest is as it was, but for slices of the step under way).
///
/// # Panics
/// When the geometry does not fit the buffers (a bug of the caller): the
/// blocks must lie inside them, one after the other, `active[t]` rows each
/// at most, and the slices inside `0..units`, in order, disjoint. A panic in
/// `body` stops the other threads and is passed on.
#[allow(clippy::too_many_arguments)]
pub fn run<T, F>(
    units: usize,
    phases: usize,
    slices: &[Range<usize>],
    helpers: usize,
    starts: &[usize],
    active: &[usize],
    [gates, states, aux, scratch]: [Buffer<'_, T>; 4],
    tick: impl FnMut(usize) -> bool + Send,
    body: F,
) -> bool
where
    T: Send + Sync,
    F: Fn(UnitStep<'_, T>) + Sync,
{
    let steps = active.len();
    check_slices(units, slices);
    check_blocks(starts, active);
    let [gates, states, aux, scratch] = [gates, states, aux, scratch].map(|b| Cut::new(b, units));
    let states_end = starts[steps] + active.last().copied().unwrap_or(0);
    assert!(
        gates.holds(starts[steps])
            && aux.holds(starts[steps])
            && states.holds(states_end)
            && scratch.holds(active.iter().max().copied().unwrap_or(0)),
        "split::run: blocks past the buffers"
    );
    tickets(steps, phases, slices.len(), helpers, tick, |t, phase, s| {
        let rows = active[t];
        // SAFETY: the states' block `t`, `rows` whole rows, inside the
        // buffer (checked above). By the order of `tickets`, the slices of
        // step `t - 1`, the only writers of block `t`, are done and their
        // writes visible; no slice of step `t` writes it; and the next phase
        // starts only once this slice is done.
        let prev = unsafe {
            std::slice::from_raw_parts(states.at(starts[t]).cast_const(), rows * states.width())
        };
        let kept = if phase == 0 {
            &[][..]
        } else {
            // SAFETY: the kept values' block `t`, `rows` whole rows, inside
            // the buffer; written in phase 0 of this step only (done, as
            // above), read-only in this phase.
            unsafe {
                std::slice::from_raw_parts(aux.at(starts[t]).cast_const(), rows * aux.width())
            }
        };
        let cols = &slices[s];
        body(UnitStep {
            step: t,
            phase,
            units: cols.clone(),
            rows,
            prev,
            // Blocks `t` of the gates and kept values, `t + 1` of the states
            // and the scratch rows, columns of slice `s` only: no other slice
            // of this phase touches them (the slices are disjoint), no other
            // phase runs meanwhile (see `prev`), only one ticket is slice `s`
            // of this phase, and the kept values are written in phase 0 only.
            gates: gates.units_mut(starts[t], rows, cols),
            next: states.units_mut(starts[t + 1], rows, cols),
            aux: aux.units_mut(starts[t], if phase == 0 { rows } else { 0 }, cols),
            kept,
            scratch: scratch.units_mut(0, rows, cols),
        });
    })
}

/// A read-only buffer of the backward runner ([`run_back`]): whole rows of
/// `width` elements, in the blocks of the loop.
#[derive(Debug)]
pub struct Rows<'a, T> {
    /// The elements, whole rows.
    pub data: &'a [T],
    /// Elements per row (0: a buffer the cell does not read).
    pub width: usize,
}

impl<T> Clone for Rows<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Rows<'_, T> {}

/// What a slice sees at a step of the backward loop ([`run_back`]).
#[derive(Debug)]
pub struct UnitBack<'s, T> {
    /// The step (the block: from 0, the first of the loop; the loop runs the
    /// last step first).
    pub step: usize,
    /// The phase of the step (from 0).
    pub phase: usize,
    /// The slice's units.
    pub units: Range<usize>,
    /// Rows that ran this step.
    pub rows: usize,
    /// The forward gate buffer's block `step`, whole rows (empty when the
    /// cell does not keep it).
    pub gates: &'s [T],
    /// `[rows, W]`: the states' block `step` (the state before the step).
    pub prev: &'s [T],
    /// `[rows, W]`: the states' block `step + 1` (after the step).
    pub next: &'s [T],
    /// The kept values' block `step`, whole rows.
    pub aux: &'s [T],
    /// The running state gradient's rows: the gradient of the state after
    /// the step on entry to phase 0 (once the driver has added the step's
    /// output gradient), that of the state before it once the last phase is
    /// done.
    pub d_state: UnitsMut<'s, T>,
    /// The gate gradients' block `step`: every segment in phase 0, the
    /// first `late` segments in phase 1 (no rows in the other phases; see
    /// [`run_back`]).
    pub d_gates: UnitsMut<'s, T>,
    /// The gate gradients' block `step`, every unit, to read in the phases
    /// after the first: the segments from `late` on in phase 1, all of them
    /// after (no rows in phase 0).
    pub d_kept: Kept<'s, T>,
    /// The small-parameter gradients: one row.
    pub d_params: UnitsMut<'s, T>,
    /// The scratch rows.
    pub scratch: UnitsMut<'s, T>,
}

/// The backward loop of [`run`]: `active.len()` steps, the last first, of
/// `phases` phases each, cut into `slices`. Step `t` reads blocks `t` of
/// `gates` and `aux` and blocks `t`, `t + 1` of `states` (read-only, whole
/// rows); it writes its slice's columns of the first `active[t]` rows of
/// `d_state` (the running gradient, the same rows at every step), of block
/// `t` of `d_gates` (phase 0; read whole after), of the one row of
/// `d_params` and of the scratch rows. `tick(step)` and the return value as
/// in [`run`] (`step`: the first step of the ticket's round, see below).
///
/// A slice's phase 0 of step `t - 1` reads no other slice's work (only its
/// own columns of what it writes, and the read-only buffers), so it runs in
/// the same ticket as the slice's last phase of step `t`, right after it:
/// the threads meet `phases - 1` times per step (once for most cells:
/// between the element-wise part, which writes `dZ` by units, and the
/// product `dZ @ W_hᵀ`, which reads all of it).
///
/// The gate gradients are written in phase 0, and in phase 1 for their
/// first `late` segments: a phase-1 slice may write its columns of those
/// while every slice reads every unit of the others (TensorFlow's GRU:
/// `dz_r` comes from `dz_c @ W_cand_hᵀ`, which reads every unit of `dz_c`).
/// From phase 2 on they are read whole.
///
/// # Panics
/// As [`run`]; also when `late` exceeds the gate gradients' segments.
#[allow(clippy::too_many_arguments)]
pub fn run_back<'r, T, F>(
    units: usize,
    phases: usize,
    late: usize,
    slices: &[Range<usize>],
    helpers: usize,
    starts: &[usize],
    active: &[usize],
    [gates, states, aux]: [Rows<'r, T>; 3],
    [d_gates, d_state, d_params, scratch]: [Buffer<'_, T>; 4],
    mut tick: impl FnMut(usize) -> bool + Send,
    body: F,
) -> bool
where
    T: Send + Sync,
    F: Fn(UnitBack<'_, T>) + Sync,
{
    let steps = active.len();
    check_slices(units, slices);
    check_blocks(starts, active);
    assert!(
        late <= d_gates.parts,
        "split::run_back: more late-written segments than segments"
    );
    let [d_gates, d_state, d_params, scratch] =
        [d_gates, d_state, d_params, scratch].map(|b| Cut::new(b, units));
    let most = active.iter().max().copied().unwrap_or(0);
    let states_end = starts[steps] + active.last().copied().unwrap_or(0);
    assert!(
        gates.data.len() >= starts[steps] * gates.width
            && aux.data.len() >= starts[steps] * aux.width
            && states.data.len() >= states_end * states.width
            && d_gates.holds(starts[steps])
            && d_state.holds(most)
            && d_params.holds(1)
            && scratch.holds(most),
        "split::run_back: blocks past the buffers"
    );
    let block = |b: Rows<'r, T>, t: usize, rows: usize| -> &'r [T] {
        &b.data[starts[t] * b.width..(starts[t] + rows) * b.width]
    };
    // The (step, phase) pairs in the loop's order, cut into rounds at every
    // phase but a step's first: a step's phase 0 joins the previous step's
    // last phase (see the docs above), so the threads meet `phases - 1`
    // times per step, not `phases`.
    let order: Vec<(usize, usize)> = (0..steps)
        .rev()
        .flat_map(|t| (0..phases.max(1)).map(move |p| (t, p)))
        .collect();
    let mut rounds: Vec<usize> = (0..order.len())
        .filter(|&q| q == 0 || order[q].1 != 0)
        .collect();
    rounds.push(order.len());
    let parts = d_gates.parts;
    let sub = |t: usize, phase: usize, s: usize| {
        let rows = active[t];
        // Gate gradients: phase 0 writes the slice's columns of every
        // segment of block `t`; phase 1 those of the first `late` segments
        // while reading every unit of the others; later phases read every
        // segment. The round's other writes of gate gradients are block
        // `t - 1`'s (its phase 0) and, in phase 1, the other slices' columns
        // of the first `late` segments: never what this slice reads.
        let (written, read) = match phase {
            0 => (0..parts, 0..0),
            1 => (0..late, late..parts),
            _ => (0..0, 0..parts),
        };
        let write_rows = if written.is_empty() { 0 } else { rows };
        let read_rows = if read.is_empty() { 0 } else { rows };
        let cols = &slices[s];
        body(UnitBack {
            step: t,
            phase,
            units: cols.clone(),
            rows,
            gates: block(gates, t, rows),
            prev: block(states, t, rows),
            next: block(states, t + 1, rows),
            aux: block(aux, t, rows),
            // The slice's columns of the running gradient's rows, of the
            // `written` segments of block `t` of the gate gradients, of the
            // parameters' row and of the scratch rows: no other slice of this
            // round touches them (the slices are disjoint), no other round
            // runs meanwhile (the order of `tickets`), only one ticket is
            // slice `s` of this round, its phases run one after the other on
            // this thread, each view dropped before the next is made, and no
            // slice reads the `written` segments in this phase (`read` is
            // disjoint from them). The `read` segments of block `t`: written
            // in earlier rounds only (see `Kept::segments`).
            d_state: d_state.units_mut(0, rows, cols),
            d_gates: d_gates.parts_mut(starts[t], write_rows, cols, written),
            d_kept: d_gates.kept(starts[t], read_rows, read),
            d_params: d_params.units_mut(0, 1, cols),
            scratch: scratch.units_mut(0, rows, cols),
        });
    };
    tickets(
        rounds.len() - 1,
        1,
        slices.len(),
        helpers,
        |r| tick(order[rounds[r]].0),
        |r, _, s| {
            for &(t, phase) in &order[rounds[r]..rounds[r + 1]] {
                sub(t, phase, s);
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The four buffers of [`run`], the last two unused.
    fn two<'a, T>(gates: &'a mut [T], states: &'a mut [T]) -> [Buffer<'a, T>; 4] {
        let buffer = |data, parts| Buffer { data, parts };
        [
            buffer(gates, 1),
            buffer(states, 1),
            buffer(&mut [], 0),
            buffer(&mut [], 0),
        ]
    }

    const UNITS: usize = 8;
    const ACTIVE: [usize; 4] = [3, 3, 2, 1];
    const STARTS: [usize; 6] = [0, 3, 6, 9, 11, 12];

    /// `run(helpers, slices)` equals `whole` for 0, 1 and 2 helpers and
    /// every way of cutting the units: one slice, two, three uneven ones.
    fn assert_every_split<R: PartialEq + std::fmt::Debug>(
        whole: &R,
        run: impl Fn(usize, &[Range<usize>]) -> R,
    ) {
        for helpers in 0..3 {
            let whole_range = std::slice::from_ref(&(0..8));
            let splits: [&[Range<usize>]; 3] = [whole_range, &[0..4, 4..8], &[0..2, 2..3, 3..8]];
            for slices in splits {
                assert_eq!(&run(helpers, slices), whole, "{helpers} {slices:?}");
            }
        }
    }

    /// The backward toys' states: 13 blocks' rows of `UNITS` values.
    fn toy_states() -> Vec<f64> {
        (0..13 * UNITS).map(|v| v as f64 / 64.0).collect()
    }

    /// [`run_back`] over the toys' blocks (`STARTS`, `ACTIVE`, the states of
    /// [`toy_states`], no gates or kept values) on a pool of 3 threads.
    fn toy_run_back<F>(
        phases: usize,
        late: usize,
        slices: &[Range<usize>],
        helpers: usize,
        buffers: [Buffer<'_, f64>; 4],
        body: F,
    ) -> bool
    where
        F: Fn(UnitBack<'_, f64>) + Sync + Send,
    {
        let states = toy_states();
        let rows = |data, width| Rows { data, width };
        pool(3).install(|| {
            run_back(
                UNITS,
                phases,
                late,
                slices,
                helpers,
                &STARTS,
                &ACTIVE,
                [rows(&[], 0), rows(&states, UNITS), rows(&[], 0)],
                buffers,
                |_| true,
                body,
            )
        })
    }

    /// A toy cell of two phases, every buffer of one part: phase 0 writes
    /// `x = gates + 1` (scratch) and `aux = Σ prev / 8 + x`; phase 1 reads
    /// every unit of `aux` and writes `next = Σ aux / 100 + x`.
    fn toy(helpers: usize, slices: &[Range<usize>]) -> Vec<f64> {
        let units = UNITS;
        let mut gates: Vec<f64> = (0..11 * units).map(|v| v as f64).collect();
        let mut states = vec![0.0; 13 * units];
        states[..3 * units].iter_mut().for_each(|v| *v = 0.5);
        let mut aux = vec![0.0; 11 * units];
        let mut scratch = vec![0.0; 3 * units];
        let pool = pool(3);
        let buffer = |data, parts| Buffer { data, parts };
        let ok = pool.install(|| {
            run(
                units,
                2,
                slices,
                helpers,
                &STARTS,
                &ACTIVE,
                [
                    buffer(&mut gates, 1),
                    buffer(&mut states, 1),
                    buffer(&mut aux, 1),
                    buffer(&mut scratch, 1),
                ],
                |_| true,
                |mut st| {
                    for r in 0..st.rows {
                        let [x] = st.scratch.row::<1>(r);
                        if st.phase == 0 {
                            let sum: f64 = st.prev[r * units..(r + 1) * units].iter().sum();
                            let [g] = st.gates.row::<1>(r);
                            let [a] = st.aux.row::<1>(r);
                            for ((x, a), g) in x.iter_mut().zip(a).zip(&*g) {
                                *x = g + 1.0;
                                *a = sum / 8.0 + *x;
                            }
                        } else {
                            let total: f64 = st.kept[r * units..(r + 1) * units].iter().sum();
                            let [h] = st.next.row::<1>(r);
                            for (h, x) in h.iter_mut().zip(&*x) {
                                *h = total / 100.0 + x;
                            }
                        }
                    }
                },
            )
        });
        assert!(ok);
        states
    }

    /// [`toy`] written out, one step after the other.
    fn toy_by_hand() -> Vec<f64> {
        let units = UNITS;
        let mut states = vec![0.0; 13 * units];
        states[..3 * units].iter_mut().for_each(|v| *v = 0.5);
        for (t, &rows) in ACTIVE.iter().enumerate() {
            for r in 0..rows {
                let row = |k: usize| (STARTS[k] + r) * units;
                let sum: f64 = states[row(t)..row(t) + units].iter().sum();
                let x: Vec<f64> = (0..units).map(|u| (row(t) + u) as f64 + 1.0).collect();
                let total: f64 = x.iter().map(|x| sum / 8.0 + x).sum();
                for u in 0..units {
                    states[row(t + 1) + u] = total / 100.0 + x[u];
                }
            }
        }
        states
    }

    #[test]
    fn any_split_and_helpers_give_the_serial_result() {
        let whole = toy_by_hand();
        assert_every_split(&whole, toy);
        // the last block's row is written, the padding after it is not
        assert_ne!(whole[11 * 8], 0.0);
        assert_eq!(whole[12 * 8], 0.0);
    }

    /// A toy backward loop of two phases ([`run_back`]), every buffer of one
    /// part: phase 0 writes `dg = d·next + prev` (the gate gradients),
    /// `p += dg` (the parameters) and `d = dg / 2`; phase 1 reads every unit
    /// of `dg` and writes `d += Σ dg / 100`. Returns `d`, `dg` and `p`.
    fn toy_back(helpers: usize, slices: &[Range<usize>]) -> [Vec<f64>; 3] {
        let units = UNITS;
        let mut d = vec![1.0; 3 * units];
        let mut dg = vec![0.0; 11 * units];
        let mut p = vec![0.0; units];
        let buffer = |data, parts| Buffer { data, parts };
        let buffers = [
            buffer(&mut dg, 1),
            buffer(&mut d, 1),
            buffer(&mut p, 1),
            buffer(&mut [], 0),
        ];
        let ok = toy_run_back(2, 0, slices, helpers, buffers, |mut st| {
            let [p] = st.d_params.row::<1>(0);
            let cols = st.units.clone();
            for r in 0..st.rows {
                let [d] = st.d_state.row::<1>(r);
                if st.phase == 0 {
                    let [g] = st.d_gates.row::<1>(r);
                    for (i, u) in cols.clone().enumerate() {
                        let next = st.next[r * units + u];
                        g[i] = d[i] * next + st.prev[r * units + u];
                        p[i] += g[i];
                        d[i] = g[i] / 2.0;
                    }
                } else {
                    let total: f64 = st.d_kept.segments(0..1).row(r).iter().sum();
                    d.iter_mut().for_each(|d| *d += total / 100.0);
                }
            }
        });
        assert!(ok);
        [d, dg, p]
    }

    /// [`toy_back`] written out, one step after the other.
    fn toy_back_by_hand() -> [Vec<f64>; 3] {
        let units = UNITS;
        let states = toy_states();
        let mut d = vec![1.0; 3 * units];
        let mut dg = vec![0.0; 11 * units];
        let mut p = vec![0.0; units];
        for (t, &rows) in ACTIVE.iter().enumerate().rev() {
            for r in 0..rows {
                let at = |k: usize| (STARTS[k] + r) * units;
                for u in 0..units {
                    let g = d[r * units + u] * states[at(t + 1) + u] + states[at(t) + u];
                    dg[at(t) + u] = g;
                    p[u] += g;
                    d[r * units + u] = g / 2.0;
                }
                let total: f64 = dg[at(t)..at(t) + units].iter().sum();
                for u in 0..units {
                    d[r * units + u] += total / 100.0;
                }
            }
        }
        [d, dg, p]
    }

    #[test]
    fn any_backward_split_and_helpers_give_the_serial_result() {
        let whole = toy_back_by_hand();
        assert_every_split(&whole, toy_back);
        // every step ran: the first block's rows and the parameters are set
        assert!(whole[1][..3 * UNITS].iter().all(|&v| v != 0.0));
        assert!(whole[2].iter().all(|&v| v != 0.0));
    }

    /// A toy backward loop of three phases whose second writes a segment
    /// of the gate gradients (`late` = 1): gate gradients `[a | b]`; phase
    /// 0 writes `b = d·next + prev` and `d = b / 2`; phase 1 reads every
    /// unit of `b` and writes `a = Σ b / 100 + b` and `d += a`; phase 2
    /// reads every unit of `a` and `b` and writes `d += (Σ a - Σ b) / 1000`.
    /// Returns `d` and the gate gradients.
    fn toy_back_late(helpers: usize, slices: &[Range<usize>]) -> [Vec<f64>; 2] {
        let units = UNITS;
        let mut d = vec![1.0; 3 * units];
        let mut dg = vec![0.0; 11 * 2 * units];
        let buffer = |data, parts| Buffer { data, parts };
        let buffers = [
            buffer(&mut dg, 2),
            buffer(&mut d, 1),
            buffer(&mut [], 0),
            buffer(&mut [], 0),
        ];
        let ok = toy_run_back(3, 1, slices, helpers, buffers, |mut st| {
            let cols = st.units.clone();
            for r in 0..st.rows {
                let [d] = st.d_state.row::<1>(r);
                match st.phase {
                    0 => {
                        let [_, b] = st.d_gates.row::<2>(r);
                        for (i, u) in cols.clone().enumerate() {
                            b[i] = d[i] * st.next[r * units + u] + st.prev[r * units + u];
                            d[i] = b[i] / 2.0;
                        }
                    }
                    1 => {
                        let b = st.d_kept.segments(1..2);
                        let total: f64 = b.row(r).iter().sum();
                        let a = st.d_gates.part(r, 0);
                        for (i, u) in cols.clone().enumerate() {
                            a[i] = total / 100.0 + b[[r, u]];
                            d[i] += a[i];
                        }
                    }
                    _ => {
                        let both = st.d_kept.segments(0..2);
                        let row = both.row(r);
                        let (a, b) = row.split_at(ndarray::Axis(0), units);
                        let delta = (a.iter().sum::<f64>() - b.iter().sum::<f64>()) / 1000.0;
                        d.iter_mut().for_each(|d| *d += delta);
                    }
                }
            }
        });
        assert!(ok);
        [d, dg]
    }

    /// [`toy_back_late`] written out, one step after the other.
    fn toy_back_late_by_hand() -> [Vec<f64>; 2] {
        let units = UNITS;
        let states = toy_states();
        let mut d = vec![1.0; 3 * units];
        let mut dg = vec![0.0; 11 * 2 * units];
        for (t, &rows) in ACTIVE.iter().enumerate().rev() {
            for r in 0..rows {
                let at = |k: usize| (STARTS[k] + r) * units;
                let g = (STARTS[t] + r) * 2 * units;
                for u in 0..units {
                    let b = d[r * units + u] * states[at(t + 1) + u] + states[at(t) + u];
                    dg[g + units + u] = b;
                    d[r * units + u] = b / 2.0;
                }
                let total: f64 = dg[g + units..g + 2 * units].iter().sum();
                for u in 0..units {
                    let a = total / 100.0 + dg[g + units + u];
                    dg[g + u] = a;
                    d[r * units + u] += a;
                }
                let a: f64 = dg[g..g + units].iter().sum();
                let b: f64 = dg[g + units..g + 2 * units].iter().sum();
                for u in 0..units {
                    d[r * units + u] += (a - b) / 1000.0;
                }
            }
        }
        [d, dg]
    }

    #[test]
    fn a_segment_written_in_the_second_phase_gives_the_serial_result() {
        let whole = toy_back_late_by_hand();
        assert_every_split(&whole, toy_back_late);
        assert!(whole[1][..3 * 2 * UNITS].iter().all(|&v| v != 0.0));
    }

    #[test]
    #[should_panic(expected = "UnitsMut::segment out of range")]
    fn a_segment_read_in_the_second_phase_cannot_be_written() {
        let states = vec![0.0f32; 4 * 2];
        let (mut d, mut dg) = (vec![0.0f32; 2], vec![0.0f32; 3 * 4]);
        let buffer = |data, parts| Buffer { data, parts };
        let rows = |data, width| Rows { data, width };
        run_back(
            2,
            3,
            1,
            std::slice::from_ref(&(0..2)),
            0,
            &[0, 1, 2, 3, 4],
            &[1, 1, 1],
            [rows(&[], 0), rows(&states, 2), rows(&[], 0)],
            [
                buffer(&mut dg, 2),
                buffer(&mut d, 1),
                buffer(&mut [], 0),
                buffer(&mut [], 0),
            ],
            |_| true,
            |mut st| {
                if st.phase == 1 {
                    st.d_gates.segment(1);
                }
            },
        );
    }

    #[test]
    fn a_stop_leaves_the_backward_loop() {
        let states = vec![0.0f32; 4 * 2];
        let (mut d, mut dg, mut p) = (vec![0.0f32; 2], vec![0.0f32; 3 * 2], vec![0.0f32; 2]);
        let calls = AtomicUsize::new(0);
        let buffer = |data, parts| Buffer { data, parts };
        let ok = run_back(
            2,
            2,
            0,
            &[0..1, 1..2],
            0,
            &[0, 1, 2, 3, 4],
            &[1, 1, 1],
            [
                Rows {
                    data: &[],
                    width: 0,
                },
                Rows {
                    data: &states,
                    width: 2,
                },
                Rows {
                    data: &[],
                    width: 0,
                },
            ],
            [
                buffer(&mut dg, 1),
                buffer(&mut d, 1),
                buffer(&mut p, 1),
                buffer(&mut [], 0),
            ],
            |t| t == 2,
            |_| {
                calls.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert!(!ok);
        // both slices of round 0 (phase 0 of step 2) and of round 1 (phase 1
        // of step 2, then phase 0 of step 1); round 2 starts with step 1,
        // whose tick stops the loop
        assert_eq!(calls.load(Ordering::Relaxed), 2 + 2 * 2);
    }

    #[test]
    fn a_stop_leaves_the_loop() {
        let mut states = vec![0.0f32; 4 * 2];
        let mut gates = vec![0.0f32; 3 * 2];
        let calls = AtomicUsize::new(0);
        let ok = run(
            2,
            1,
            &[0..1, 1..2],
            0,
            &[0, 1, 2, 3, 4],
            &[1, 1, 1],
            two(&mut gates, &mut states),
            |t| t < 1,
            |_| {
                calls.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert!(!ok);
        // both slices of step 0, then the tick of step 1 stops the loop
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_panicking_slice_stops_the_helpers() {
        let pool = pool(2);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| {
                let mut states = vec![0.0f32; 65 * 2];
                let mut gates = vec![0.0f32; 64 * 2];
                let starts: Vec<usize> = (0..=65).collect();
                run(
                    2,
                    1,
                    &[0..1, 1..2],
                    1,
                    &starts,
                    &[1; 64],
                    two(&mut gates, &mut states),
                    |_| true,
                    |st| assert!(st.step < 10, "slice failed"),
                )
            })
        }));
        assert!(result.is_err());
    }

    /// A pool of `threads` threads.
    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// `with_helpers`' `spawn` onto `pool`.
    fn spawn_on(pool: &rayon::ThreadPool) -> impl Fn(Job) -> bool + '_ {
        |job| {
            pool.spawn(job);
            true
        }
    }

    /// A pool of one thread, kept busy until the returned flag is raised.
    fn busy_pool() -> (rayon::ThreadPool, std::sync::Arc<AtomicBool>) {
        let pool = pool(1);
        let release = std::sync::Arc::new(AtomicBool::new(false));
        let (started, wait) = std::sync::mpsc::channel();
        let flag = release.clone();
        pool.spawn(move || {
            started.send(()).unwrap();
            while !flag.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        });
        wait.recv().unwrap();
        (pool, release)
    }

    #[test]
    fn a_busy_pool_never_holds_up_the_caller() {
        // The helpers' jobs wait behind a job that runs until released: the
        // caller does all the work and returns without waiting for them;
        // once they run, they turn away.
        let (pool, release) = busy_pool();
        let ran = std::sync::Arc::new(AtomicUsize::new(0));
        let helped = ran.clone();
        with_helpers(
            2,
            spawn_on(&pool),
            &|| {
                helped.fetch_add(10, Ordering::Relaxed);
            },
            || {
                ran.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        release.store(true, Ordering::Release);
        pool.install(|| ()); // the queued jobs (FIFO) have run
        assert_eq!(ran.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn helpers_that_start_work_and_pass_on_a_panic() {
        let pool = pool(2);
        let (entered, wait) = std::sync::mpsc::channel::<()>();
        let entered = std::sync::Mutex::new(entered);
        // the caller returns only once the helper is in: it waits for it
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_helpers(
                1,
                spawn_on(&pool),
                &|| {
                    entered.lock().unwrap().send(()).unwrap();
                    panic!("helper failed");
                },
                || wait.recv().unwrap(),
            )
        }));
        let payload = result.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"helper failed"));
    }
}
