//! Poison-tolerant locking. A lock is poisoned when a holder panicked; every critical section
//! in scalelab writes whole values (a map insert, a counter, a swapped struct), so the data
//! behind a poisoned lock is still consistent and is used as it is. The alternative, treating
//! poison as "absent", turned a cache shard into a permanent miss after one panic.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, recovering it if a holder panicked.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Read-locks `rwlock`, recovering it if a writer panicked.
pub fn read<T: ?Sized>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Write-locks `rwlock`, recovering it if a holder panicked.
pub fn write<T: ?Sized>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn poison<T: Send + Sync + 'static>(hold: impl FnOnce() + Send + 'static, _witness: &Arc<T>) {
        let _ = std::thread::spawn(hold).join();
    }

    #[test]
    fn a_poisoned_mutex_is_still_usable() {
        let mutex = Arc::new(Mutex::new(1));
        let held = mutex.clone();
        poison(
            move || {
                let mut guard = lock(&held);
                *guard = 2;
                panic!("holder panics");
            },
            &mutex,
        );
        assert!(mutex.is_poisoned());
        assert_eq!(*lock(&mutex), 2);
    }

    #[test]
    fn a_poisoned_rwlock_reads_and_writes() {
        let rwlock = Arc::new(RwLock::new(vec![1]));
        let held = rwlock.clone();
        poison(
            move || {
                write(&held).push(2);
                let _guard = write(&held);
                panic!("writer panics");
            },
            &rwlock,
        );
        assert!(rwlock.is_poisoned());
        assert_eq!(*read(&rwlock), vec![1, 2]);
        write(&rwlock).push(3);
        assert_eq!(read(&rwlock).len(), 3);
    }
}
