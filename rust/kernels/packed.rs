//! The recurrent step's product with a pre-packed right-hand side.
//!
//! Inside the time loop the same weight matrix (`W_h` forward, `W_hᵀ`
//! backward) multiplies a small, changing left-hand side (`M` = the rows
//! still running) once per step. A general GEMM repacks the weights on every
//! call; here they are packed once per layer call into column *panels* and
//! every step runs a register-blocked micro-kernel straight over them:
//!
//! ```text
//! panel p = columns [p·NR, (p+1)·NR) of B, stored k-major: K rows of NR (zero padded)
//! C[i0..i0+MR, panel] (+)= A[i0..i0+MR, :] @ panel        MR×NR accumulators in registers
//! ```
//!
//! `NR` is two SIMD vectors (32 `f32` / 16 `f64` with AVX-512, 16 / 8 with
//! AVX2); a panel of a 256-deep `B` is 32 KiB and stays in L1 while every row
//! block of `A` passes over it. The instruction set is chosen at run time;
//! without AVX2+FMA the product goes to the general [`super::gemm::gemm`].
//!
//! Every output element is one FMA chain over `k = 0..K` in order, so
//! results do not depend on how rows or panels are split among threads.

use super::gemm::gemm;
use super::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use std::any::TypeId;
use std::sync::OnceLock;

/// The instruction set the packed kernels run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F (x86-64-v4).
    Avx512,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// Anything else: the general GEMM, no packing.
    Generic,
}

impl Isa {
    /// The best instruction set of this CPU (detected once, then cached).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Generic
    }

    /// Whether this CPU runs `self`'s kernels.
    pub fn supported(self) -> bool {
        matches!(
            (self, Isa::detect()),
            (Isa::Generic, _) | (Isa::Avx2, Isa::Avx2) | (_, Isa::Avx512)
        )
    }

    /// Panel width for elements of `bytes` bytes: two SIMD vectors.
    fn panel_width(self, bytes: usize) -> usize {
        match self {
            Isa::Avx512 => 2 * 64 / bytes,
            Isa::Avx2 => 2 * 32 / bytes,
            Isa::Generic => 0,
        }
    }
}

/// A `[K, N]` matrix packed into column panels for [`PackedB::gemm`]. It
/// owns its copy of the matrix, so it can be kept across calls (a cell packs
/// its recurrent weights once, when it is built).
#[derive(Debug, Clone)]
pub struct PackedB<T> {
    k: usize,
    n: usize,
    isa: Isa,
    /// Panel width (elements); 0 when unpacked.
    nr: usize,
    /// `ceil(N / nr)` panels of `K × nr`.
    data: Vec<T>,
    /// The matrix itself, for the general path (empty when packed).
    plain: Array2<T>,
}

impl<T: Scalar> PackedB<T> {
    /// Packs `b` (`[K, N]`, any strides: pass `w.t()` for a transpose) for the
    /// best instruction set of this CPU.
    pub fn new(b: ArrayView2<'_, T>) -> Self {
        Self::with_isa(b, Isa::detect())
    }

    /// Packs `b` for `isa` (tests use this to run every kernel the CPU has);
    /// an instruction set this CPU lacks falls back to the general path.
    pub fn with_isa(b: ArrayView2<'_, T>, isa: Isa) -> Self {
        let (k, n) = b.dim();
        let isa = if has_kernels::<T>() && k > 0 && n > 0 && isa.supported() {
            isa
        } else {
            Isa::Generic
        };
        let nr = isa.panel_width(std::mem::size_of::<T>());
        let mut data = Vec::new();
        if nr > 0 {
            let panels = n.div_ceil(nr);
            data = vec![T::zero(); panels * k * nr];
            for (p, panel) in data.chunks_exact_mut(k * nr).enumerate() {
                let cols = nr.min(n - p * nr);
                for (kk, dst) in panel.chunks_exact_mut(nr).enumerate() {
                    let src = b.row(kk);
                    for (j, d) in dst[..cols].iter_mut().enumerate() {
                        *d = src[p * nr + j];
                    }
                }
            }
        }
        let plain = if nr > 0 {
            Array2::zeros((0, 0))
        } else {
            b.to_owned()
        };
        PackedB {
            k,
            n,
            isa,
            nr,
            data,
            plain,
        }
    }

    /// `K`, the rows of the packed matrix.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// `N`, the columns of the packed matrix.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// `c = c + a @ B` when `accumulate`, else `c = a @ B`, on this thread.
    /// `a` is `[M, K]` and `c` `[M, N]`; the packed kernels need both with
    /// unit column stride and a non-negative row stride (any other layout
    /// takes the general path).
    ///
    /// # Panics
    /// When the shapes do not fit together (a bug of the caller, never
    /// reachable from user input: the crate checks shapes first).
    pub fn gemm(&self, accumulate: bool, a: ArrayView2<T>, c: ArrayViewMut2<T>) {
        let (m, k) = a.dim();
        assert!(
            k == self.k && c.dim() == (m, self.n),
            "packed gemm: shape mismatch"
        );
        if m == 0 {
            return;
        }
        if self.nr == 0 || !unit_rows(a.strides(), k) || !unit_rows(c.strides(), self.n) {
            let plain = if self.nr == 0 {
                self.plain.view()
            } else {
                // Only reached for an unusual layout of `a` or `c`.
                return self.gemm_unpacked(accumulate, a, c);
            };
            gemm(accumulate, a, plain, c);
            return;
        }
        self.packed_rows(accumulate, a, c, 0);
    }

    /// The packed product into `c` (`[M, w]`), columns `first..first + w`
    /// of the matrix, in blocks of at most `ROW_BLOCK` rows one after the
    /// other (see there). The callers checked the shapes, the range (`first`
    /// on a panel boundary; `w` whole panels, or up to `N`) and the layouts
    /// (unit column strides, non-negative row strides), and that the matrix
    /// is packed.
    fn packed_rows(
        &self,
        accumulate: bool,
        a: ArrayView2<T>,
        mut c: ArrayViewMut2<T>,
        first: usize,
    ) {
        let ((m, k), w) = (a.dim(), c.ncols());
        if m == 0 || w == 0 {
            return;
        }
        let lda = a.strides()[0] as usize;
        let ldc = c.strides()[0] as usize;
        let mut i0 = 0;
        while i0 < m {
            let rows = ROW_BLOCK.min(m - i0);
            let args = Args {
                m: rows,
                k,
                n: w,
                // SAFETY: row `i0 < m` of the live views `a` and `c`.
                a: unsafe { a.as_ptr().add(i0 * lda) },
                lda,
                // SAFETY: panel `first / nr` starts inside `data` (`first <
                // N`, as `w > 0`).
                b: unsafe { self.data.as_ptr().add(first / self.nr * self.k * self.nr) },
                // SAFETY: as for `a`.
                c: unsafe { c.as_mut_ptr().add(i0 * ldc) },
                ldc,
                accumulate,
            };
            // SAFETY: the pointers come from live views of the checked
            // shapes (rows `i0..i0 + rows` of `a` and `c`, `lda`/`ldc` apart
            // with unit column stride; `c` is borrowed mutably, so it
            // aliases neither operand); from panel `first / nr` on, `data`
            // holds `ceil(w / nr)` panels of K×nr (the last one partial only
            // when the range ends at `N`, as the kernels expect); and
            // `self.isa` was detected on this CPU (the matrix is packed, so
            // it is not Generic).
            unsafe { dispatch(self.isa, &args) };
            i0 += rows;
        }
    }

    /// Panel width in columns: a product over a column range must start at
    /// a multiple of it ([`PackedB::gemm_cols`]); 0 when the matrix is not
    /// packed (no such products).
    pub fn panel_width(&self) -> usize {
        self.nr
    }

    /// [`PackedB::gemm`] for columns `first..first + w` of the packed matrix
    /// only (`c` is `[M, w]`): the same bits in those columns as the whole
    /// product, each element being the same FMA chain. The split steps
    /// ([`super::split`]) give each thread its own columns this way.
    ///
    /// # Panics
    /// When the matrix is not packed, `first` is not a multiple of
    /// [`PackedB::panel_width`], the range ends neither on a panel boundary
    /// nor at `N`, or the shapes and layouts do not fit (unit column
    /// strides, non-negative row strides): bugs of the caller.
    pub fn gemm_cols(&self, accumulate: bool, a: ArrayView2<T>, c: ArrayViewMut2<T>, first: usize) {
        let ((m, k), w) = (a.dim(), c.ncols());
        assert!(
            self.nr > 0
                && first.is_multiple_of(self.nr)
                && first + w <= self.n
                && (w.is_multiple_of(self.nr) || first + w == self.n)
                && k == self.k
                && c.nrows() == m
                && unit_rows(a.strides(), k)
                && unit_rows(c.strides(), w),
            "packed gemm_cols: shape, range or layout mismatch"
        );
        self.packed_rows(accumulate, a, c, first);
    }

    /// The general path for a packed matrix: unpacks the panels into a
    /// temporary (layouts of `a` or `c` the kernels do not take).
    fn gemm_unpacked(&self, accumulate: bool, a: ArrayView2<T>, c: ArrayViewMut2<T>) {
        let b = Array2::from_shape_fn((self.k, self.n), |(kk, j)| {
            let (p, jj) = (j / self.nr, j % self.nr);
            self.data[(p * self.k + kk) * self.nr + jj]
        });
        gemm(accumulate, a, b.view(), c)
    }
}

/// A weight matrix of the time loop: packed for the forward step's
/// `a @ W`, and its transpose packed on first use for backward's `d @ Wᵀ`.
/// Built once per set of weights and shared by every call on them.
#[derive(Debug)]
pub struct StepWeights<T> {
    forward: PackedB<T>,
    plain: Array2<T>,
    transposed: OnceLock<PackedB<T>>,
}

impl<T: Scalar> StepWeights<T> {
    /// Copies and packs `w` (`[K, N]`, any strides).
    pub fn new(w: ArrayView2<'_, T>) -> Self {
        StepWeights {
            forward: PackedB::new(w),
            plain: w.to_owned(),
            transposed: OnceLock::new(),
        }
    }

    /// `W` packed, for `a @ W`.
    pub fn packed(&self) -> &PackedB<T> {
        &self.forward
    }

    /// `Wᵀ` packed (on the first call), for `d @ Wᵀ`.
    pub fn transposed(&self) -> &PackedB<T> {
        self.transposed.get_or_init(|| PackedB::new(self.plain.t()))
    }

    /// `W` itself.
    pub fn plain(&self) -> ArrayView2<'_, T> {
        self.plain.view()
    }
}

/// Whether a view of these strides and `cols` columns has the layout the
/// kernels take: unit column stride (or a single column) and a non-negative
/// row stride.
fn unit_rows(strides: &[isize], cols: usize) -> bool {
    strides[0] >= 0 && (strides[1] == 1 || cols <= 1)
}

/// Whether the packed kernels exist for `T` (`f32` and `f64` on x86-64).
fn has_kernels<T: Scalar>() -> bool {
    cfg!(target_arch = "x86_64")
        && (TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>())
}

/// Runs the product on `isa`'s kernels for `T`.
///
/// # Safety
/// `args` describes live buffers of the stated shapes, `c` aliasing neither
/// `a` nor `b`; the CPU supports `isa`, which is not `Generic`; `T` is `f32`
/// or `f64` ([`has_kernels`]).
unsafe fn dispatch<T: Scalar>(isa: Isa, args: &Args<T>) {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! run_as {
            ($t:ty, $avx512:ident, $avx2:ident) => {
                if TypeId::of::<T>() == TypeId::of::<$t>() {
                    // SAFETY: `T` is `$t` (same TypeId), so `Args<T>` is `Args<$t>`.
                    let args = unsafe { &*(args as *const Args<T>).cast::<Args<$t>>() };
                    // SAFETY: the caller's contract.
                    return unsafe {
                        match isa {
                            Isa::Avx512 => x86::$avx512(args),
                            Isa::Avx2 => x86::$avx2(args),
                            Isa::Generic => {
                                unreachable!("generic products never reach the kernels")
                            }
                        }
                    };
                }
            };
        }
        run_as!(f32, avx512_f32, avx2_f32);
        run_as!(f64, avx512_f64, avx2_f64);
    }
    let _ = (isa, args);
    unreachable!("the packed kernels exist only for f32 and f64 on x86-64")
}

/// One product, as raw parts (see [`PackedB::gemm`]).
#[derive(Debug)]
struct Args<T> {
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    lda: usize,
    b: *const T,
    c: *mut T,
    ldc: usize,
    accumulate: bool,
}

/// A SIMD vector of one instruction set and element type (private: the
/// kernels below are its only users).
///
/// # Safety
/// Every method needs a CPU with the instruction set; those taking a pointer
/// also need `LANES` valid elements there (one for `splat`; none for
/// `prefetch`, a hint that never faults).
trait Simd {
    type T: Copy;
    type V: Copy;
    const LANES: usize;
    /// A vector of zeros.
    ///
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn zero() -> Self::V;
    /// `*p` in every lane.
    ///
    /// # Safety
    /// The CPU has the instruction set; `p` is valid for a read.
    unsafe fn splat(p: *const Self::T) -> Self::V;
    /// `LANES` elements from `p` (unaligned).
    ///
    /// # Safety
    /// The CPU has the instruction set; `p` is valid for `LANES` reads.
    unsafe fn load(p: *const Self::T) -> Self::V;
    /// `LANES` elements to `p` (unaligned).
    ///
    /// # Safety
    /// The CPU has the instruction set; `p` is valid for `LANES` writes.
    unsafe fn store(p: *mut Self::T, v: Self::V);
    /// `a * b + c`, fused.
    ///
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Hints that the cache line at `p` is needed soon.
    ///
    /// # Safety
    /// The CPU has the instruction set (any address: a prefetch never faults).
    unsafe fn prefetch(p: *const Self::T);
}

/// `MR` rows × `2·LANES` columns of `C` from one panel.
///
/// # Safety
/// `a` has `MR` rows `lda` apart of `k` elements, `b` a panel of `k × 2·LANES`,
/// and `c` `MR` rows `ldc` apart with `cols` valid elements each.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro<S: Simd, const MR: usize>(
    k: usize,
    a: *const S::T,
    lda: usize,
    b: *const S::T,
    c: *mut S::T,
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    // SAFETY: the caller's contract: every pointer offset below stays
    // inside the `a` rows, the panel and the `c` rows it describes; the
    // partial-tile paths go through a two-vector stack buffer.
    unsafe {
        let l = S::LANES;
        let mut acc = [[S::zero(); 2]; MR];
        if accumulate {
            if cols == 2 * l {
                for (i, row) in acc.iter_mut().enumerate() {
                    row[0] = S::load(c.add(i * ldc));
                    row[1] = S::load(c.add(i * ldc + l));
                }
            } else {
                let mut tmp = [[S::zero(); 2]; 1];
                let t = tmp.as_mut_ptr() as *mut S::T;
                for (i, row) in acc.iter_mut().enumerate() {
                    std::ptr::copy_nonoverlapping(c.add(i * ldc), t, cols);
                    row[0] = S::load(t);
                    row[1] = S::load(t.add(l));
                }
            }
        }
        for p in 0..k {
            let b0 = S::load(b.add(p * 2 * l));
            let b1 = S::load(b.add(p * 2 * l + l));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = S::splat(a.add(i * lda + p));
                row[0] = S::fmadd(ai, b0, row[0]);
                row[1] = S::fmadd(ai, b1, row[1]);
            }
        }
        if cols == 2 * l {
            for (i, row) in acc.iter().enumerate() {
                S::store(c.add(i * ldc), row[0]);
                S::store(c.add(i * ldc + l), row[1]);
            }
        } else {
            let mut tmp = [[S::zero(); 2]; 1];
            let t = tmp.as_mut_ptr() as *mut S::T;
            for (i, row) in acc.iter().enumerate() {
                S::store(t, row[0]);
                S::store(t.add(l), row[1]);
                std::ptr::copy_nonoverlapping(t, c.add(i * ldc), cols);
            }
        }
    }
}

/// Bytes of `A` (and of a panel) one pass over `K` may touch: together they
/// stay well inside a 32–48 KiB L1.
const L1_SHARE: usize = 16 * 1024;

/// The most rows of `A` one [`driver`] call takes; [`PackedB::gemm`] runs
/// taller products as blocks of this many rows, one after the other. The
/// driver cuts `K` into chunks of `L1_SHARE / (rows · size)`, so without the
/// blocks a tall `A` (a decoder's batch × beams) made the chunks tiny (25 at
/// 160 rows of `f32`) and every output tile went to memory and back once per
/// chunk. Each element is still one FMA chain over `k` in order: results are
/// the same bits as without the blocks.
const ROW_BLOCK: usize = 72;

/// The whole product on one instruction set. `K` is cut into chunks whose
/// slice of `A` (`M × kc`) and of one panel (`kc × NR`) fit L1 together;
/// per chunk, panels outer (each read once from L2), blocks of `MR` rows
/// inner (the last with the rows left). Chunks after the first add to `C`;
/// since a tile goes to `C` and comes back unchanged, every element is still
/// one FMA chain over `k` in order: the chunking never changes results.
/// Without it, `A` and a panel outgrew L1 together (f64, or f32 with 32
/// rows) and the scattered broadcasts of `A` came from L2.
///
/// The next tile's rows of `C` are prefetched while a tile runs: when
/// accumulating they are usually far from the core (the hoisted input
/// projection wrote them long before), and rows `ldc` apart defeat the
/// hardware prefetcher.
///
/// # Safety
/// As [`dispatch`], for `S`'s instruction set.
#[inline(always)]
unsafe fn driver<S: Simd, const MR: usize>(x: &Args<S::T>) {
    // SAFETY: the caller's contract; each tile handed to `micro` lies
    // inside `a`, a panel of `b` and `c` (rows `i..i + rows`, columns of
    // panel `p`, `k` from `k0`), and prefetches are hints that never fault.
    unsafe {
        let nr = 2 * S::LANES;
        let size = std::mem::size_of::<S::T>();
        let kc = (L1_SHARE / (x.m * size)).clamp(16, L1_SHARE / (nr * size));
        let panels = x.n.div_ceil(nr);
        let (lda, ldc) = (x.lda, x.ldc);
        let mut k0 = 0;
        while k0 < x.k {
            let k = kc.min(x.k - k0);
            let acc = x.accumulate || k0 > 0;
            for p in 0..panels {
                let cols = nr.min(x.n - p * nr);
                let b = x.b.add((p * x.k + k0) * nr);
                let mut i = 0;
                while i < x.m {
                    let rows = MR.min(x.m - i);
                    let a = x.a.add(i * lda + k0);
                    let c = x.c.add(i * ldc + p * nr);
                    if acc {
                        let (ni, np) = if i + rows < x.m {
                            (i + rows, p)
                        } else {
                            (0, p + 1)
                        };
                        if np < panels {
                            // a hint only: the last address may lie past the
                            // end of a partial panel, hence wrapping arithmetic
                            let next = x.c.wrapping_add(ni * ldc + np * nr);
                            for r in 0..MR.min(x.m - ni) {
                                S::prefetch(next.wrapping_add(r * ldc));
                                S::prefetch(next.wrapping_add(r * ldc + nr - 1));
                            }
                        }
                    }
                    macro_rules! rows {
                        ($($r:literal)*) => {
                            match rows {
                                $($r => micro::<S, $r>(k, a, lda, b, c, ldc, cols, acc),)*
                                _ => unreachable!(),
                            }
                        };
                    }
                    if rows == MR {
                        micro::<S, MR>(k, a, lda, b, c, ldc, cols, acc);
                    } else {
                        rows!(1 2 3 4 5 6 7 8 9 10 11);
                    }
                    i += rows;
                }
            }
            k0 += k;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{driver, Args, Simd};
    use std::arch::x86_64::*;

    macro_rules! simd {
        ($name:ident, $t:ty, $v:ty, $lanes:expr, $zero:ident, $splat:ident, $load:ident, $store:ident, $fma:ident) => {
            pub struct $name;
            impl Simd for $name {
                type T = $t;
                type V = $v;
                const LANES: usize = $lanes;
                #[inline(always)]
                unsafe fn zero() -> $v {
                    // SAFETY: the trait's contract (instruction set, valid pointers).
                    unsafe { $zero() }
                }
                #[inline(always)]
                unsafe fn splat(p: *const $t) -> $v {
                    // SAFETY: the trait's contract (instruction set, valid pointers).
                    unsafe { $splat(*p) }
                }
                #[inline(always)]
                unsafe fn load(p: *const $t) -> $v {
                    // SAFETY: the trait's contract (instruction set, valid pointers).
                    unsafe { $load(p) }
                }
                #[inline(always)]
                unsafe fn store(p: *mut $t, v: $v) {
                    // SAFETY: the trait's contract (instruction set, valid pointers).
                    unsafe { $store(p, v) }
                }
                #[inline(always)]
                unsafe fn fmadd(a: $v, b: $v, c: $v) -> $v {
                    // SAFETY: the trait's contract (instruction set, valid pointers).
                    unsafe { $fma(a, b, c) }
                }
                #[inline(always)]
                unsafe fn prefetch(p: *const $t) {
                    // SAFETY: the trait's contract (instruction set, valid pointers).
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
                }
            }
        };
    }
    simd!(
        Avx512F32,
        f32,
        __m512,
        16,
        _mm512_setzero_ps,
        _mm512_set1_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_fmadd_ps
    );
    simd!(
        Avx512F64,
        f64,
        __m512d,
        8,
        _mm512_setzero_pd,
        _mm512_set1_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_fmadd_pd
    );
    simd!(
        Avx2F32,
        f32,
        __m256,
        8,
        _mm256_setzero_ps,
        _mm256_set1_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_fmadd_ps
    );
    simd!(
        Avx2F64,
        f64,
        __m256d,
        4,
        _mm256_setzero_pd,
        _mm256_set1_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_fmadd_pd
    );

    /// One kernel entry point per instruction set and element type.
    macro_rules! entry {
        ($name:ident, $feature:literal, $t:ty, $simd:ident, $rows:literal) => {
            /// # Safety
            /// As [`super::dispatch`], on a CPU with this instruction set.
            #[target_feature(enable = $feature)]
            pub unsafe fn $name(x: &Args<$t>) {
                // SAFETY: the caller's contract.
                unsafe { driver::<$simd, $rows>(x) }
            }
        };
    }
    // Rows per block: 8 × 2 zmm = 16 of the 32 registers hold accumulators;
    // with AVX2's 16 registers, 6 × 2 = 12.
    entry!(avx512_f32, "avx512f", f32, Avx512F32, 8);
    entry!(avx512_f64, "avx512f", f64, Avx512F64, 8);
    entry!(avx2_f32, "avx2,fma", f32, Avx2F32, 6);
    entry!(avx2_f64, "avx2,fma", f64, Avx2F64, 6);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2};

    fn isas() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Generic]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    fn filled<T: Scalar>(r: usize, c: usize, seed: usize) -> Array2<T> {
        Array2::from_shape_fn((r, c), |(i, j)| {
            T::from_f64(((i * 31 + j * 17 + seed) % 23) as f64 / 8.0 - 1.3)
        })
    }

    fn check<T: Scalar>(tol: f64) {
        for isa in isas() {
            for &(m, k, n) in &[
                (1, 1, 1),
                (3, 5, 7),
                (8, 64, 32),
                (9, 17, 33),
                (32, 256, 1024),
                (13, 40, 100),
                (64, 3, 15),
                (7, 0, 5),
            ] {
                let a = filled::<T>(m, k, 1);
                let b = filled::<T>(k, n, 2);
                let bt = b.t().to_owned();
                let want = a.dot(&b);
                // B given transposed, C a strided window of a wider array
                let packed = PackedB::with_isa(bt.t(), isa);
                let mut wide = Array2::<T>::ones((m, n + 3));
                packed.gemm(true, a.view(), wide.slice_mut(s![.., 1..n + 1]));
                for i in 0..m {
                    assert_eq!(wide[(i, 0)], T::one());
                    assert_eq!(wide[(i, n + 1)], T::one());
                    for j in 0..n {
                        let d = wide[(i, j + 1)] - want[(i, j)] - T::one();
                        assert!(
                            d * d <= T::from_f64(tol * tol),
                            "{isa:?} {m}x{k}x{n} at {i},{j}"
                        );
                    }
                }
                let mut c = Array2::<T>::ones((m, n));
                packed.gemm(false, a.view(), c.view_mut());
                let err = (&c - &want).iter().fold(T::zero(), |e, &d| {
                    let d = if d < T::zero() { -d } else { d };
                    if d > e {
                        d
                    } else {
                        e
                    }
                });
                assert!(err <= T::from_f64(tol), "{isa:?} {m}x{k}x{n} overwrite");
            }
        }
    }

    #[test]
    fn packed_products_match_ndarray_f64() {
        check::<f64>(1e-12);
    }

    #[test]
    fn packed_products_match_ndarray_f32() {
        check::<f32>(1e-3);
    }

    fn column_ranges_are_bitwise_the_whole<T: Scalar>() {
        for isa in isas().into_iter().filter(|&i| i != Isa::Generic) {
            for &(m, k, n) in &[(1, 7, 96), (5, 33, 100), (16, 256, 256), (80, 40, 64)] {
                let a = filled::<T>(m, k, 3);
                let packed = PackedB::with_isa(filled::<T>(k, n, 4).view(), isa);
                let nr = packed.panel_width();
                for accumulate in [false, true] {
                    let mut whole = filled::<T>(m, n, 5);
                    packed.gemm(accumulate, a.view(), whole.view_mut());
                    // ranges of one and two panels, and the partial last one
                    let mut parts = filled::<T>(m, n, 5);
                    let mut first = 0;
                    for (i, w) in std::iter::repeat([nr, 2 * nr]).flatten().enumerate() {
                        let w = w.min(n - first);
                        let c = parts.slice_mut(s![.., first..first + w]);
                        packed.gemm_cols(accumulate, a.view(), c, first);
                        first += w;
                        if first == n || i > 64 {
                            break;
                        }
                    }
                    assert_eq!(parts, whole, "{isa:?} {m}x{k}x{n} {accumulate}");
                }
            }
        }
    }

    #[test]
    fn column_ranges_are_bitwise_the_whole_product() {
        column_ranges_are_bitwise_the_whole::<f32>();
        column_ranges_are_bitwise_the_whole::<f64>();
    }

    #[test]
    #[should_panic(expected = "gemm_cols")]
    fn column_ranges_start_on_a_panel() {
        let packed = PackedB::<f64>::new(filled::<f64>(4, 64, 1).view());
        let mut c = Array2::zeros((2, 3));
        packed.gemm_cols(false, filled::<f64>(2, 4, 2).view(), c.view_mut(), 1);
    }

    #[test]
    fn other_layouts_take_the_general_path() {
        // reversed rows (negative stride) and a column-strided output
        let a = filled::<f64>(9, 20, 7);
        let b = filled::<f64>(20, 40, 8);
        let want = a.slice(s![..;-1, ..]).dot(&b);
        let packed = PackedB::new(b.view());
        let mut c = Array2::<f64>::zeros((9, 40));
        packed.gemm(false, a.slice(s![..;-1, ..]), c.view_mut());
        assert!((&c - &want).iter().all(|d| d.abs() < 1e-12));
        let mut wide = Array2::<f64>::zeros((9, 80));
        packed.gemm(false, a.view(), wide.slice_mut(s![.., ..;2]));
        assert!((&wide.slice(s![.., ..;2]) - &a.dot(&b))
            .iter()
            .all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn k_chunks_do_not_change_results() {
        // one row runs K in chunks of 128, 64 rows in chunks of 64 (f32):
        // the shared rows must agree bit for bit, accumulating or not (the
        // general path, Generic, makes no such promise)
        for isa in isas().into_iter().filter(|&i| i != Isa::Generic) {
            let a = filled::<f32>(64, 300, 5);
            let b = filled::<f32>(300, 70, 6);
            let packed = PackedB::with_isa(b.view(), isa);
            for accumulate in [false, true] {
                let mut all = Array2::<f32>::from_elem((64, 70), 0.25);
                packed.gemm(accumulate, a.view(), all.view_mut());
                let mut one = Array2::<f32>::from_elem((1, 70), 0.25);
                packed.gemm(accumulate, a.slice(s![..1, ..]), one.view_mut());
                assert_eq!(one, all.slice(s![..1, ..]), "{isa:?}");
            }
        }
    }

    #[test]
    fn row_blocks_do_not_change_results() {
        // a row's result is the same whether it runs in a full block or the tail
        let a = filled::<f32>(19, 70, 3);
        let b = filled::<f32>(70, 45, 4);
        let packed = PackedB::new(b.view());
        let mut all = Array2::<f32>::zeros((19, 45));
        packed.gemm(false, a.view(), all.view_mut());
        for rows in [1, 5, 11] {
            let mut part = Array2::<f32>::zeros((rows, 45));
            packed.gemm(false, a.slice(s![..rows, ..]), part.view_mut());
            assert_eq!(part, all.slice(s![..rows, ..]));
        }
    }

    #[test]
    fn tall_products_run_in_row_blocks_with_the_same_bits() {
        // more rows than ROW_BLOCK (a decoder's batch × beams): every row as
        // when it runs alone, f32 and f64, accumulating or not
        fn tall<T: Scalar>() {
            let m = 2 * ROW_BLOCK + 5;
            let a = filled::<T>(m, 300, 8);
            let b = filled::<T>(300, 90, 9);
            for isa in isas().into_iter().filter(|&i| i != Isa::Generic) {
                let packed = PackedB::with_isa(b.view(), isa);
                for accumulate in [false, true] {
                    let mut all = Array2::<T>::from_elem((m, 90), T::from_f64(0.25));
                    packed.gemm(accumulate, a.view(), all.view_mut());
                    for i in [0, ROW_BLOCK - 1, ROW_BLOCK, m - 1] {
                        let mut one = Array2::<T>::from_elem((1, 90), T::from_f64(0.25));
                        packed.gemm(accumulate, a.slice(s![i..i + 1, ..]), one.view_mut());
                        assert_eq!(one.row(0), all.row(i), "{isa:?} row {i}");
                    }
                }
            }
        }
        tall::<f32>();
        tall::<f64>();
    }
}
