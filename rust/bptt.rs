//! Backpropagation through time: the reverse loop keeps only
//! `dh_{t-1} = dZ_t @ W_hᵀ` inside; the weight gradients and `dX` are large
//! GEMMs over all steps after it.
//!
//! ```text
//! for t = last..0:  dh[:a] += dY_t;  rows ending at t start from d_state
//!                   dZ[block t][:a] = dh[:a] ⊙ act'(h_t)        (db += rows)
//!                   dh[:a] = dZ[block t][:a] @ W_hᵀ
//! dW_x = Xᵀ @ dZ      dW_h = Sᵀ @ dZ      dX = dZ @ W_xᵀ
//! ```
//!
//! Gradients arriving at padded positions (`t >= len`) are ignored: those
//! outputs are constant zeros.

use crate::cell::basic_rnn;
use crate::error::{check_shape, Result};
use crate::gemm::{gemm, par_gemm};
use crate::layer::{check_cache_kernel, scatter, split_groups, worth_parallel, RnnCache, Slot};
use crate::pool;
use crate::scalar::Scalar;
use ndarray::{s, Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// Gradients of a [`crate::layer::basic_rnn_forward`] call.
#[derive(Debug, Clone)]
pub struct RnnGrads<T> {
    /// `d inputs`, in the forward call's layout; zero past each length.
    pub inputs: Array3<T>,
    /// `d initial_state` `[B, H]`.
    pub initial_state: Array2<T>,
    /// `d kernel` `[I+H, H]`.
    pub kernel: Array2<T>,
    /// `d bias` `[H]`.
    pub bias: Array1<T>,
}

/// Backpropagates `d_outputs` (`[T, B, H]` view, see
/// [`crate::layer::time_major_view`]) and `d_state` (`[B, H]`) through the
/// forward pass that filled `cache`. Either may be `None` (zeros).
pub fn basic_rnn_backward<T: Scalar>(
    cache: &RnnCache<T>,
    kernel: ArrayView2<T>,
    d_outputs: Option<ArrayView3<T>>,
    d_state: Option<ArrayView2<T>>,
) -> Result<RnnGrads<T>> {
    check_cache_kernel(cache, &kernel)?;
    let plan = &cache.plan;
    let (input, units) = (cache.x.ncols(), cache.s.ncols());
    if let Some(d) = &d_outputs {
        let mut want = [plan.time, plan.batch, units];
        let mut got = [d.len_of(Axis(0)), d.len_of(Axis(1)), d.len_of(Axis(2))];
        if !cache.time_major {
            want.swap(0, 1);
            got.swap(0, 1);
        }
        check_shape("d_outputs", &got, &want)?;
    }
    if let Some(d) = &d_state {
        check_shape("d_state", d.shape(), &[plan.batch, units])?;
    }
    let (w_x, w_h) = kernel.split_at(Axis(0), input);
    let parallel = worth_parallel(plan, input, units, units);
    let activation = cache.activation;

    let grads = pool::run(parallel, || {
        let mut dz = Array2::<T>::zeros((plan.rows, units));
        let mut d_h0 = match &d_state {
            Some(d) => d.to_owned(),
            None => Array2::zeros((plan.batch, units)),
        };
        let s_all = cache.s.as_slice().expect("standard layout");
        let groups: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(plan, &mut dz))
            .collect();
        let mut per_group: Vec<(Array1<T>, Array2<T>)> = plan
            .groups
            .iter()
            .map(|g| {
                (
                    Array1::zeros(units),
                    Array2::zeros((g.first_active(), units)),
                )
            })
            .collect();
        let work: Vec<_> = groups.into_iter().zip(per_group.iter_mut()).collect();
        pool::for_each(work, |((g, dz_g), (d_bias, dh))| {
            let base = g.start[0];
            let at = |k: usize| (g.start[k] - base) * units;
            let steps = g.steps();
            for t in (0..steps).rev() {
                let a = g.active[t];
                let still = if t + 1 < steps { g.active[t + 1] } else { 0 };
                // rows whose last step is t: their gradient starts from d_state
                for rank in still..a {
                    let mut row = dh.row_mut(rank);
                    match &d_state {
                        Some(d) => row.assign(&d.row(g.rows[rank])),
                        None => row.fill(T::zero()),
                    }
                }
                if let Some(d) = &d_outputs {
                    for (rank, &b) in g.rows[..a].iter().enumerate() {
                        dh.row_mut(rank)
                            .zip_mut_with(&d.slice(s![t, b, ..]), |acc, &v| *acc += v);
                    }
                }
                let h = &s_all[(g.start[t + 1]) * units..][..a * units];
                let dz_t = &mut dz_g[at(t)..at(t) + a * units];
                let dh_a = dh.slice(s![..a, ..]);
                basic_rnn::step_backward(
                    activation,
                    dz_t,
                    dh_a.as_slice().expect("standard layout"),
                    h,
                    d_bias.as_slice_mut().expect("standard layout"),
                );
                let dz_t = ArrayView2::from_shape((a, units), &*dz_t).expect("block");
                gemm(false, dz_t, w_h.t(), dh.slice_mut(s![..a, ..]));
            }
        });
        let mut d_bias = Array1::<T>::zeros(units);
        for (g, (db, dh)) in plan.groups.iter().zip(&per_group) {
            d_bias += db;
            for (rank, &b) in g.rows[..g.first_active()].iter().enumerate() {
                d_h0.row_mut(b).assign(&dh.row(rank));
            }
        }

        let mut d_kernel = Array2::<T>::zeros((input + units, units));
        {
            let (dk_x, dk_h) = d_kernel.view_mut().split_at(Axis(0), input);
            par_gemm(false, cache.x.t(), dz.view(), dk_x);
            par_gemm(false, cache.s.t(), dz.view(), dk_h);
        }
        let mut dx = Array2::<T>::zeros((plan.rows, input));
        par_gemm(false, dz.view(), w_x.t(), dx.view_mut());
        let d_inputs = scatter(plan, &dx, cache.time_major, Slot::Token);
        RnnGrads {
            inputs: d_inputs,
            initial_state: d_h0,
            kernel: d_kernel,
            bias: d_bias,
        }
    });
    Ok(grads)
}
