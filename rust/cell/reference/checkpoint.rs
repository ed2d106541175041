//! Checkpointed backpropagation ([`sequence::forward_checkpointed`]) against
//! the plain one: outputs, final state and every gradient bitwise equal, for
//! every cell (and the example cell, which relies on the step trait's
//! default deferred methods), both dtypes, ragged lengths with zeros, time-
//! major or not, several segment lengths and any thread count.

use super::steps::{cells, cells_sized, initial, rand};
use crate::kernels::scalar::Scalar;
use crate::sequence::{self, time_major_view, Checkpoint, Grads, Output};
use crate::step::params::{Options, Value, Weights};
use crate::step::{Cell, Prepared};
use ndarray::{Array2, Array3, ArrayD};

/// The example cell (IndRNN), `I = 5`, `H = 6`.
fn example<T: Scalar>() -> Box<dyn Cell<T>> {
    let w: Vec<(&str, ArrayD<T>)> = vec![
        ("input_kernel", rand(&[5, 6], 60).mapv(T::from_f64)),
        ("recurrent_kernel", rand(&[6], 61).mapv(T::from_f64)),
        ("bias", rand(&[6], 62).mapv(T::from_f64)),
    ];
    let views = w.iter().map(|(n, a)| (*n, a.view())).collect();
    let o = Options::default().with("activation", Value::Str("tanh".into()));
    super::example::build(o, Weights::new(views)).unwrap()
}

fn all_cells<T: Scalar>() -> Vec<(&'static str, Box<dyn Cell<T>>)> {
    let mut out = cells::<T>();
    out.push(("example (default deferred methods)", example()));
    out
}

/// One call's arrays: inputs `[T, B, I]`, initial state, `d_outputs`
/// `[T, B, out]` and `d_state` (either gradient may be absent).
struct Case<T> {
    x: Array3<T>,
    h0: Vec<Array2<T>>,
    lengths: Option<Vec<i64>>,
    dy: Option<Array3<T>>,
    ds: Option<Vec<Array2<T>>>,
}

fn case<T: Scalar>(
    cell: &dyn Cell<T>,
    batch: usize,
    time: usize,
    ragged: bool,
    seed: u64,
) -> Case<T> {
    let layout = cell.layout();
    let cast = |a: ArrayD<f64>| {
        a.mapv(T::from_f64)
            .into_dimensionality::<ndarray::Ix3>()
            .unwrap()
    };
    let cast2 = |a: ArrayD<f64>| {
        a.mapv(T::from_f64)
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
    };
    let lengths = ragged.then(|| {
        (0..batch)
            .map(|b| match b % 4 {
                0 => time as i64,
                1 => 0,
                _ => ((b * 7 + seed as usize) % (time + 1)) as i64,
            })
            .collect()
    });
    let out = layout.output_width();
    Case {
        x: cast(rand(&[time, batch, layout.input], seed)),
        h0: initial(cell, batch),
        lengths,
        dy: (seed % 3 != 1).then(|| cast(rand(&[time, batch, out], seed + 1))),
        ds: (seed % 3 != 2).then(|| {
            layout
                .state
                .iter()
                .enumerate()
                .map(|(i, p)| cast2(rand(&[batch, p.width], seed + 2 + i as u64)))
                .collect()
        }),
    }
}

/// Forward then backward, checkpointed or not; `time_major` picks the
/// layout the caller sees (the arrays are stored time-major).
fn run<T: Scalar>(
    cell: &dyn Cell<T>,
    c: &Case<T>,
    time_major: bool,
    checkpoint: Option<Checkpoint>,
) -> (Output<T>, Grads<T>) {
    fn view<T>(a: &Array3<T>, time_major: bool) -> ndarray::ArrayView3<'_, T> {
        if time_major {
            a.view()
        } else {
            a.view().permuted_axes([1, 0, 2])
        }
    }
    let h0: Vec<_> = c.h0.iter().map(|a| a.view()).collect();
    let x = time_major_view(view(&c.x, time_major), time_major);
    let lengths = c.lengths.as_deref();
    let out = match checkpoint {
        None => sequence::forward(cell, x, &h0, lengths, time_major),
        Some(k) => sequence::forward_checkpointed(cell, x, &h0, lengths, time_major, k),
    }
    .unwrap();
    // a call of at most one chunk of steps keeps everything
    let longest = c.lengths.as_ref().map_or(c.x.dim().0, |l| {
        l.iter().copied().max().unwrap_or(0) as usize
    });
    let kept = checkpoint.is_some() && longest > out.cache.plan.chunk_steps();
    assert_eq!(out.cache.checkpoints.is_some(), kept);
    let dy =
        c.dy.as_ref()
            .map(|d| time_major_view(view(d, time_major), time_major));
    let ds: Option<Vec<_>> = c.ds.as_ref().map(|p| p.iter().map(|a| a.view()).collect());
    let grads = sequence::backward(cell, &out.cache, dy, ds.as_deref()).unwrap();
    (out, grads)
}

fn assert_same<T: Scalar>(what: &str, a: &(Output<T>, Grads<T>), b: &(Output<T>, Grads<T>)) {
    assert!(a.0.outputs == b.0.outputs, "{what}: outputs");
    assert!(a.0.state == b.0.state, "{what}: final state");
    assert!(a.1.inputs == b.1.inputs, "{what}: d inputs");
    assert!(
        a.1.initial_state == b.1.initial_state,
        "{what}: d initial state"
    );
    assert_eq!(a.1.weights.len(), b.1.weights.len(), "{what}: weight names");
    for ((na, wa), (nb, wb)) in a.1.weights.iter().zip(&b.1.weights) {
        assert_eq!(na, nb, "{what}: weight names");
        assert!(wa == wb, "{what}: d {na}");
    }
}

fn checkpointed_equals_plain<T: Scalar>() {
    // 1 and 5 rows: one group, chunks of 2048 and 512 steps; 40 and 70
    // rows: two and four groups, chunks of 32 steps, so several chunks and
    // segments
    let checkpoints = [
        Checkpoint::Every(1),
        Checkpoint::Every(33),
        Checkpoint::Auto,
        Checkpoint::Every(10_000),
    ];
    let mut seed = 100;
    for (name, cell) in all_cells::<T>() {
        for (batch, time) in [(1, 7), (5, 0), (5, 1100), (40, 70), (70, 100), (70, 1)] {
            for ragged in [false, true] {
                seed += 1;
                let c = case(cell.as_ref(), batch, time, ragged, seed);
                let time_major = seed % 2 == 0;
                let plain = run(cell.as_ref(), &c, time_major, None);
                for k in checkpoints {
                    let what = format!("{name} B{batch} T{time} ragged {ragged} {k:?}");
                    let kept = run(cell.as_ref(), &c, time_major, Some(k));
                    assert_same(&what, &plain, &kept);
                }
            }
        }
    }
}

#[test]
fn checkpointed_equals_plain_f32() {
    checkpointed_equals_plain::<f32>();
}

#[test]
fn checkpointed_equals_plain_f64() {
    checkpointed_equals_plain::<f64>();
}

#[test]
fn checkpointed_is_bitwise_identical_across_thread_counts() {
    crate::pool::set_parallel_work(Some(0));
    for (name, cell) in all_cells::<f32>() {
        let c = case(cell.as_ref(), 70, 90, true, 7);
        let plain = {
            crate::pool::set_num_threads(1).unwrap();
            run(cell.as_ref(), &c, false, None)
        };
        for threads in [1, 2, 3] {
            crate::pool::set_num_threads(threads).unwrap();
            for k in [Checkpoint::Every(32), Checkpoint::Auto] {
                let what = format!("{name} {threads} threads {k:?}");
                assert_same(&what, &plain, &run(cell.as_ref(), &c, false, Some(k)));
            }
            let what = format!("{name} {threads} threads, plain");
            assert_same(&what, &plain, &run(cell.as_ref(), &c, false, None));
        }
    }
    crate::pool::set_parallel_work(None);
}

#[test]
fn small_batches_split_by_units_over_several_chunks() {
    // Five rows: one group, chunks of 512 steps (two here), its steps split by units
    // over the pool at 2 and 3 threads (`sequence::segment::split_units`),
    // in the forward pass and in the backward pass's recomputation: every
    // result bitwise that of one thread without checkpoints.
    fn check<T: Scalar>() {
        crate::pool::set_parallel_work(Some(0));
        for (name, cell) in cells_sized::<T>(7, 96, 32) {
            let c = case(cell.as_ref(), 5, 600, true, 3);
            crate::pool::set_num_threads(1).unwrap();
            let plain = run(cell.as_ref(), &c, false, None);
            let finite = |a: &Array3<T>| a.iter().all(|v| v.partial_cmp(v).is_some()); // no NaN
            assert!(
                finite(&plain.0.outputs) && finite(&plain.1.inputs),
                "{name}"
            );
            for threads in [2, 3] {
                crate::pool::set_num_threads(threads).unwrap();
                for k in [None, Some(Checkpoint::Every(512))] {
                    let what = format!("{name} {threads} threads {k:?}");
                    assert_same(&what, &plain, &run(cell.as_ref(), &c, false, k));
                }
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

#[test]
fn segments_are_whole_chunks() {
    let plan = sequence::plan::Plan::new(64, 1000, None).unwrap();
    assert_eq!(plan.chunk_steps(), 32);
    assert_eq!(plan.segment_steps(Checkpoint::Every(1)), 32);
    assert_eq!(plan.segment_steps(Checkpoint::Every(32)), 32);
    assert_eq!(plan.segment_steps(Checkpoint::Every(33)), 64);
    assert_eq!(plan.segment_steps(Checkpoint::Auto), 32);
    assert_eq!(plan.segment_steps(Checkpoint::Every(usize::MAX)), 1024);
    assert_eq!(
        sequence::plan::segment_steps(Checkpoint::Every(40), 64, 10),
        32
    );
    let g = &plan.groups[0];
    assert_eq!(g.segments(32).count(), 32);
    assert_eq!(g.segments(32).last(), Some((992, 1000)));
    assert_eq!(g.checkpoint_rows(32), 32 * 16);
    // one group: chunks of 2048 rows (2048 steps for one row, 128 for 16)
    let chunk = |b| sequence::plan::Plan::new(b, 5, None).unwrap().chunk_steps();
    assert_eq!([1, 16, 31, 32, 300].map(chunk), [2048, 128, 128, 32, 16]);
    assert_eq!(
        sequence::plan::Plan::new(1, 5, None).unwrap().chunk_steps(),
        2048
    );
}

#[test]
fn short_calls_keep_everything() {
    // 3 rows: chunks of 1024 steps. At most one chunk (or at most 64 token
    // rows, projected with the packed kernel): no checkpoints; longer calls
    // checkpoint and equal the plain call.
    for (name, cell) in cells::<f32>() {
        let c = case(cell.as_ref(), 3, 1100, false, 9);
        let prepared = Prepared::new(cell);
        let h0: Vec<_> = c.h0.iter().map(|a| a.view()).collect();
        for (time, kept) in [(20, false), (1024, false), (1025, true), (1100, true)] {
            let x = c.x.slice(ndarray::s![..time, .., ..]);
            let run = |k| {
                sequence::forward_prepared(
                    &prepared,
                    x,
                    &h0,
                    None,
                    true,
                    k,
                    &crate::error::Uninterrupted,
                )
                .unwrap()
            };
            let plain = run(None);
            let ck = run(Some(Checkpoint::Every(4)));
            assert_eq!(ck.cache.checkpoints.is_some(), kept, "{name} T{time}");
            assert!(plain.outputs == ck.outputs, "{name} T{time}");
            let dy = plain.outputs.view();
            let g = |o: &Output<f32>| {
                sequence::backward(prepared.cell(), &o.cache, Some(dy), None).unwrap()
            };
            let (a, b) = (g(&plain), g(&ck));
            assert!(a.inputs == b.inputs, "{name} T{time}");
            for ((_, wa), (_, wb)) in a.weights.iter().zip(&b.weights) {
                assert!(wa == wb, "{name} T{time}");
            }
        }
    }
}

/// The driver zeroes only the padding rows of its one-chunk gate-gradient
/// buffers (the running rows' come from the last chunk): every cell's
/// backward step must write every element of its rows of `d_gates` and
/// `d_aux`.
#[test]
fn backward_steps_write_all_of_their_gate_gradients() {
    use crate::sequence::slots::global_block;
    use crate::step::Backward;
    for (name, cell) in all_cells::<f64>() {
        let c = case(cell.as_ref(), 2, 1, false, 3);
        let h0: Vec<_> = c.h0.iter().map(|a| a.view()).collect();
        let out = sequence::forward(cell.as_ref(), c.x.view(), &h0, None, true).unwrap();
        let (cache, layout) = (&out.cache, cell.layout());
        let g = &cache.plan.groups[0];
        let width = layout.state_width();
        let mut d_state: Vec<f64> = rand(&[2 * width], 5).into_raw_vec_and_offset().0;
        let mut d_gates = vec![f64::NAN; 2 * layout.d_gates];
        let mut d_aux = vec![f64::NAN; 2 * layout.d_aux];
        let mut scratch = vec![0.0; 2 * layout.scratch];
        let mut d_params = vec![0.0; layout.d_params];
        cell.backward_step(Backward {
            rows: 2,
            gates: if layout.keep_gates {
                global_block(&cache.gates, g, 0, 2)
            } else {
                &[]
            },
            prev: global_block(&cache.states, g, 0, 2),
            next: global_block(&cache.states, g, 1, 2),
            aux: global_block(&cache.aux, g, 0, 2),
            d_state: &mut d_state,
            d_gates: &mut d_gates,
            d_aux: &mut d_aux,
            scratch: &mut scratch,
            d_params: &mut d_params,
        });
        assert!(d_gates.iter().all(|v| !v.is_nan()), "{name}: d_gates");
        assert!(d_aux.iter().all(|v| !v.is_nan()), "{name}: d_aux");
    }
}
