//! The single-step API ([`crate::step::Prepared`]) against the driver: a loop
//! of steps equals a whole-sequence forward pass, for every cell, and its
//! results do not depend on the thread count.

use crate::cell::{basic_rnn, gru, lstm};
use crate::kernels::scalar::Scalar;
use crate::sequence::{self, time_major_view};
use crate::step::params::{Options, Value, Weights};
use crate::step::{Cell, Prepared};
use ndarray::{s, Array2, Array3, ArrayD, Axis};

pub(super) fn rand(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut s = seed;
    ArrayD::from_shape_fn(shape, |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) * 0.7
    })
}

/// Every kind of cell (and the LSTM with every option), built through the
/// named protocol the Python edge uses; `I = 5`, `H = 6`, `P = 4`.
pub(super) fn cells<T: Scalar>() -> Vec<(&'static str, Box<dyn Cell<T>>)> {
    cells_sized(5, 6, 4)
}

/// [`cells`] of input size `i`, `h` units and LSTM projection `p`.
pub(super) fn cells_sized<T: Scalar>(
    i: usize,
    h: usize,
    p: usize,
) -> Vec<(&'static str, Box<dyn Cell<T>>)> {
    // Weights of about the same effect at any width (exactly the H = 6 ones
    // there), so that wide ReLU cells do not overflow.
    let scale = (6.0 / h as f64).sqrt();
    let cast = |a: ArrayD<f64>| a.mapv(|v| T::from_f64(v * scale));
    let mut out: Vec<(&'static str, Box<dyn Cell<T>>)> = Vec::new();
    let named = |items: Vec<(&'static str, ArrayD<T>)>| items;

    let w = named(vec![
        ("kernel", cast(rand(&[i + h, h], 1))),
        ("bias", cast(rand(&[h], 2))),
    ]);
    let views = w.iter().map(|(n, a)| (*n, a.view())).collect();
    let o = Options::default().with("activation", Value::Str("relu".into()));
    out.push((
        "basic_rnn",
        basic_rnn::build(o, Weights::new(views)).unwrap(),
    ));

    let w = named(vec![
        ("kernel", cast(rand(&[i + p, 4 * h], 3))),
        ("bias", cast(rand(&[4 * h], 4))),
        ("w_i_diag", cast(rand(&[h], 5))),
        ("w_f_diag", cast(rand(&[h], 6))),
        ("w_o_diag", cast(rand(&[h], 7))),
        ("projection/kernel", cast(rand(&[h, p], 8))),
    ]);
    let views = w.iter().map(|(n, a)| (*n, a.view())).collect();
    let o = Options::default()
        .with("forget_bias", Value::Float(0.5))
        .with("cell_clip", Value::Float(0.4))
        .with("proj_clip", Value::Float(0.3));
    out.push((
        "lstm (all options)",
        lstm::build(o, Weights::new(views)).unwrap(),
    ));

    let w = named(vec![
        ("kernel", cast(rand(&[i + h, 4 * h], 9))),
        ("bias", cast(rand(&[4 * h], 10))),
    ]);
    let views = w.iter().map(|(n, a)| (*n, a.view())).collect();
    out.push((
        "lstm",
        lstm::build(Options::default(), Weights::new(views)).unwrap(),
    ));

    for reset_after in [false, true] {
        let mut w = named(vec![
            ("gates/kernel", cast(rand(&[i + h, 2 * h], 11))),
            ("gates/bias", cast(rand(&[2 * h], 12))),
        ]);
        if reset_after {
            w.push(("candidate/input_kernel", cast(rand(&[i, h], 13))));
            w.push(("candidate/hidden_kernel", cast(rand(&[h, h], 14))));
            w.push(("candidate/input_bias", cast(rand(&[h], 15))));
            w.push(("candidate/hidden_bias", cast(rand(&[h], 16))));
        } else {
            w.push(("candidate/kernel", cast(rand(&[i + h, h], 17))));
            w.push(("candidate/bias", cast(rand(&[h], 18))));
        }
        let views = w.iter().map(|(n, a)| (*n, a.view())).collect();
        let o = Options::default().with("reset_after", Value::Bool(reset_after));
        let name = if reset_after {
            "gru (reset after)"
        } else {
            "gru"
        };
        out.push((name, gru::build(o, Weights::new(views)).unwrap()));
    }
    out
}

/// Whether `cell`'s steps at B = 1 split in two by units on a two-thread
/// pool, forward and backward (`sequence::segment::split_units`,
/// `split_units_back`): the tests of the split check
/// with it that their cases take that path. The pool is its own: tests
/// running beside the caller resize the crate's.
pub(super) fn splits_in_two<T: Scalar>(cell: &dyn Cell<T>) -> [bool; 2] {
    let two_threads = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let plan = sequence::plan::Plan::new(1, 4, None).unwrap();
    let g = &plan.groups[0];
    let [forward, backward] = two_threads.install(|| {
        [
            sequence::segment::split_units(cell, g, 0),
            sequence::segment::split_units_back(cell, g, 0),
        ]
    });
    [forward, backward].map(|split| split.is_some_and(|(_, slices)| slices.len() == 2))
}

pub(super) fn initial<T: Scalar>(cell: &dyn Cell<T>, batch: usize) -> Vec<Array2<T>> {
    cell.layout()
        .state
        .iter()
        .enumerate()
        .map(|(k, part)| {
            rand(&[batch, part.width], 30 + k as u64)
                .mapv(T::from_f64)
                .into_dimensionality()
                .unwrap()
        })
        .collect()
}

#[test]
fn steps_equal_a_whole_sequence() {
    let (batch, time) = (3, 4);
    for (name, cell) in cells::<f64>() {
        let input = cell.layout().input;
        let x: Array3<f64> = rand(&[batch, time, input], 40)
            .into_dimensionality()
            .unwrap();
        let h0 = initial(cell.as_ref(), batch);
        let views: Vec<_> = h0.iter().map(|a| a.view()).collect();
        let whole = sequence::forward(
            cell.as_ref(),
            time_major_view(x.view(), false),
            &views,
            None,
            false,
        )
        .unwrap();
        let prepared = Prepared::new(cell);
        let mut stepper = prepared.stepper("state", &views).unwrap();
        for t in 0..time {
            let out = stepper.step(x.slice(s![.., t, ..])).unwrap().to_owned();
            let want = whole.outputs.slice(s![.., t, ..]);
            let diff = (&out - &want).iter().fold(0.0f64, |m, d| m.max(d.abs()));
            assert!(diff < 1e-13, "{name} step {t}: {diff}");
        }
        for (got, want) in stepper.state_parts().iter().zip(&whole.state) {
            assert!((got - want).iter().all(|d| d.abs() < 1e-13), "{name} state");
        }
        // a short call on the prepared cell runs over its packed input kernel
        let short = sequence::forward_prepared(
            &prepared,
            time_major_view(x.view(), false),
            &views,
            None,
            false,
            None,
            &crate::error::Uninterrupted,
        )
        .unwrap();
        let diff = (&short.outputs - &whole.outputs)
            .iter()
            .fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(diff < 1e-13, "{name} prepared: {diff}");
        // one step through the convenience call is the stepper's first step
        let one = prepared.step(x.slice(s![.., 0, ..]), &views).unwrap();
        let want = whole.outputs.slice(s![.., 0, ..]);
        assert!(
            (&one.output - &want).iter().all(|d| d.abs() < 1e-13),
            "{name}"
        );
        assert_eq!(one.state.len(), prepared.cell().layout().state.len());
    }
}

#[test]
fn steps_are_bitwise_identical_across_thread_counts() {
    // 70 rows: four chunks of rows on the pool when the work is worth it
    crate::pool::set_parallel_work(Some(0));
    for (name, cell) in cells::<f32>() {
        let input = cell.layout().input;
        let x: Array3<f32> = rand(&[70, 3, input], 50)
            .mapv(|v| v as f32)
            .into_dimensionality()
            .unwrap();
        let h0 = initial(cell.as_ref(), 70);
        let views: Vec<_> = h0.iter().map(|a| a.view()).collect();
        let prepared = Prepared::new(cell);
        let run = |threads: usize| {
            crate::pool::set_num_threads(threads).unwrap();
            let mut stepper = prepared.stepper("state", &views).unwrap();
            for t in 0..3 {
                stepper.step(x.index_axis(Axis(1), t)).unwrap();
            }
            stepper.state().to_owned()
        };
        let one = run(1);
        assert!(one == run(2) && one == run(3), "{name}");
    }
}

#[test]
fn small_single_steps_split_by_units_bitwise_as_one_thread() {
    // A stepper of one chunk of rows splits each step by units over the pool
    // (`Stepper::split`, taken for any weights once the parallel threshold
    // is 0): the same values, bit for bit, through full steps, steps of
    // fewer rows, reordered and moved rows and strided inputs (the unsplit
    // path).
    fn check<T: Scalar>() {
        crate::pool::set_parallel_work(Some(0));
        for (name, cell) in cells_sized::<T>(7, 96, 32) {
            let prepared = Prepared::new(cell);
            let input = prepared.cell().layout().input;
            for batch in [1, 3, 5] {
                let x: Array3<T> = rand(&[batch, 6, input], 60)
                    .mapv(T::from_f64)
                    .into_dimensionality()
                    .unwrap();
                let strided: Array2<T> = rand(&[input, batch], 61)
                    .mapv(T::from_f64)
                    .into_dimensionality()
                    .unwrap();
                let h0 = initial(prepared.cell(), batch);
                let views: Vec<_> = h0.iter().map(|a| a.view()).collect();
                let run = |threads: usize| {
                    crate::pool::set_num_threads(threads).unwrap();
                    let mut stepper = prepared.stepper("state", &views).unwrap();
                    let mut seen = Vec::new();
                    for t in 0..3 {
                        seen.push(stepper.step(x.index_axis(Axis(1), t)).unwrap().to_owned());
                    }
                    let rows = batch.div_ceil(2);
                    let xs = x.slice(s![..rows, 3, ..]);
                    seen.push(stepper.step_rows(rows, xs).unwrap().to_owned());
                    let reversed: Vec<usize> = (0..batch).rev().collect();
                    stepper.gather_rows(&reversed);
                    stepper.move_row(0, batch - 1);
                    seen.push(stepper.step(x.index_axis(Axis(1), 4)).unwrap().to_owned());
                    seen.push(stepper.step(strided.t()).unwrap().to_owned());
                    seen.push(stepper.step(x.index_axis(Axis(1), 5)).unwrap().to_owned());
                    seen.push(stepper.state().to_owned());
                    seen
                };
                let one = run(1);
                for threads in [2, 3] {
                    assert!(one == run(threads), "{name} B{batch} {threads} threads");
                }
            }
        }
        crate::pool::set_parallel_work(None);
    }
    check::<f32>();
    check::<f64>();
    // the path is taken: every kind but the projected LSTM splits at two
    // threads, here for weights of several MiB (above any core's L2)
    crate::pool::set_num_threads(2).unwrap();
    for (name, cell) in cells_sized::<f64>(2048, 256, 32) {
        let prepared = Prepared::new(cell);
        let projected = prepared.cell().layout().output_width() == 32;
        let x = Array2::<f64>::zeros((1, 2048));
        let h0 = initial(prepared.cell(), 1);
        let views: Vec<_> = h0.iter().map(|a| a.view()).collect();
        let stepper = prepared.stepper("state", &views).unwrap();
        let split = stepper.split(1, 1, &x.view()).map(|(_, s)| s.len());
        assert_eq!(split, (!projected).then_some(2), "{name}");
    }
}

#[test]
fn a_stepper_holding_its_cell_steps_as_a_borrowing_one_and_takes_a_new_state() {
    for (name, cell) in cells::<f64>() {
        let batch = 3;
        let input = cell.layout().input;
        let h0 = initial(cell.as_ref(), batch);
        let views: Vec<_> = h0.iter().map(|a| a.view()).collect();
        let prepared = std::sync::Arc::new(Prepared::new(cell));
        let mut borrowed = prepared.stepper("state", &views).unwrap();
        let mut shared = prepared.shared_stepper("state", &views).unwrap();
        let x: Array3<f64> = rand(&[4, batch, input], 70).into_dimensionality().unwrap();
        for t in 0..4 {
            let want = borrowed.step(x.index_axis(Axis(0), t)).unwrap().to_owned();
            let got = shared.step(x.index_axis(Axis(0), t)).unwrap();
            assert_eq!(got, want, "{name} step {t}");
        }
        // back to the initial state: the first step again
        shared.set_state("state", &views).unwrap();
        let first = shared.step(x.index_axis(Axis(0), 0)).unwrap().to_owned();
        let mut fresh = prepared.stepper("state", &views).unwrap();
        assert_eq!(first, fresh.step(x.index_axis(Axis(0), 0)).unwrap());
        // a rejected state changes nothing
        let before = shared.state().to_owned();
        let wrong: Vec<_> = h0.iter().map(|a| a.slice(s![..2, ..])).collect();
        let e = shared.set_state("state", &wrong).unwrap_err();
        assert!(e.to_string().starts_with("state"), "{name}: {e}");
        assert_eq!(shared.state(), before, "{name}");
    }
}

#[test]
#[cfg(not(feature = "python"))]
fn a_step_of_one_chunk_of_rows_allocates_nothing() {
    // On one thread (no split), every kind, 1 and 5 rows: after the first
    // step (which packs the input kernel), steps allocate nothing.
    use crate::kernels::counting::allocations;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        for (name, cell) in cells::<f32>() {
            let input = cell.layout().input;
            let prepared = Prepared::new(cell);
            for batch in [1, 5] {
                let h0 = initial(prepared.cell(), batch);
                let views: Vec<_> = h0.iter().map(|a| a.view()).collect();
                let mut stepper = prepared.stepper("state", &views).unwrap();
                let x: Array2<f32> = rand(&[batch, input], 71)
                    .mapv(f32::from_f64)
                    .into_dimensionality()
                    .unwrap();
                stepper.step(x.view()).unwrap();
                let before = allocations();
                for _ in 0..3 {
                    stepper.step(x.view()).unwrap();
                }
                assert_eq!(allocations(), before, "{name} B{batch}");
                for _ in 0..3 {
                    stepper.step_rows(batch - 1, x.slice(s![1.., ..])).unwrap();
                }
                assert_eq!(allocations(), before, "{name} B{batch} rows");
            }
        }
    });
}

#[test]
fn step_errors_name_the_argument() {
    let (_, cell) = cells::<f64>().remove(1);
    let prepared = Prepared::new(cell);
    let c = Array2::<f64>::zeros((2, 6));
    let h = Array2::<f64>::zeros((2, 3));
    let e = prepared
        .stepper("state", &[c.view(), h.view()])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "state.h: expected shape [2, 4], got shape [2, 3]"
    );
    let e = prepared.stepper("state", &[c.view()]).unwrap_err();
    assert_eq!(e.to_string(), "state: expected 2 state parts, got 1");
    let h = Array2::<f64>::zeros((2, 4));
    let mut stepper = prepared.stepper("state", &[c.view(), h.view()]).unwrap();
    let x = Array2::<f64>::zeros((2, 4));
    let e = stepper.step(x.view()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs: expected shape [2, 5], got shape [2, 4]"
    );
}
