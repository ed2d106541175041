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
//! other calls): it never waits for a thread that has not started. Each
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
    _borrow: PhantomData<&'s mut T>,
}

impl<T> UnitsMut<'_, T> {
    /// Rows of the block.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `r`'s slice of each of its `N` segments.
    ///
    /// # Panics
    /// When `r` is out of range or `N` is not the buffer's number of parts.
    pub fn row<const N: usize>(&mut self, r: usize) -> [&mut [T]; N] {
        assert!(
            r < self.rows && N == self.parts,
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

    /// Segment `p`'s slice of every row: a `[rows, slice]` view with the
    /// buffer's row stride, as the packed product writes it
    /// ([`super::packed::PackedB::gemm_cols`]).
    pub fn segment(&mut self, p: usize) -> ndarray::ArrayViewMut2<'_, T> {
        assert!(p < self.parts, "UnitsMut::segment out of range");
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
    let mut spins = 0u32;
    while done.load(Ordering::Acquire) < need {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        spins += 1;
        if spins < 1 << 12 {
            std::hint::spin_loop();
        } else {
            // the other thread was descheduled: let it run
            std::thread::yield_now();
        }
    }
    true
}

/// Runs `active.len()` steps of `phases` phases, each cut into `slices`
/// (disjoint unit ranges of `units`), on the calling thread and up to
/// `helpers` threads of the current rayon pool (the global one when called
/// off the pools; see the module docs). `tick(step)` runs on the
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
    mut tick: impl FnMut(usize) -> bool + Send,
    body: F,
) -> bool
where
    T: Send + Sync,
    F: Fn(UnitStep<'_, T>) + Sync,
{
    let steps = active.len();
    assert_eq!(
        starts.len(),
        steps + 2,
        "split::run: blocks 0..=steps and the end"
    );
    let mut end = 0;
    for s in slices {
        assert!(
            end <= s.start && s.start <= s.end && s.end <= units,
            "split::run: slices out of order"
        );
        end = s.end;
    }
    for t in 0..steps {
        assert!(
            starts[t] + active[t] <= starts[t + 1] && starts[t + 1] + active[t] <= starts[t + 2],
            "split::run: a step's rows do not fit its blocks"
        );
    }
    let width = |b: &Buffer<'_, T>| b.parts * units;
    let states_end = starts[steps] + active.last().copied().unwrap_or(0);
    assert!(
        gates.data.len() >= starts[steps] * width(&gates)
            && aux.data.len() >= starts[steps] * width(&aux)
            && states.data.len() >= states_end * width(&states)
            && scratch.data.len() >= active.iter().max().unwrap_or(&0) * width(&scratch),
        "split::run: blocks past the buffers"
    );
    let (w_g, w_s, w_a) = (width(&gates), width(&states), width(&aux));
    let (p_g, p_s, p_a, p_x) = (gates.parts, states.parts, aux.parts, scratch.parts);
    let (g_ptr, s_ptr, a_ptr, x_ptr) = (
        Shared(gates.data.as_mut_ptr()),
        Shared(states.data.as_mut_ptr()),
        Shared(aux.data.as_mut_ptr()),
        Shared(scratch.data.as_mut_ptr()),
    );
    let n = slices.len();
    let phases = phases.max(1);
    let total = steps * phases * n;
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let block = |ptr: Shared<T>, t: usize, w: usize| ptr.get().wrapping_add(starts[t] * w);
    let units_mut = |ptr: *mut T, rows: usize, parts: usize, cols: &Range<usize>| UnitsMut {
        ptr,
        rows,
        parts,
        units,
        cols: cols.clone(),
        _borrow: PhantomData,
    };
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
            let rows = active[t];
            // SAFETY: the states' block `t`, `rows` whole rows, inside the
            // buffer (checked above). Every ticket before this phase's first
            // (`k - s`) is done: `done` counted them after their writes
            // (Release) and was read here with Acquire. So the slices of
            // step `t - 1`, the only writers of block `t`, are done; no
            // slice of step `t` writes it; and the next phase starts only
            // once this slice is counted done.
            let prev = unsafe {
                std::slice::from_raw_parts(block(s_ptr, t, w_s).cast_const(), rows * w_s)
            };
            let kept = if phase == 0 {
                &[][..]
            } else {
                // SAFETY: the kept values' block `t`, `rows` whole rows,
                // inside the buffer; written in phase 0 of this step only
                // (done, as above), read-only in this phase.
                unsafe { std::slice::from_raw_parts(block(a_ptr, t, w_a).cast_const(), rows * w_a) }
            };
            let cols = &slices[s];
            body(UnitStep {
                step: t,
                phase,
                units: cols.clone(),
                rows,
                prev,
                // Blocks `t` of the gates and kept values, `t + 1` of the
                // states and the scratch rows, columns of slice `s` only: no
                // other slice of this phase touches them (the slices are
                // disjoint), no other phase runs meanwhile (see `prev`),
                // only ticket `k` is slice `s` of this phase, and the kept
                // values are written in phase 0 only.
                gates: units_mut(block(g_ptr, t, w_g), rows, p_g, cols),
                next: units_mut(block(s_ptr, t + 1, w_s), rows, p_s, cols),
                aux: units_mut(
                    block(a_ptr, t, w_a),
                    if phase == 0 { rows } else { 0 },
                    p_a,
                    cols,
                ),
                kept,
                scratch: units_mut(x_ptr.get(), rows, p_x, cols),
            });
            done.fetch_add(1, Ordering::Release);
        }
    };
    if helpers == 0 || steps == 0 {
        participant(&mut tick);
    } else {
        let participant = &participant;
        rayon::scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(move |_| participant(&mut |_| true));
            }
            participant(&mut tick);
        });
    }
    !stop.load(Ordering::Acquire)
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
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
        for helpers in 0..3 {
            let whole_range = std::slice::from_ref(&(0..8));
            let splits: [&[Range<usize>]; 3] = [whole_range, &[0..4, 4..8], &[0..2, 2..3, 3..8]];
            for slices in splits {
                assert_eq!(toy(helpers, slices), whole, "{helpers} {slices:?}");
            }
        }
        // the last block's row is written, the padding after it is not
        assert_ne!(whole[11 * 8], 0.0);
        assert_eq!(whole[12 * 8], 0.0);
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
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
}
