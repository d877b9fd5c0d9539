//! Hooks for benchmarks (`examples/store_bench.rs`): drive a [`StateStore`]
//! through the engine's own commit and restore paths, which are otherwise
//! crate-private. Not part of the public API; may change at any time.

use super::{StateStore, StoreError};

/// What the engine does to a store after a successful commit: applies the
/// uncommitted writes to storage together with the changelog offset.
pub fn commit(store: &mut StateStore, checkpoint: Option<i64>) -> Result<(), StoreError> {
    store.committed(checkpoint)
}

/// What the engine does with one batch of restored changelog records.
pub fn restore(
    store: &mut StateStore,
    writes: &[(Vec<u8>, Option<Vec<u8>>)],
    checkpoint: Option<i64>,
) -> Result<(), StoreError> {
    store.restore(writes, checkpoint)
}

/// The changelog offset the store's storage reflects.
pub fn checkpoint(store: &StateStore) -> Option<i64> {
    store.base_checkpoint()
}
