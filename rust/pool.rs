//! The crate's own rayon pool, sized by `set_num_threads` or the
//! `RNNRS_NUM_THREADS` environment variable (default: the machine's cores),
//! at most [`MAX_THREADS`] threads; and the watch through which long calls
//! poll their caller's [`Interrupt`] hook ([`Watch`], [`Ticker`],
//! [`run_watched`]).
//!
//! Work is cut into pieces whose boundaries depend only on array shapes, so
//! the pool size changes speed, never results.

use crate::error::{Error, Interrupt, Result, INTERRUPT_PERIOD};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;

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

/// Whether a time step whose recurrent product is `work` multiply-adds is
/// worth splitting by units over the pool ([`crate::kernels::split`]): more
/// than [`SPLIT_STEP_WORK`], or than the parallel threshold when tests
/// lowered it below that ([`set_parallel_work`]).
pub fn worth_splitting(work: usize) -> bool {
    work > SPLIT_STEP_WORK.min(PARALLEL_WORK_NOW.load(Ordering::Relaxed))
}

/// Whether a single step called on its own (`cell(x, state)`, a decoder's
/// step), whose weights take `bytes`, is worth splitting by units over the
/// pool ([`crate::step::Stepper`]): when they take at least one core's L2
/// cache (as [`gemm_common`] reads it), so that they cannot stay in it from
/// one call to the next while each slice's share can; or when tests lowered
/// the parallel threshold below that ([`set_parallel_work`]). Below it, the
/// wake-up of a pool thread per call costs about what the split saves
/// (`benches/README.md`).
pub fn worth_splitting_alone(bytes: usize) -> bool {
    let l2 = gemm_common::cache::CACHE_INFO[1].cache_bytes;
    bytes >= l2.min(PARALLEL_WORK_NOW.load(Ordering::Relaxed))
}

/// Multiply-adds of a step's recurrent product up to which the step runs
/// whole: the threads meet once per step (a microsecond or two), and below
/// this a split step was no faster in the benchmarks (an LSTM forward pass of
/// 2 rows and 128 units, 131 072 multiply-adds a step, took about 1.07x the
/// time split on two threads; one of 1 row and 192 units, 147 456, 0.83x).
pub const SPLIT_STEP_WORK: usize = 1 << 17;

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

/// The most threads the pool may have (`set_num_threads`,
/// `RNNRS_NUM_THREADS`). More than a few per core only costs memory and
/// start-up time, and asking the OS for thousands of threads can exhaust it.
pub const MAX_THREADS: usize = 256;

/// The pool in force: `None` until first used.
static POOL: RwLock<Option<Workers>> = RwLock::new(None);

/// Where parallel work runs.
#[derive(Clone)]
enum Workers {
    /// A pool of at least two threads.
    Pool(Arc<rayon::ThreadPool>),
    /// One thread: the caller's (a pool of one would only add a hand-off;
    /// also the fallback when the OS refuses to start threads).
    Inline,
}

impl Workers {
    fn threads(&self) -> usize {
        match self {
            Workers::Pool(p) => p.current_num_threads(),
            Workers::Inline => 1,
        }
    }
}

/// `RNNRS_NUM_THREADS` parsed: `None` when unset, `Some(Ok(n))` for an
/// integer in `[1, MAX_THREADS]` (surrounding blanks allowed), `Some(Err(value))`
/// for anything else (the value is then ignored; the Python package warns).
pub fn env_threads() -> Option<std::result::Result<usize, String>> {
    let raw = std::env::var_os("RNNRS_NUM_THREADS")?;
    let value = raw.to_string_lossy().into_owned();
    Some(parse_threads(&value).ok_or(value))
}

/// `value` as a thread count in `[1, MAX_THREADS]`, if it is one.
pub fn parse_threads(value: &str) -> Option<usize> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_THREADS).contains(n))
}

/// The pool's size when `set_num_threads` was never called: a valid
/// `RNNRS_NUM_THREADS`, else the machine's cores (at most [`MAX_THREADS`]).
pub fn default_threads() -> usize {
    match env_threads() {
        Some(Ok(n)) => n,
        _ => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS),
    }
}

fn build(n: usize) -> Result<Workers> {
    if n <= 1 {
        return Ok(Workers::Inline);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("rnnrs-{i}"))
        .build()
        .map(|p| Workers::Pool(Arc::new(p)))
        .map_err(|e| Error::ThreadPool(format!("could not start {n} threads ({e})")))
}

fn workers() -> Workers {
    if let Some(w) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return w.clone();
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = slot.as_ref() {
        return w.clone();
    }
    // Building a pool fails only when the OS refuses threads (rayon then
    // stops those it started): run on the caller's thread instead.
    let w = build(default_threads()).unwrap_or(Workers::Inline);
    *slot = Some(w.clone());
    w
}

/// Resizes the pool to `n` threads, `1 <= n <=` [`MAX_THREADS`]; values
/// outside fail with [`Error::Invalid`] naming `num_threads` before any
/// thread is started. When the OS refuses the threads, fails with
/// [`Error::ThreadPool`] and the old pool stays. Calls already running
/// finish on the old pool.
pub fn set_num_threads(n: usize) -> Result<()> {
    replace(n, build)
}

fn replace(n: usize, build: impl FnOnce(usize) -> Result<Workers>) -> Result<()> {
    replace_in(&POOL, n, build)
}

fn replace_in(
    slot: &RwLock<Option<Workers>>,
    n: usize,
    build: impl FnOnce(usize) -> Result<Workers>,
) -> Result<()> {
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(Error::invalid(
            "num_threads",
            format!("an integer in [1, {MAX_THREADS}]"),
            n.to_string(),
        ));
    }
    let w = build(n)?;
    *slot.write().unwrap_or_else(|e| e.into_inner()) = Some(w);
    Ok(())
}

/// The pool's size.
pub fn num_threads() -> usize {
    workers().threads()
}

/// Runs `f` on the pool when `parallel`, else inline on the calling thread
/// (handing a tiny problem to the pool costs more than it saves). Code run
/// inline sees [`in_pool`] false and loops sequentially, so rayon's global
/// pool is never started beside ours.
pub fn run<R: Send>(parallel: bool, f: impl FnOnce() -> R + Send) -> R {
    if parallel {
        if let Workers::Pool(p) = workers() {
            return p.install(f);
        }
    }
    f()
}

/// Like [`run`], for calls that may be long: while `f` runs on the pool,
/// the calling thread (which [`run`] would block) wakes every
/// [`INTERRUPT_PERIOD`] and polls `watch`'s hook, so that the hook always
/// runs on the caller's thread (Python handles signals on its main thread
/// only); the loops in `f` see the stop through their [`Ticker`]s.
pub fn run_watched<R: Send>(parallel: bool, watch: &Watch<'_>, f: impl FnOnce() -> R + Send) -> R {
    if parallel {
        if let Workers::Pool(p) = workers() {
            return watched_on(&p, watch, f);
        }
    }
    f()
}

fn watched_on<R: Send>(
    p: &rayon::ThreadPool,
    watch: &Watch<'_>,
    f: impl FnOnce() -> R + Send,
) -> R {
    let result: Mutex<Option<R>> = Mutex::new(None);
    let done = (Mutex::new(false), Condvar::new());
    p.in_place_scope(|scope| {
        scope.spawn(|_| {
            // Flags `done` even when `f` panics (the scope re-raises it).
            let _flag = Flag(&done);
            let r = f();
            *result.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        });
        let (lock, cv) = &done;
        let mut finished = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*finished {
            let (guard, timeout) = cv
                .wait_timeout(finished, INTERRUPT_PERIOD)
                .unwrap_or_else(|e| e.into_inner());
            finished = guard;
            if timeout.timed_out() && !*finished {
                drop(finished);
                // On error the hook's error is kept and the stop flag set.
                let _ = watch.poll_caller();
                finished = lock.lock().unwrap_or_else(|e| e.into_inner());
            }
        }
    });
    let r = result.into_inner().unwrap_or_else(|e| e.into_inner());
    r.expect("the pool ran the job (a panic in it was re-raised above)")
}

/// Sets the flag and wakes its waiter when dropped.
struct Flag<'a>(&'a (Mutex<bool>, Condvar));

impl Drop for Flag<'_> {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0 .1.notify_all();
    }
}

/// One call's view of its caller's [`Interrupt`] hook: the hook runs on the
/// calling thread only (from the [`Ticker`]s of loops running there, or from
/// [`run_watched`] while the pool works); the first error it returns is kept
/// and raises a flag every loop sees at its next tick.
pub struct Watch<'a> {
    hook: &'a dyn Interrupt,
    caller: usize,
    stop: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl std::fmt::Debug for Watch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("stopped", &self.stop.load(Ordering::Relaxed))
            .finish()
    }
}

impl<'a> Watch<'a> {
    /// Watches `hook` for a call made on this thread.
    pub fn new(hook: &'a dyn Interrupt) -> Self {
        Watch {
            hook,
            caller: thread_mark(),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    /// Runs the hook (on the calling thread; elsewhere only reads the flag).
    fn poll_caller(&self) -> Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(self.error());
        }
        if thread_mark() != self.caller {
            return Ok(());
        }
        self.hook.check().inspect_err(|e| {
            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            self.stop.store(true, Ordering::Relaxed);
        })
    }

    /// The error that stopped the call.
    fn error(&self) -> Error {
        let kept = self.error.lock().unwrap_or_else(|p| p.into_inner());
        kept.clone().unwrap_or(Error::Interrupted)
    }

    /// `Err` once the hook has stopped the call.
    pub fn result(&self) -> Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            Err(self.error())
        } else {
            Ok(())
        }
    }

    /// A ticker for one loop.
    pub fn ticker(&self) -> Ticker<'_> {
        Ticker {
            watch: self,
            work: 0,
            last: None,
        }
    }
}

thread_local! {
    static MARK: u8 = const { 0 };
}

/// A number that tells this thread from every other running thread (the
/// address of a thread-local), cheaper than `std::thread::current().id()`.
fn thread_mark() -> usize {
    MARK.with(|m| m as *const u8 as usize)
}

/// Multiply-adds between two looks at the clock in a [`Ticker`]: a fraction
/// of a millisecond of work, so a tick costs an addition and a comparison.
const TICK_WORK: usize = 1 << 20;

/// Rate-limits a loop's polls of its [`Watch`]: [`Ticker::tick`] counts the
/// work done, reads the clock once about a million multiply-adds have passed,
/// and polls the hook (or, off the calling thread, the stop flag) once
/// [`INTERRUPT_PERIOD`] has.
#[derive(Debug)]
pub struct Ticker<'a> {
    watch: &'a Watch<'a>,
    work: usize,
    /// When the hook was last polled (or the clock first read): a short
    /// call never reads the clock.
    last: Option<Instant>,
}

impl Ticker<'_> {
    /// Counts `work` multiply-adds; `Err` when the call must stop.
    #[inline]
    pub fn tick(&mut self, work: usize) -> Result<()> {
        self.work = self.work.saturating_add(work);
        if self.work < TICK_WORK {
            return Ok(());
        }
        self.poll()
    }

    #[cold]
    #[inline(never)]
    fn poll(&mut self) -> Result<()> {
        self.work = 0;
        self.watch.result()?;
        let now = Instant::now();
        let last = *self.last.get_or_insert(now);
        if now.duration_since(last) < INTERRUPT_PERIOD {
            return Ok(());
        }
        self.last = Some(now);
        self.watch.poll_caller()
    }
}

/// Hands `job` to the current pool (on a worker) or to the crate's pool
/// (off the pools), to run when one of its threads is free; false (and
/// `job` dropped) when there is no pool, the caller's thread doing all the
/// work.
pub fn spawn(job: impl FnOnce() + Send + 'static) -> bool {
    if in_pool() {
        rayon::spawn(job);
        return true;
    }
    match workers() {
        Workers::Pool(p) => {
            p.spawn(job);
            true
        }
        Workers::Inline => false,
    }
}

/// True on a worker of a rayon pool: parallel loops may fork here.
pub fn in_pool() -> bool {
    rayon::current_thread_index().is_some()
}

/// Threads of the pool the calling thread works in (1 off the pool).
pub fn threads_here() -> usize {
    if in_pool() {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// Threads a call made here can use: the current pool's on one of its
/// workers, the crate's pool's off the pools.
pub fn threads_available() -> usize {
    if in_pool() {
        rayon::current_num_threads()
    } else {
        num_threads()
    }
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
    use crate::error::Uninterrupted;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn thread_counts_outside_the_range_start_nothing() {
        for n in [0, MAX_THREADS + 1, 1 << 40, usize::MAX] {
            let built = AtomicUsize::new(0);
            let slot = RwLock::new(None);
            let e = replace_in(&slot, n, |_| {
                built.fetch_add(1, Ordering::Relaxed);
                Ok(Workers::Inline)
            })
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("num_threads: expected an integer in [1, 256]"),
                "{e}"
            );
            assert_eq!(built.load(Ordering::Relaxed), 0, "nothing built for {n}");
            assert!(slot.read().unwrap().is_none());
        }
        assert!(set_num_threads(MAX_THREADS + 1).is_err());
    }

    #[test]
    fn a_pool_that_cannot_be_built_leaves_the_old_one() {
        let slot = RwLock::new(Some(Workers::Inline));
        let e = replace_in(&slot, 4, |n| {
            Err(Error::ThreadPool(format!(
                "could not start {n} threads (refused)"
            )))
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "num_threads: could not start 4 threads (refused)"
        );
        assert!(matches!(*slot.read().unwrap(), Some(Workers::Inline)));
        // one thread never needs the OS: the caller's thread runs the work
        assert!(matches!(build(1), Ok(Workers::Inline)));
    }

    #[test]
    fn the_environment_variable_is_parsed_like_set_num_threads() {
        assert_eq!(parse_threads("4"), Some(4));
        assert_eq!(parse_threads(" 8\n"), Some(8));
        assert_eq!(parse_threads("256"), Some(MAX_THREADS));
        for bad in ["", "abc", "0", "-1", "257", "1099511627776", "2.5"] {
            assert_eq!(parse_threads(bad), None, "{bad:?}");
        }
        assert!((1..=MAX_THREADS).contains(&default_threads()));
    }

    /// A hook that stops the call, counting its calls.
    fn stop_counting(calls: &AtomicUsize) -> impl Fn() -> Result<()> + Sync + '_ {
        || {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(Error::Interrupted)
        }
    }

    #[test]
    fn the_hook_runs_on_the_calling_thread_at_most_every_period() {
        let calls = AtomicUsize::new(0);
        let hook = stop_counting(&calls);
        let watch = Watch::new(&hook);
        let mut ticker = watch.ticker();
        // small steps: no clock read, no hook
        for _ in 0..1000 {
            ticker.tick(10).unwrap();
        }
        assert!(ticker.last.is_none());
        // a period has not passed yet: still no hook
        ticker.tick(TICK_WORK).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        std::thread::sleep(INTERRUPT_PERIOD + Duration::from_millis(10));
        // off the calling thread the hook never runs
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut other = watch.ticker();
                other.last = Some(Instant::now() - INTERRUPT_PERIOD * 2);
                other.tick(TICK_WORK).unwrap();
            });
        });
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        assert_eq!(ticker.tick(TICK_WORK), Err(Error::Interrupted));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        // every loop, on any thread, now sees the stop at its next look
        assert_eq!(watch.result(), Err(Error::Interrupted));
        std::thread::scope(|s| {
            s.spawn(|| assert!(watch.ticker().tick(TICK_WORK).is_err()));
        });
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn run_watched_polls_from_the_caller_while_the_pool_works() {
        let calls = AtomicUsize::new(0);
        let hook = stop_counting(&calls);
        let watch = Watch::new(&hook);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let started = Instant::now();
        // the work, on the pool, stops when it sees the flag the caller's
        // poll raised
        let stopped = watched_on(&pool, &watch, || {
            while watch.result().is_ok() && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            watch.result().is_err()
        });
        assert!(stopped);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert!(started.elapsed() < INTERRUPT_PERIOD * 5);
        // a panic in the work reaches the caller (no deadlock)
        let quiet = Watch::new(&Uninterrupted);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            watched_on(&pool, &quiet, || panic!("in the pool"))
        }));
        assert!(r.is_err());
    }
}
