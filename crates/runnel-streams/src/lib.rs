//! Runnel's stream-processing library: a Kafka-Streams-like DSL and engine over a narrow log backend trait.
//!
//! Build a topology with [`StreamsBuilder`] ([`KStream`], [`KTable`],
//! grouped and windowed streams), then run it with [`Streams`] on a
//! [`Backend`]: Runnel's broker in-process (crate `runnel-embed`) or any
//! Kafka-compatible cluster ([`kafka`]). Semantics follow Kafka Streams:
//! sub-topologies and tasks per partition, repartition topics after key
//! changes, state stores with compacted changelog topics, stream time,
//! windows with grace periods, at-least-once or exactly-once commits.

mod app;
pub mod backend;
mod cache;
mod cogroup;
mod dsl;
mod fk_join;
mod global;
mod join;
#[cfg(feature = "kafka")]
pub mod kafka;
mod ops;
pub mod processor;
pub mod query;
pub mod record;
pub mod serdes;
mod session;
mod sliding;
pub mod state;
mod table_group;
pub mod talk;
mod topology;
pub mod windows;
mod wire;

pub use app::{
    OffsetReset, Streams, StreamsConfig, StreamsError, StreamsMetrics, TaskId, Topology,
    DEFAULT_CACHE_MAX_BYTES,
};
pub use backend::{
    Backend, BackendError, ConsumedRecord, Guarantee, Headers, MemberInfo, PollEvent,
    ProducedRecord, TopicPartition,
};
pub use cogroup::CogroupedKStream;
pub use dsl::{
    Data, KGroupedStream, KStream, KTable, Predicate, StreamsBuilder, TimeWindowedKStream,
};
pub use global::GlobalKTable;
pub use join::JoinWindows;
#[cfg(feature = "kafka")]
pub use kafka::{KafkaAdmin, KafkaBackend, KafkaBackendConfig};
pub use processor::{Processor, ProcessorContext, PunctuationType, StoreHandle, StoreName};
pub use query::{
    KeyMetadata, Membership, Queries, QueryError, ReadOnlyKv, ReadOnlySession, ReadOnlyWindow,
};
pub use record::{Change, Rec, RecordMeta, Window, Windowed};
pub use session::{SessionWindowedKStream, SessionWindows};
pub use sliding::{SlidingWindowedKStream, SlidingWindows};
pub use table_group::KGroupedTable;
pub use topology::{Cx, InMemoryStores, Node, StoreSupplier, TaskMetrics, TopologyError};
pub use windows::TimeWindows;
