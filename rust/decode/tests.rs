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
    /// One row's step through the stack and the projection, naively.
    fn step_row(&self, x: &[f64], state: &mut [Vec<f64>]) -> Vec<f64> {
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
    c: &Case,
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
    let v = c.kernel.ncols();
    let mut state: Vec<Vec<Vec<f64>>> = (0..b)
        .map(|r| c.h0.iter().map(|h| h.row(r).to_vec()).collect())
        .collect();
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
            let x = c.embedding.row(ids[r]).to_vec();
            let logits = c.step_row(&x, &mut state[r]);
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
    c: &Case,
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
    let v = c.kernel.ncols();
    let rows = b * k;
    let mut state: Vec<Vec<Vec<f64>>> = (0..rows)
        .map(|r| c.h0.iter().map(|h| h.row(r / k).to_vec()).collect())
        .collect();
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
            let x = c.embedding.row(words[r]).to_vec();
            let logits = c.step_row(&x, &mut state[r]);
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
