//! Fork safety: process-wide state that a forked child replaces when the fork caught
//! another thread holding its lock.
//!
//! `fork` copies memory, not threads. A lock that another thread held at that moment
//! (a content-cache shard being filled by a counting thread, the vocabulary loader, an
//! identity memo) stays locked in the child, by a thread that does not exist there: the
//! child's next use of it waits forever.
//!
//! There are two ways out. One takes every lock before the fork and releases them after,
//! in parent and child (`pthread_atfork`'s prepare handler, or Python's
//! `os.register_at_fork(before=...)`). That makes the fork wait for every thread that
//! holds one, in one global order; and since Python's `before` hooks run with the GIL
//! held (and, on a free-threaded build, before the stop-the-world pause that `os.fork`
//! waits for), any lock whose holder could need the GIL (a memo entry's references
//! dropped under it, say), or that a thread blocks on while attached, turns the fork
//! into a deadlock of the parent itself. tokensieve takes the other way: **the parent
//! never waits; the child resets what it cannot use.** Each lock-protected structure is
//! a [`Global`], reached through a pointer. In the child, before any other code runs
//! (a `pthread_atfork` child handler, as Hugging Face `tokenizers` registers one for its
//! thread pool), each lock is tried: free means no thread was inside, so the structure
//! is whole and kept (a forked worker starts with the parent's warm cache); held means
//! it may be half-updated, so a fresh one is installed and the old one is leaked (never
//! freed: its pages stay shared with the parent, and nothing runs its destructor, which
//! could decrement Python references from a handler that must not run Python code).
//! Lazily built data that needs no lock to read (the vocabularies, the character table)
//! is published through the same pointer, so there is no `Once` left mid-initialization
//! in the child either.
//!
//! The cost on the hot path is what a `OnceLock` costs: one acquire load (a plain load
//! on x86) and a null check per access, no atomic read-modify-write.
//!
//! Not covered: a fork made *from inside* a tokensieve call (by Python code it runs,
//! such as a property of a message object) leaves that call's own counting thread
//! behind; nothing sane does that.

use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

/// A process-wide value, made on first use and replaceable in a forked child.
///
/// Values are never freed, so the `&'static` references handed out stay valid after a
/// [`Global::replace`]: the old value is leaked.
pub struct Global<T: 'static> {
    current: AtomicPtr<T>,
    make: fn() -> T,
    _owns: PhantomData<T>,
}

impl<T: Send + Sync + 'static> Global<T> {
    pub const fn new(make: fn() -> T) -> Self {
        Global { current: AtomicPtr::new(ptr::null_mut()), make, _owns: PhantomData }
    }

    /// The value, made now if this is the first use. Threads racing to make it may each
    /// make one; the first published wins, the others are dropped.
    #[inline]
    pub fn get(&self) -> &'static T {
        match self.peek() {
            Some(value) => value,
            None => self.make_first(),
        }
    }

    /// The value, if made already.
    #[inline]
    pub fn peek(&self) -> Option<&'static T> {
        // Safety: a non-null pointer comes from `Box::into_raw` and is never freed; the
        // acquire load pairs with the release that published it.
        unsafe { self.current.load(Ordering::Acquire).as_ref() }
    }

    #[cold]
    fn make_first(&self) -> &'static T {
        let made = Box::into_raw(Box::new((self.make)()));
        match self.current.compare_exchange(ptr::null_mut(), made, Ordering::AcqRel, Ordering::Acquire) {
            // Safety: published just now, never freed.
            Ok(_) => unsafe { &*made },
            Err(first) => {
                // Safety: `made` was never shared; `first` is published and never freed.
                drop(unsafe { Box::from_raw(made) });
                unsafe { &*first }
            }
        }
    }

    /// Install `value` in place of the current value, which is leaked, not dropped.
    /// Meant for a forked child, where no other thread can be using either.
    pub fn replace(&self, value: T) {
        self.current.store(Box::into_raw(Box::new(value)), Ordering::Release);
    }
}

impl<T: Send + 'static> Global<Mutex<T>> {
    /// The value behind the lock (a poisoned lock only means another thread panicked
    /// holding it; every structure kept here stays valid across a panic).
    #[inline]
    pub fn lock(&self) -> MutexGuard<'static, T> {
        self.get().lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// In a forked child: if the fork caught another thread holding the lock, replace the
    /// value with a fresh one (the old one is leaked). Returns whether it did.
    pub fn reset_if_held(&self) -> bool {
        let held = self.peek().is_some_and(held);
        if held {
            self.replace((self.make)());
        }
        held
    }
}

/// Whether `lock` is held (by a thread that, in a forked child, no longer exists).
pub fn held<T>(lock: &Mutex<T>) -> bool {
    matches!(lock.try_lock(), Err(TryLockError::WouldBlock))
}

/// Make the core's state usable in a forked child: parallel counting off (the thread
/// pool was not copied), and the content cache replaced if the fork caught it locked
/// (vocabularies need nothing: loading one is lock-free, see `encoding.rs`). Runs in the child's only thread, before anything else.
pub fn reset_core_in_child() {
    crate::counting::disable_parallelism();
    crate::cache::after_fork_in_child();
}

/// Have `handler` run in every child this process forks, from inside `fork()`, before
/// any other code of the child (C extensions' and Python's included). `handler` must
/// not run Python code or take a lock another thread may have held.
#[cfg(unix)]
pub fn on_fork_in_child(handler: extern "C" fn()) {
    // Safety: registering a handler has no precondition; the handler upholds the rules.
    let status = unsafe { libc::pthread_atfork(None, None, Some(handler)) };
    debug_assert_eq!(status, 0, "pthread_atfork failed (out of memory)");
}

/// No `fork` on this platform: nothing to do.
#[cfg(not(unix))]
pub fn on_fork_in_child(_handler: extern "C" fn()) {}

/// Register [`reset_core_in_child`] for every fork of this process (once, however often
/// this is called).
pub fn install() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    extern "C" fn in_child() {
        reset_core_in_child();
    }
    if !INSTALLED.swap(true, Ordering::AcqRel) {
        on_fork_in_child(in_child);
    }
}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Fork while another thread holds a lock (`hold` takes it and keeps it until told),
    /// run `child` in the child and report how it ended: `Some(exit code)`, or None if it
    /// was still running after 20 s (hung; then it is killed).
    pub(crate) fn fork_while_held(hold: fn() -> Box<dyn std::any::Any>, child: fn() -> bool) -> Option<i32> {
        install();
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let guard = hold();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
            drop(guard);
        });
        held_rx.recv().unwrap();
        // Safety: the child only runs `child` (no I/O, no locks of the test harness) and
        // leaves with `_exit`, which runs no destructors or exit handlers.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = std::panic::catch_unwind(child).unwrap_or(false);
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert!(pid > 0, "fork failed");
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut status = 0;
        loop {
            // Safety: waiting on our own child.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done == pid {
                return Some(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 });
            }
            if Instant::now() > deadline {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    static TEST_STATE: Global<Mutex<Vec<u32>>> = Global::new(|| Mutex::new(vec![7]));

    #[test]
    fn a_lock_free_at_fork_keeps_its_value_and_a_held_one_gets_a_fresh_value() {
        TEST_STATE.lock().push(8);
        assert!(!TEST_STATE.reset_if_held());
        assert_eq!(*TEST_STATE.lock(), vec![7, 8]);
        let code = fork_while_held(
            || Box::new(TEST_STATE.lock()),
            || TEST_STATE.reset_if_held() && *TEST_STATE.lock() == vec![7],
        );
        assert_eq!(code, Some(0));
        assert_eq!(*TEST_STATE.lock(), vec![7, 8], "the parent's value is untouched");
    }

    #[test]
    fn racing_first_uses_all_get_the_one_published_value() {
        static SHARED: Global<Vec<u8>> = Global::new(|| vec![1, 2, 3]);
        let addresses: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| SHARED.get() as *const _ as usize)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(addresses.iter().all(|&a| a == addresses[0]));
    }
}
