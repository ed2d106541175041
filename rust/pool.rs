//! The crate's own rayon pool, sized by `set_num_threads` or the
//! `RNNRS_NUM_THREADS` environment variable (default: the machine's cores).
//!
//! Work is cut into pieces whose boundaries depend only on array shapes, so
//! the pool size changes speed, never results.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Fewest rows a group (or chunk) gets when a batch is split.
pub const MIN_GROUP_ROWS: usize = 16;
/// Most groups a batch is split into.
pub const MAX_GROUPS: usize = 8;

/// How many groups (or, for single steps, chunks of rows) a batch of
/// `batch` rows is cut into: a power of two, at most [`MAX_GROUPS`], at least
/// [`MIN_GROUP_ROWS`] rows each when there is more than one. It depends on
/// the batch size only, never on the thread count, and shares out evenly
/// over 1, 2, 4 or 8 threads.
pub fn row_chunks(batch: usize) -> usize {
    let most = (batch / MIN_GROUP_ROWS).clamp(1, MAX_GROUPS);
    1 << most.ilog2()
}

/// Whether `work` multiply-adds are worth handing to the thread pool.
pub fn worth_parallel(work: usize) -> bool {
    work >= PARALLEL_WORK_NOW.load(Ordering::Relaxed)
}

/// Sets the work from which a call uses the thread pool (`None`: the
/// default). For tests: results never depend on it, only speed does, so the
/// thread-count determinism tests set it to 0 to run small problems on every
/// parallel path.
#[doc(hidden)]
pub fn set_parallel_work(work: Option<usize>) {
    PARALLEL_WORK_NOW.store(work.unwrap_or(PARALLEL_WORK), Ordering::Relaxed);
}

/// Work (multiply-adds) below which a call stays on the calling thread.
/// Handing work to the pool costs a wake-up per parallel region (a forward
/// pass has three, a training step eight), tens of microseconds each; below
/// this much work one thread beat two in the benchmarks (`benches/README.md`).
const PARALLEL_WORK: usize = 1 << 25;

/// The threshold in force; tests lower it to take the parallel paths on
/// small problems (see [`set_parallel_work`]).
static PARALLEL_WORK_NOW: AtomicUsize = AtomicUsize::new(PARALLEL_WORK);

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

fn default_threads() -> usize {
    std::env::var("RNNRS_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn build(n: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("rnnrs-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::ThreadPool(e.to_string()))
}

fn pool() -> Arc<rayon::ThreadPool> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return Arc::clone(p);
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = slot.as_ref() {
        return Arc::clone(p);
    }
    // Building a pool only fails when the OS refuses threads; fall back to one.
    let p = build(default_threads())
        .or_else(|_| build(1))
        .expect("cannot start any thread");
    *slot = Some(Arc::clone(&p));
    p
}

/// Resizes the pool. Calls already running finish on the old pool.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("num_threads", "an integer >= 1", "0"));
    }
    let p = build(n)?;
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    Ok(())
}

/// The pool's size.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Runs `f` on the pool when `parallel`, else inline on the calling thread
/// (handing a tiny problem to the pool costs more than it saves). Code run
/// inline sees [`in_pool`] false and loops sequentially, so rayon's global
/// pool is never started beside ours.
pub fn run<R: Send>(parallel: bool, f: impl FnOnce() -> R + Send) -> R {
    if parallel {
        let p = pool();
        if p.current_num_threads() > 1 {
            return p.install(f);
        }
    }
    f()
}

/// True on a worker of a rayon pool: parallel loops may fork here.
pub fn in_pool() -> bool {
    rayon::current_thread_index().is_some()
}

/// `for_each` over `items`, on the pool's workers when called from one.
pub fn for_each<I, F>(items: I, f: F)
where
    I: rayon::iter::IntoParallelIterator
        + IntoIterator<Item = <I as rayon::iter::IntoParallelIterator>::Item>,
    F: Fn(<I as rayon::iter::IntoParallelIterator>::Item) + Sync + Send,
{
    if in_pool() {
        rayon::iter::ParallelIterator::for_each(items.into_par_iter(), f)
    } else {
        items.into_iter().for_each(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_rejected() {
        assert!(set_num_threads(0).is_err());
    }
}
