//! The decoding loops against naive references: one row at a time, the
//! projection as a triple loop, a full sort for beam search; hand-checked
//! cases (EOS at step 0, rows that never end, ties) and thread-count
//! determinism.

// The references index rows and columns as the formulas do.
#![allow(clippy::needless_range_loop)]

use super::*;
use crate::cell::basic_rnn::BasicRnn;
use crate::error::Uninterrupted;
use crate::kernels::activation::Activation;
use ndarray::{s, Array1, Array2};

fn rand(rows: usize, cols: usize, seed: u64, scale: f64) -> Array2<f64> {
    let mut s = seed;
    Array2::from_shape_fn((rows, cols), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) * scale
    })
}

fn rnn(input: usize, units: usize, seed: u64) -> Prepared<f64> {
    let kernel = rand(input + units, units, seed, 0.8);
    let bias = rand(1, units, seed + 1, 0.3).row(0).to_owned();
    Prepared::new(Box::new(
        BasicRnn::new(Activation::Tanh, kernel.view(), bias.view()).unwrap(),
    ))
}

/// A two-layer decoder (E = 3, H = 5, then 4), its embedding `[V, 3]` and
/// projection `[4, V]`.
struct Case {
    cells: Vec<Prepared<f64>>,
    embedding: Array2<f64>,
    kernel: Array2<f64>,
    bias: Array1<f64>,
    h0: Vec<Array2<f64>>,
}

fn case(batch: usize, vocab: usize, seed: u64) -> Case {
    Case {
        cells: vec![rnn(3, 5, seed), rnn(5, 4, seed + 10)],
        embedding: rand(vocab, 3, seed + 20, 1.0),
        kernel: rand(4, vocab, seed + 30, 2.0),
        bias: rand(1, vocab, seed + 40, 0.5).row(0).to_owned(),
        h0: vec![
            rand(batch, 5, seed + 50, 0.5),
            rand(batch, 4, seed + 60, 0.5),
        ],
    }
}

impl Case {
    fn refs(&self) -> Vec<&Prepared<f64>> {
        self.cells.iter().collect()
    }
    fn initial(&self) -> Vec<Vec<ArrayView2<'_, f64>>> {
        self.h0.iter().map(|h| vec![h.view()]).collect()
    }
    fn projection(&self) -> Projection<f64> {
        Projection::new(4, Some(self.kernel.view()), Some(self.bias.view())).unwrap()
    }
}

/// A decoder the naive loops run row by row: its embedding, its vocabulary,
/// the initial state of batch row `b` (as a list of blocks) and one row's
/// step (`b` its batch row) to the logits.
trait Model {
    fn embedding(&self) -> &Array2<f64>;
    fn vocab(&self) -> usize;
    fn initial_row(&self, b: usize) -> Vec<Vec<f64>>;
    fn step_row(&self, x: &[f64], state: &mut [Vec<f64>], b: usize) -> Vec<f64>;
}

impl Model for Case {
    fn embedding(&self) -> &Array2<f64> {
        &self.embedding
    }
    fn vocab(&self) -> usize {
        self.kernel.ncols()
    }
    fn initial_row(&self, b: usize) -> Vec<Vec<f64>> {
        self.h0.iter().map(|h| h.row(b).to_vec()).collect()
    }
    /// One row's step through the stack and the projection, naively.
    fn step_row(&self, x: &[f64], state: &mut [Vec<f64>], _b: usize) -> Vec<f64> {
        let mut input = x.to_vec();
        for (cell, st) in self.cells.iter().zip(state.iter_mut()) {
            let xi = Array2::from_shape_vec((1, input.len()), input.clone()).unwrap();
            let si = Array2::from_shape_vec((1, st.len()), st.clone()).unwrap();
            let out = cell.step(xi.view(), &[si.view()]).unwrap();
            *st = out.state[0].row(0).to_vec();
            input = out.output.row(0).to_vec();
        }
        let v = self.kernel.ncols();
        (0..v)
            .map(|j| {
                (0..input.len())
                    .map(|i| input[i] * self.kernel[[i, j]])
                    .sum::<f64>()
                    + self.bias[j]
            })
            .collect()
    }
}

/// The naive greedy loop (TF's `dynamic_decode` bookkeeping, row by row).
#[allow(clippy::type_complexity)]
fn naive_greedy(
    c: &impl Model,
    start: &[i64],
    end: usize,
    max_iters: usize,
    impute: bool,
    uniforms: Option<&Array2<f64>>,
) -> (
    Vec<Vec<Vec<f64>>>,
    Vec<Vec<i32>>,
    Vec<i32>,
    Vec<Vec<Vec<f64>>>,
) {
    let b = start.len();
    let v = c.vocab();
    let mut state: Vec<Vec<Vec<f64>>> = (0..b).map(|r| c.initial_row(r)).collect();
    let mut ids: Vec<usize> = start.iter().map(|&s| s as usize).collect();
    let mut finished = vec![max_iters == 0; b];
    let mut lengths = vec![0; b];
    let (mut outs, mut sids) = (vec![vec![]; b], vec![vec![]; b]);
    let mut t = 0;
    while finished.iter().any(|f| !f) {
        let old = finished.clone();
        for r in 0..b {
            if impute && old[r] {
                outs[r].push(vec![0.0; v]);
                sids[r].push(0);
                continue;
            }
            let x = c.embedding().row(ids[r]).to_vec();
            let logits = c.step_row(&x, &mut state[r], r);
            let id = match uniforms {
                None => {
                    let mut best = 0;
                    for j in 0..v {
                        if logits[j] > logits[best] {
                            best = j;
                        }
                    }
                    best
                }
                Some(u) => {
                    let top = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let mut cdf = vec![];
                    let mut acc = 0.0;
                    for &l in &logits {
                        acc += (l - top).exp();
                        cdf.push(acc);
                    }
                    let th = u[[t, r]] * acc;
                    cdf.iter().filter(|&&c| c <= th).count().min(v - 1)
                }
            };
            outs[r].push(logits);
            sids[r].push(id as i32);
            ids[r] = id;
            if !old[r] {
                lengths[r] = t as i32 + 1;
            }
            finished[r] = old[r] || id == end || t + 1 >= max_iters;
        }
        t += 1;
    }
    (outs, sids, lengths, state)
}

fn check_greedy(
    c: &Case,
    start: &[i64],
    end: i64,
    max_iters: usize,
    impute: bool,
    u: Option<&Array2<f64>>,
) -> GreedyOutput<f64> {
    let sampling = u.map(|u| Sampling {
        uniforms: u.view(),
        temperature: 1.0,
    });
    let got = greedy(
        &c.refs(),
        &c.initial(),
        c.embedding.view(),
        &c.projection(),
        start,
        GreedyOptions {
            end_token: end,
            max_iters,
            impute_finished: impute,
            sampling,
        },
        &Uninterrupted,
    )
    .unwrap();
    let (outs, sids, lengths, state) = naive_greedy(c, start, end as usize, max_iters, impute, u);
    assert_eq!(got.lengths, lengths);
    let t = got.sample_id.ncols();
    assert_eq!(t, *lengths.iter().max().unwrap_or(&0) as usize);
    for r in 0..start.len() {
        assert_eq!(got.sample_id.row(r).to_vec(), sids[r], "row {r}");
        for step in 0..t {
            for (a, b) in got
                .rnn_output
                .slice(s![r, step, ..])
                .iter()
                .zip(&outs[r][step])
            {
                assert!((a - b).abs() < 1e-12, "row {r} step {step}: {a} vs {b}");
            }
        }
        for (layer, parts) in got.state.iter().enumerate() {
            for (a, b) in parts[0].row(r).iter().zip(&state[r][layer]) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }
    got
}

#[test]
fn greedy_and_sampled_decoding_match_the_naive_loop() {
    let c = case(6, 7, 1);
    let start = [0, 1, 2, 3, 4, 5];
    for end in [0, 3, 6] {
        for max_iters in [0, 1, 2, 9] {
            for impute in [false, true] {
                check_greedy(&c, &start, end, max_iters, impute, None);
                let u = rand(max_iters, 6, 7 + end as u64, 0.5).mapv(|x| x + 0.5);
                check_greedy(&c, &start, end, max_iters, impute, Some(&u));
            }
        }
    }
}

#[test]
fn greedy_hand_checked_cases() {
    let mut c = case(3, 4, 2);
    c.kernel.fill(0.0);
    // EOS at step 0: every row has length 1, T = 1
    c.bias = Array1::from(vec![0.0, 0.0, 5.0, 0.0]);
    let g = check_greedy(&c, &[0, 1, 3], 2, 10, true, None);
    assert_eq!(g.lengths, vec![1, 1, 1]);
    assert_eq!(g.sample_id, Array2::from_elem((3, 1), 2));
    // never ending: every row runs maximum_iterations steps
    c.bias = Array1::from(vec![0.0, 5.0, 0.0, 0.0]);
    let g = check_greedy(&c, &[0, 1, 3], 2, 6, false, None);
    assert_eq!(g.lengths, vec![6, 6, 6]);
    assert_eq!(g.sample_id, Array2::from_elem((3, 6), 1));
    // a tie: the first maximum
    c.bias = Array1::from(vec![0.0, 3.0, 3.0, 3.0]);
    let g = check_greedy(&c, &[0, 1, 2], 3, 2, true, None);
    assert_eq!(g.sample_id.row(0).to_vec(), vec![1, 1]);
}

#[test]
fn impute_finished_freezes_rows_and_zeros_their_outputs() {
    // ragged EOS: rows end at different steps
    for seed in 0..8 {
        let c = case(9, 5, 100 + seed);
        let g = check_greedy(&c, &[0, 1, 2, 3, 4, 0, 1, 2, 3], 1, 12, true, None);
        for (r, &len) in g.lengths.iter().enumerate() {
            let past = g.rnn_output.slice(s![r, len as usize.., ..]);
            assert!(past.iter().all(|&v| v == 0.0));
        }
        check_greedy(&c, &[0, 1, 2, 3, 4, 0, 1, 2, 3], 1, 12, false, None);
    }
}

/// The naive beam search: TF 1.15's step with a full sort of the
/// candidates, row by row.
#[allow(clippy::type_complexity)]
fn naive_beam(
    c: &impl Model,
    start: &[i64],
    end: usize,
    k: usize,
    max_iters: usize,
    w: f64,
) -> (
    Vec<[Vec<i32>; 2]>,
    Vec<Vec<f64>>,
    Vec<f64>,
    Vec<bool>,
    Vec<i32>,
    Vec<Vec<Vec<f64>>>,
) {
    let b = start.len();
    let v = c.vocab();
    let rows = b * k;
    let mut state: Vec<Vec<Vec<f64>>> = (0..rows).map(|r| c.initial_row(r / k)).collect();
    let mut lp: Vec<f64> = (0..rows)
        .map(|r| if r % k == 0 { 0.0 } else { f64::NEG_INFINITY })
        .collect();
    let mut fin: Vec<bool> = (0..rows).map(|r| r % k != 0).collect();
    let mut len = vec![0i32; rows];
    let mut words: Vec<usize> = (0..rows).map(|r| start[r / k] as usize).collect();
    let mut steps = vec![];
    let mut scores = vec![];
    let mut t = 0;
    while t < max_iters && fin.iter().any(|f| !f) {
        let mut total = vec![vec![0.0; v]; rows];
        for r in 0..rows {
            let x = c.embedding().row(words[r]).to_vec();
            let logits = c.step_row(&x, &mut state[r], r / k);
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
            for j in 0..v {
                let step = if fin[r] {
                    if j == end {
                        0.0
                    } else {
                        f64::MIN
                    }
                } else {
                    logits[j] - m - lse
                };
                total[r][j] = lp[r] + step;
            }
        }
        let mut ids = vec![0; rows];
        let mut par = vec![0; rows];
        let mut sc = vec![0.0; rows];
        let (mut nlp, mut nfin, mut nlen, mut nstate) =
            (lp.clone(), fin.clone(), len.clone(), state.clone());
        for bb in 0..b {
            let mut cand = vec![];
            for j in 0..k {
                let r = bb * k + j;
                for word in 0..v {
                    let l = len[r] + (!fin[r] && word != end) as i32;
                    let pen = if w == 0.0 {
                        1.0
                    } else {
                        (5.0 + l as f64).powf(w) / 6f64.powf(w)
                    };
                    cand.push((total[r][word] / pen, j * v + word));
                }
            }
            cand.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
            for (i, &(score, flat)) in cand[..k].iter().enumerate() {
                let (j, word) = (flat / v, flat % v);
                let (r, p) = (bb * k + i, bb * k + j);
                nlp[r] = total[p][word];
                nfin[r] = fin[p] || word == end;
                nlen[r] = len[p] + !fin[p] as i32;
                nstate[r] = state[p].clone();
                ids[r] = word as i32;
                par[r] = j as i32;
                sc[r] = score;
                words[r] = word;
            }
        }
        (lp, fin, len, state) = (nlp, nfin, nlen, nstate);
        steps.push([ids, par]);
        scores.push(sc);
        t += 1;
    }
    (steps, scores, lp, fin, len, state)
}

fn check_beam(
    c: &Case,
    start: &[i64],
    end: i64,
    k: usize,
    max_iters: usize,
    w: f64,
) -> BeamOutput<f64> {
    let got = beam(
        &c.refs(),
        &c.initial(),
        c.embedding.view(),
        &c.projection(),
        start,
        BeamOptions {
            end_token: end,
            max_iters,
            beam_width: k,
            length_penalty_weight: w,
        },
        &Uninterrupted,
    )
    .unwrap();
    let (steps, scores, lp, fin, len, state) = naive_beam(c, start, end as usize, k, max_iters, w);
    let t = steps.len();
    assert_eq!(got.step_ids.dim(), (start.len(), t, k));
    for (step, ([ids, par], sc)) in steps.iter().zip(&scores).enumerate() {
        for r in 0..ids.len() {
            let (bb, i) = (r / k, r % k);
            assert_eq!(
                got.step_ids[[bb, step, i]],
                ids[r],
                "ids, step {step} row {r}"
            );
            assert_eq!(
                got.parent_ids[[bb, step, i]],
                par[r],
                "parents, step {step}"
            );
            let g = got.scores[[bb, step, i]];
            assert!(g == sc[r] || (g - sc[r]).abs() < 1e-9, "{g} vs {}", sc[r]);
        }
    }
    for r in 0..lp.len() {
        let (bb, i) = (r / k, r % k);
        let g = got.log_probs[[bb, i]];
        assert!(g == lp[r] || (g - lp[r]).abs() < 1e-9);
        assert_eq!(got.finished[[bb, i]], fin[r]);
        assert_eq!(got.lengths[[bb, i]], len[r]);
        for (layer, parts) in got.state.iter().enumerate() {
            for (a, b) in parts[0].row(r).iter().zip(&state[r][layer]) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }
    got
}

#[test]
fn beam_search_matches_the_naive_search() {
    for seed in 0..4 {
        let c = case(3, 6, 200 + seed);
        for k in 1..=4 {
            for w in [0.0, 0.6, 1.5] {
                for max_iters in [0, 1, 3, 10] {
                    check_beam(&c, &[0, 2, 5], (seed % 3) as i64, k, max_iters, w);
                }
            }
        }
        // beam width above the vocabulary
        check_beam(&c, &[0, 2, 5], 1, 8, 4, 0.0);
    }
}

#[test]
fn beam_width_one_is_greedy() {
    let c = case(4, 6, 300);
    let start = [0, 1, 2, 3];
    let b = check_beam(&c, &start, 2, 1, 10, 0.0);
    let g = check_greedy(&c, &start, 2, 10, false, None);
    let t = g.sample_id.ncols();
    // greedy's ids up to each row's end; the beam keeps emitting EOS after
    for r in 0..4 {
        let len = g.lengths[r] as usize;
        for step in 0..len {
            assert_eq!(b.step_ids[[r, step, 0]], g.sample_id[[r, step]]);
        }
        assert_eq!(b.lengths[[r, 0]], g.lengths[r]);
    }
    assert_eq!(b.step_ids.dim().1, t);
}

#[test]
fn beam_hand_checked_ties_and_eos_at_step_0() {
    let mut c = case(1, 5, 400);
    c.kernel.fill(0.0);
    // all logits equal: at step 0 only beam 0 is live, and ties go to the
    // lower index: words 0, 1, 2 from beam 0
    c.bias = Array1::zeros(5);
    let b = check_beam(&c, &[4], 4, 3, 1, 0.0);
    assert_eq!(b.step_ids.slice(s![0, 0, ..]).to_vec(), vec![0, 1, 2]);
    assert_eq!(b.parent_ids.slice(s![0, 0, ..]).to_vec(), vec![0, 0, 0]);
    let lp = -(5f64).ln();
    assert!(b.scores.iter().all(|&s| (s - lp).abs() < 1e-12));
    // EOS the best word at step 0: beam 0 ends at once with length 1; the
    // other beams take the next words, and finished beams keep only EOS
    c.bias = Array1::from(vec![0.0, 0.0, 9.0, 0.0, 1.0]);
    let b = check_beam(&c, &[4], 2, 2, 3, 0.0);
    assert_eq!(b.step_ids.slice(s![0, 0, ..]).to_vec(), vec![2, 4]);
    assert_eq!(b.lengths[[0, 0]], 1);
    assert!(b.finished[[0, 0]]);
}

#[test]
fn decoding_is_bitwise_identical_across_thread_counts() {
    crate::pool::set_parallel_work(Some(0));
    // 40 rows: several chunks of rows on the pool
    let c = case(40, 9, 500);
    let start: Vec<i64> = (0..40).map(|i| i % 9).collect();
    let run = |threads: usize| {
        crate::pool::set_num_threads(threads).unwrap();
        let g = greedy(
            &c.refs(),
            &c.initial(),
            c.embedding.view(),
            &c.projection(),
            &start,
            GreedyOptions {
                end_token: 3,
                max_iters: 12,
                impute_finished: true,
                sampling: None,
            },
            &Uninterrupted,
        )
        .unwrap();
        let initial: Vec<Vec<ArrayView2<f64>>> =
            c.h0.iter().map(|h| vec![h.slice(s![..10, ..])]).collect();
        let b = beam(
            &c.refs(),
            &initial,
            c.embedding.view(),
            &c.projection(),
            &start[..10],
            BeamOptions {
                end_token: 3,
                max_iters: 12,
                beam_width: 4,
                length_penalty_weight: 0.7,
            },
            &Uninterrupted,
        )
        .unwrap();
        (
            g.rnn_output,
            g.state[1][0].clone(),
            b.scores,
            b.state[1][0].clone(),
        )
    };
    let one = run(1);
    assert!(one == run(2), "results differ across thread counts");
}

#[test]
fn errors_name_the_argument() {
    let c = case(2, 4, 600);
    let run = |start: &[i64], end: i64, emb: ArrayView2<f64>| {
        greedy(
            &c.refs(),
            &c.initial(),
            emb,
            &c.projection(),
            start,
            GreedyOptions {
                end_token: end,
                max_iters: 3,
                impute_finished: false,
                sampling: None,
            },
            &Uninterrupted,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(run(&[0, 4], 1, c.embedding.view())
        .starts_with("start_tokens: expected ids in [0, 4), got 4"));
    assert!(run(&[0, 1], 4, c.embedding.view())
        .starts_with("end_token: expected an id in [0, 4), got 4"));
    assert!(run(&[0], 1, c.embedding.view()).starts_with("start_tokens: expected shape [2]"));
    let narrow = Array2::<f64>::zeros((4, 2));
    assert!(run(&[0, 1], 1, narrow.view()).starts_with("embedding: expected shape [V, 3]"));
    let bad = Array2::<f64>::zeros((3, 4));
    let e = Projection::new(4, Some(bad.view()), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("output_layer.kernel: expected shape [4, V]"),
        "{e}"
    );
    let e = beam(
        &c.refs(),
        &c.initial(),
        c.embedding.view(),
        &c.projection(),
        &[0, 1],
        BeamOptions {
            end_token: 1,
            max_iters: 3,
            beam_width: 0,
            length_penalty_weight: 0.0,
        },
        &Uninterrupted,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("beam_width: expected an integer >= 1"), "{e}");
}

#[test]
fn the_interrupt_hook_stops_the_loops() {
    let c = case(2, 4, 700);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let stop = || {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(Error::Interrupted)
    };
    // a decode that never ends: runs until the hook stops it
    let mut bias = Array1::zeros(4);
    bias[1] = 50.0;
    let proj = Projection::new(4, Some(Array2::zeros((4, 4)).view()), Some(bias.view())).unwrap();
    let e = greedy(
        &c.refs(),
        &c.initial(),
        c.embedding.view(),
        &proj,
        &[0, 1],
        GreedyOptions {
            end_token: 2,
            max_iters: usize::MAX,
            impute_finished: false,
            sampling: None,
        },
        &stop,
    )
    .unwrap_err();
    assert_eq!(e, Error::Interrupted);
}

/// Outputs too large for the machine are an error naming
/// `maximum_iterations`, not an abort, and growth doubles.
#[test]
fn outputs_grow_by_doubling_within_the_budget() {
    let mut s = Steps::<f64>::new(1 << 40, usize::MAX, "the outputs");
    let e = s.push().unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { .. }));
    assert!(
        e.to_string()
            .starts_with("maximum_iterations: the call needs"),
        "{e}"
    );
    let mut s = Steps::<i32>::new(3, 100, "the ids");
    for _ in 0..40 {
        s.push().unwrap();
    }
    assert_eq!(s.steps(), 40);
    assert_eq!(s.data.capacity(), 64 * 3);
}

/// The batch-major outputs: written row by row per step, rows never written
/// stay zero, and the result is `[B, T, inner]` both when the whole capacity
/// was taken at once (moved down in place) and when it grew step by step
/// (a `max_steps` far beyond the budget).
#[test]
fn batch_steps_fill_rows_and_compact() {
    for max_steps in [40usize, usize::MAX / 8] {
        let mut out = super::BatchSteps::<f32>::new(3, 2, max_steps, "the outputs").unwrap();
        for t in 0..37 {
            out.push().unwrap();
            for b in 0..3 {
                if b != 1 || t < 5 {
                    out.row_mut(b)
                        .copy_from_slice(&[(100 * b + t) as f32, -((100 * b + t) as f32)]);
                }
            }
        }
        assert_eq!(out.steps(), 37);
        let a = out.into_array();
        assert_eq!(a.shape(), &[3, 37, 2]);
        for b in 0..3 {
            for t in 0..37 {
                let want = if b == 1 && t >= 5 {
                    0.0
                } else {
                    (100 * b + t) as f32
                };
                assert_eq!(a[[b, t, 0]], want, "max_steps {max_steps} b {b} t {t}");
                assert_eq!(a[[b, t, 1]], -want);
            }
        }
    }
}

// ---- the attention wrapper inside the loops ----------------------------------

use crate::attention::{Config, Score, Weights};
use ndarray::Array3;

/// An attention wrapper (a BasicRNN of `Q = 4` units reading `[x (E = 3),
/// a (A)]`) over a memory `[M, Tm = 5, Dm = 3]` of ragged lengths; row `b`
/// attends to memory row `b / (B / M)`.
struct AttCase {
    cell: Prepared<f64>,
    embedding: Array2<f64>,
    kernel: Array2<f64>,
    bias: Array1<f64>,
    h0: Array2<f64>,
    a0: Array2<f64>,
    al0: Array2<f64>,
    memory: Array3<f64>,
    mlen: Vec<i64>,
    weights: Weights<f64>,
    config: Config,
    per_row: usize,
}

const Q: usize = 4;
const TM: usize = 5;
const DM: usize = 3;

fn att_case(
    batch: usize,
    m: usize,
    vocab: usize,
    score: Score,
    layer: bool,
    output_attention: bool,
    seed: u64,
) -> AttCase {
    let units = if matches!(score, Score::Luong { .. }) {
        Q
    } else {
        6
    };
    let width = if layer { 2 } else { DM };
    let out = if output_attention { width } else { Q };
    let bahdanau = matches!(score, Score::Bahdanau { .. });
    let has_g = matches!(
        score,
        Score::Bahdanau { normalize: true } | Score::Luong { scale: true }
    );
    let memory = Array3::from_shape_vec(
        (m, TM, DM),
        rand(m * TM, DM, seed + 1, 1.0).into_raw_vec_and_offset().0,
    )
    .unwrap();
    AttCase {
        cell: rnn(3 + width, Q, seed),
        embedding: rand(vocab, 3, seed + 2, 1.0),
        kernel: rand(out, vocab, seed + 3, 2.0),
        bias: rand(1, vocab, seed + 4, 0.5).row(0).to_owned(),
        h0: rand(batch, Q, seed + 5, 0.5),
        a0: rand(batch, width, seed + 6, 0.5),
        al0: rand(batch, TM, seed + 7, 0.5),
        memory,
        mlen: (0..m).map(|i| [5, 2, 1, 4][i % 4]).collect(),
        weights: Weights {
            memory_kernel: rand(DM, units, seed + 8, 0.8),
            query_kernel: bahdanau.then(|| rand(Q, units, seed + 9, 0.8)),
            v: bahdanau.then(|| rand(1, units, seed + 10, 1.0).row(0).to_owned()),
            g: has_g.then_some(1.3),
            b: matches!(score, Score::Bahdanau { normalize: true })
                .then(|| rand(1, units, seed + 11, 0.3).row(0).to_owned()),
            attention_kernel: layer.then(|| rand(Q + DM, width, seed + 12, 0.8)),
        },
        config: Config {
            score,
            output_attention,
            alignment_history: false,
        },
        per_row: batch / m,
    }
}

impl AttCase {
    fn wrapper(&self) -> Wrapper<'_, f64> {
        Wrapper {
            inputs: AttentionInputs {
                memory: self.memory.view(),
                memory_lengths: Some(&self.mlen),
                attention: self.a0.view(),
                alignments: self.al0.view(),
            },
            weights: &self.weights,
            config: self.config,
        }
    }
    fn projection(&self) -> Projection<f64> {
        Projection::new(
            self.kernel.nrows(),
            Some(self.kernel.view()),
            Some(self.bias.view()),
        )
        .unwrap()
    }
}

impl Model for AttCase {
    fn embedding(&self) -> &Array2<f64> {
        &self.embedding
    }
    fn vocab(&self) -> usize {
        self.kernel.ncols()
    }
    fn initial_row(&self, b: usize) -> Vec<Vec<f64>> {
        vec![
            self.h0.row(b).to_vec(),
            self.a0.row(b).to_vec(),
            self.al0.row(b).to_vec(),
        ]
    }
    /// The wrapper's step as the formulas read, then the projection.
    fn step_row(&self, x: &[f64], state: &mut [Vec<f64>], b: usize) -> Vec<f64> {
        let w = &self.weights;
        let m = b / self.per_row;
        let len = self.mlen[m] as usize;
        let mut input = x.to_vec();
        input.extend_from_slice(&state[1]);
        let xi = Array2::from_shape_vec((1, input.len()), input).unwrap();
        let si = Array2::from_shape_vec((1, Q), state[0].clone()).unwrap();
        let h = self
            .cell
            .step(xi.view(), &[si.view()])
            .unwrap()
            .output
            .row(0)
            .to_vec();
        let units = w.memory_kernel.ncols();
        let values: Vec<Vec<f64>> = (0..TM)
            .map(|j| {
                (0..DM)
                    .map(|d| if j < len { self.memory[[m, j, d]] } else { 0.0 })
                    .collect()
            })
            .collect();
        let keys: Vec<Vec<f64>> = values
            .iter()
            .map(|v| {
                (0..units)
                    .map(|u| (0..DM).map(|d| v[d] * w.memory_kernel[[d, u]]).sum())
                    .collect()
            })
            .collect();
        let scores: Vec<f64> = match self.config.score {
            Score::Luong { .. } => keys
                .iter()
                .map(|k| w.g.unwrap_or(1.0) * (0..Q).map(|u| h[u] * k[u]).sum::<f64>())
                .collect(),
            Score::Bahdanau { normalize } => {
                let wq = w.query_kernel.as_ref().unwrap();
                let v = w.v.as_ref().unwrap();
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                let veff: Vec<f64> = v
                    .iter()
                    .map(|&x| {
                        if normalize {
                            w.g.unwrap() * x / norm
                        } else {
                            x
                        }
                    })
                    .collect();
                let pq: Vec<f64> = (0..units)
                    .map(|u| {
                        (0..Q).map(|i| h[i] * wq[[i, u]]).sum::<f64>()
                            + w.b.as_ref().map_or(0.0, |b| b[u])
                    })
                    .collect();
                keys.iter()
                    .map(|k| (0..units).map(|u| veff[u] * (k[u] + pq[u]).tanh()).sum())
                    .collect()
            }
        };
        let top = scores[..len]
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = scores[..len].iter().map(|s| (s - top).exp()).sum();
        let alpha: Vec<f64> = (0..TM)
            .map(|j| {
                if j < len {
                    (scores[j] - top).exp() / sum
                } else {
                    0.0
                }
            })
            .collect();
        let c: Vec<f64> = (0..DM)
            .map(|d| (0..TM).map(|j| alpha[j] * values[j][d]).sum())
            .collect();
        let mut hc = h.clone();
        hc.extend_from_slice(&c);
        let a: Vec<f64> = match &w.attention_kernel {
            Some(k) => (0..k.ncols())
                .map(|o| (0..hc.len()).map(|i| hc[i] * k[[i, o]]).sum())
                .collect(),
            None => c,
        };
        let out = if self.config.output_attention {
            a.clone()
        } else {
            h.clone()
        };
        state[0] = h;
        state[1] = a;
        state[2] = alpha;
        (0..self.vocab())
            .map(|j| {
                (0..out.len())
                    .map(|i| out[i] * self.kernel[[i, j]])
                    .sum::<f64>()
                    + self.bias[j]
            })
            .collect()
    }
}

fn close_rows(got: ArrayView2<f64>, want: &[Vec<Vec<f64>>], block: usize, what: &str) {
    for (r, row) in want.iter().enumerate() {
        for (a, b) in got.row(r).iter().zip(&row[block]) {
            assert!((a - b).abs() < 1e-12, "{what} row {r}: {a} vs {b}");
        }
    }
}

fn att_scores() -> Vec<Score> {
    vec![
        Score::Bahdanau { normalize: false },
        Score::Bahdanau { normalize: true },
        Score::Luong { scale: false },
        Score::Luong { scale: true },
    ]
}

#[test]
fn greedy_with_attention_matches_the_naive_loop() {
    let mut ragged = 0;
    for (i, score) in att_scores().into_iter().enumerate() {
        for (layer, output_attention) in [(true, true), (false, true), (true, false)] {
            for m in [4, 2] {
                let c = att_case(4, m, 7, score, layer, output_attention, 700 + i as u64 * 10);
                let start = [0, 3, 5, 6];
                let u = rand(12, 4, 7, 0.5).mapv(|x| x + 0.5);
                for (impute, uniforms) in [
                    (false, None),
                    (true, None),
                    (false, Some(&u)),
                    (true, Some(&u)),
                ] {
                    for max_iters in [0, 1, 12] {
                        let got = greedy_attention(
                            &[&c.cell],
                            &[vec![c.h0.view()]],
                            c.wrapper(),
                            c.embedding.view(),
                            &c.projection(),
                            &start,
                            GreedyOptions {
                                end_token: 2,
                                max_iters,
                                impute_finished: impute,
                                sampling: uniforms.map(|u| Sampling {
                                    uniforms: u.slice(s![..max_iters, ..]),
                                    temperature: 1.0,
                                }),
                            },
                            &Uninterrupted,
                        )
                        .unwrap();
                        let (outs, sids, lengths, state) =
                            naive_greedy(&c, &start, 2, max_iters, impute, uniforms);
                        assert_eq!(got.lengths, lengths);
                        ragged += (lengths.iter().min() != lengths.iter().max()) as usize;
                        for r in 0..4 {
                            assert_eq!(got.sample_id.row(r).to_vec(), sids[r], "row {r}");
                            for (step, want) in outs[r].iter().enumerate() {
                                for (a, b) in got.rnn_output.slice(s![r, step, ..]).iter().zip(want)
                                {
                                    assert!(
                                        (a - b).abs() < 1e-12,
                                        "row {r} step {step}: {a} vs {b}"
                                    );
                                }
                            }
                        }
                        let att = got.attention.unwrap();
                        close_rows(got.state[0][0].view(), &state, 0, "cell state");
                        close_rows(att.attention.view(), &state, 1, "attention");
                        close_rows(att.alignments.view(), &state, 2, "alignments");
                    }
                }
            }
        }
    }
    assert!(
        ragged > 10,
        "too few cases with rows of different lengths: {ragged}"
    );
}

#[test]
fn beam_search_with_attention_matches_the_naive_search() {
    let mut ended = 0;
    for (i, score) in att_scores().into_iter().enumerate() {
        for (layer, output_attention) in [(true, true), (false, false)] {
            for m in [3, 1] {
                let c = att_case(3, m, 6, score, layer, output_attention, 800 + i as u64 * 10);
                let start = [0, 2, 5];
                for k in [1, 3] {
                    for w in [0.0, 0.9] {
                        for max_iters in [0, 1, 10] {
                            let got = beam_attention(
                                &[&c.cell],
                                &[vec![c.h0.view()]],
                                c.wrapper(),
                                c.embedding.view(),
                                &c.projection(),
                                &start,
                                BeamOptions {
                                    end_token: 1,
                                    max_iters,
                                    beam_width: k,
                                    length_penalty_weight: w,
                                },
                                &Uninterrupted,
                            )
                            .unwrap();
                            let (steps, scores, lp, fin, len, state) =
                                naive_beam(&c, &start, 1, k, max_iters, w);
                            assert_eq!(got.step_ids.dim(), (3, steps.len(), k));
                            for (step, ([ids, par], sc)) in steps.iter().zip(&scores).enumerate() {
                                for r in 0..ids.len() {
                                    let (bb, j) = (r / k, r % k);
                                    assert_eq!(got.step_ids[[bb, step, j]], ids[r]);
                                    assert_eq!(got.parent_ids[[bb, step, j]], par[r]);
                                    assert!((got.scores[[bb, step, j]] - sc[r]).abs() < 1e-9);
                                }
                            }
                            for r in 0..lp.len() {
                                let (bb, j) = (r / k, r % k);
                                let g = got.log_probs[[bb, j]];
                                assert!(g == lp[r] || (g - lp[r]).abs() < 1e-9);
                                assert_eq!(got.finished[[bb, j]], fin[r]);
                                assert_eq!(got.lengths[[bb, j]], len[r]);
                                ended += fin[r] as usize;
                            }
                            let att = got.attention.unwrap();
                            close_rows(got.state[0][0].view(), &state, 0, "cell state");
                            close_rows(att.attention.view(), &state, 1, "attention");
                            close_rows(att.alignments.view(), &state, 2, "alignments");
                        }
                    }
                }
            }
        }
    }
    assert!(ended > 20, "too few finished beams: {ended}");
}

#[test]
fn attention_decoding_is_bitwise_identical_across_thread_counts() {
    crate::pool::set_parallel_work(Some(0));
    let c = att_case(
        40,
        20,
        9,
        Score::Bahdanau { normalize: true },
        true,
        true,
        900,
    );
    let start: Vec<i64> = (0..40).map(|i| i % 9).collect();
    let run = |threads: usize| {
        crate::pool::set_num_threads(threads).unwrap();
        let g = greedy_attention(
            &[&c.cell],
            &[vec![c.h0.view()]],
            c.wrapper(),
            c.embedding.view(),
            &c.projection(),
            &start,
            GreedyOptions {
                end_token: 3,
                max_iters: 12,
                impute_finished: true,
                sampling: None,
            },
            &Uninterrupted,
        )
        .unwrap();
        let b = beam_attention(
            &[&c.cell],
            &[vec![c.h0.view()]],
            c.wrapper(),
            c.embedding.view(),
            &c.projection(),
            &start,
            BeamOptions {
                end_token: 3,
                max_iters: 12,
                beam_width: 4,
                length_penalty_weight: 0.7,
            },
            &Uninterrupted,
        )
        .unwrap();
        let (ga, ba) = (g.attention.unwrap(), b.attention.unwrap());
        (
            g.rnn_output,
            ga.alignments,
            b.scores,
            ba.attention,
            b.state[0][0].clone(),
        )
    };
    let one = run(1);
    assert!(one == run(2), "results differ across thread counts");
    crate::pool::set_parallel_work(None);
}

#[test]
fn attention_errors_name_the_argument() {
    let c = att_case(4, 2, 7, Score::Luong { scale: false }, true, true, 950);
    let run = |wrapper: Wrapper<'_, f64>| {
        greedy_attention(
            &[&c.cell],
            &[vec![c.h0.view()]],
            wrapper,
            c.embedding.view(),
            &c.projection(),
            &[0, 1, 2, 3],
            GreedyOptions {
                end_token: 2,
                max_iters: 3,
                impute_finished: false,
                sampling: None,
            },
            &Uninterrupted,
        )
        .unwrap_err()
        .to_string()
    };
    let mem3 = Array3::<f64>::zeros((3, TM, DM));
    let mut w = c.wrapper();
    w.inputs.memory = mem3.view();
    assert!(run(w).starts_with("memory: expected"), "{}", run(w));
    let mut w = c.wrapper();
    w.inputs.memory_lengths = Some(&[0, 1]);
    assert!(run(w).starts_with("memory_sequence_length"), "{}", run(w));
    let mut w = c.wrapper();
    w.inputs.alignments = c.al0.slice(s![.., ..2]);
    assert!(run(w).starts_with("initial_alignments"), "{}", run(w));
    let mut w = c.wrapper();
    w.config.alignment_history = true;
    assert!(run(w).starts_with("alignment_history"), "{}", run(w));
}

#[test]
fn a_stack_holding_its_cells_steps_as_a_borrowing_one_and_takes_a_new_state() {
    let cells = [Arc::new(rnn(3, 5, 80)), Arc::new(rnn(5, 4, 90))];
    let h0 = [rand(2, 5, 81, 0.5), rand(2, 4, 82, 0.5)];
    let initial: Vec<Vec<_>> = h0.iter().map(|h| vec![h.view()]).collect();
    let refs: Vec<&Prepared<f64>> = cells.iter().map(|c| c.as_ref()).collect();
    let mut borrowed = Stack::new(&refs, &initial).unwrap();
    let mut shared = Stack::shared(&cells, &initial).unwrap();
    assert_eq!(
        (shared.rows(), shared.input_size(), shared.output_size()),
        (2, 3, 4)
    );
    let x = rand(2, 3, 83, 1.0);
    for _ in 0..3 {
        let want = borrowed.step(2, x.view()).unwrap().to_owned();
        shared.step(2, x.view()).unwrap();
        assert_eq!(shared.output(2), want);
    }
    // a state rejected at the second layer leaves the first unchanged too
    let before: Vec<_> = shared.states().map(|s| s.to_owned()).collect();
    let wrong = [rand(2, 5, 84, 0.5), rand(2, 3, 85, 0.5)];
    let bad: Vec<Vec<_>> = wrong.iter().map(|h| vec![h.view()]).collect();
    let e = shared.set_state(&bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        "state[1]: expected shape [2, 4], got shape [2, 3]"
    );
    let e = shared.set_state(&bad[..1]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "state: expected one state per layer (2), got 1"
    );
    let after: Vec<_> = shared.states().map(|s| s.to_owned()).collect();
    assert_eq!(after, before);
    // back to the start: the first step again
    shared.set_state(&initial).unwrap();
    let mut fresh = Stack::new(&refs, &initial).unwrap();
    let want = fresh.step(2, x.view()).unwrap().to_owned();
    assert_eq!(shared.step(2, x.view()).unwrap(), want);
}
