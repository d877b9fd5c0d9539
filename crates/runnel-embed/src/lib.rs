//! Runs runnel-streams topologies inside the broker's process: the in-process Backend over runnel-broker's local interface.
//!
//! [`LocalBackend`] implements [`runnel_streams::Backend`] with direct calls
//! into a [`runnel_broker::Broker`] ([`runnel_broker::local::Local`]): no
//! sockets, no protocol encoding. Records are appended as v2 batches through
//! the same checks as the Produce API, read back read_committed, offsets go
//! to the broker's `__consumer_offsets` under the application id, and
//! exactly-once uses the broker's transaction coordinator, so external
//! Kafka clients see exactly what a Java Kafka Streams application would
//! have written.
//!
//! One `LocalBackend` owns every partition of its subscription: an
//! application runs as one instance per process here. To spread one
//! application over several processes, use the Kafka backend
//! (`runnel_streams::kafka`), whose instances share work through a
//! consumer group.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use runnel_broker::local::{Local, LocalError};
use runnel_log::batch::build::{build_batch_with, TestRecord};
use runnel_log::batch::BatchIter;
use runnel_log::codec;
use runnel_streams::backend::{
    Backend, BackendError, ConsumedRecord, Guarantee, MemberInfo, PollEvent, ProducedRecord,
    TopicPartition,
};

/// Records returned by one poll at most.
const MAX_POLL_RECORDS: usize = 10_000;
/// Bytes read from one partition per read.
const READ_BYTES: usize = 1 << 20;
/// Transaction timeout asked of the coordinator.
const TXN_TIMEOUT_MS: i32 = 60_000;
/// Largest decompressed batch accepted.
const DECODE_LIMIT: usize = 64 << 20;
/// Batch attribute bit of transactional batches.
const TRANSACTIONAL: i16 = 0x10;

/// The in-process backend.
pub struct LocalBackend {
    local: Local,
    group: String,
    guarantee: Guarantee,
    txn_id: String,
    producer: Option<(i64, i16)>,
    sequences: HashMap<(String, i32), i32>,
    txn_partitions: BTreeSet<(String, i32)>,
    txn_open: bool,
    subscribed: Vec<String>,
    assigned: Vec<TopicPartition>,
    positions: HashMap<TopicPartition, i64>,
    events: VecDeque<PollEvent>,
    /// Last stable offset seen per partition (for lag).
    stable: HashMap<TopicPartition, i64>,
    /// The partition the next poll starts with.
    next_first: usize,
}

/// A record to send as a batch builder record (its timestamp, absolute,
/// in `timestamp_delta`).
fn to_batch_record(r: ProducedRecord) -> TestRecord {
    TestRecord {
        timestamp_delta: r.timestamp,
        key: r.key,
        value: r.value,
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v))
            .collect(),
    }
}

/// Kafka's INVALID_PRODUCER_EPOCH error code.
const INVALID_PRODUCER_EPOCH: i16 = 47;
/// Kafka's PRODUCER_FENCED error code.
const PRODUCER_FENCED: i16 = 90;

fn err(e: LocalError) -> BackendError {
    match e {
        LocalError::Txn(runnel_broker::txn::TxnError::Fenced) => {
            BackendError::Fenced(e.to_string())
        }
        LocalError::Txn(runnel_broker::txn::TxnError::WrongProducerId) => {
            BackendError::Fenced(e.to_string())
        }
        // A send refused for the producer's epoch: a newer instance of
        // its transactional id fenced it (Kafka's INVALID_PRODUCER_EPOCH
        // and PRODUCER_FENCED, which clients treat as fencing).
        LocalError::Refused {
            code: INVALID_PRODUCER_EPOCH | PRODUCER_FENCED,
            ..
        } => BackendError::Fenced(e.to_string()),
        LocalError::UnknownPartition(..) | LocalError::Internal(_) | LocalError::Refused { .. } => {
            BackendError::Fatal(e.to_string())
        }
        other => BackendError::Fatal(other.to_string()),
    }
}

/// Most records in one appended batch.
const BATCH_RECORDS: usize = 5_000;
/// Bytes of keys, values and headers in one appended batch: well under
/// the default `max.message.bytes` (1 MiB), as a producer's `batch.size`
/// keeps its batches; a single larger record still makes a batch alone
/// (and is refused as a Kafka producer's would be).
const BATCH_BYTES: usize = 256 * 1024;

/// How many of `recs` (at least one) go into the next batch.
fn batch_len(recs: &[TestRecord]) -> usize {
    let mut bytes = 0usize;
    for (i, r) in recs.iter().enumerate().take(BATCH_RECORDS) {
        bytes += 24
            + r.key.as_ref().map_or(0, Vec::len)
            + r.value.as_ref().map_or(0, Vec::len)
            + r.headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        if bytes > BATCH_BYTES && i > 0 {
            return i;
        }
    }
    recs.len().min(BATCH_RECORDS)
}

impl LocalBackend {
    /// A backend for application `application_id` on the broker behind
    /// `local`. Under exactly-once this claims the transactional id
    /// `<application_id>-local`, fencing any earlier instance.
    pub fn new(
        local: Local,
        application_id: &str,
        guarantee: Guarantee,
    ) -> Result<LocalBackend, BackendError> {
        LocalBackend::with_instance_id(local, application_id, guarantee, "local")
    }

    /// [`LocalBackend::new`] with the transactional id
    /// `<application_id>-<instance_id>`: what a `KafkaCluster` with the same
    /// instance id derives, so an in-process instance and remote ones of
    /// one application fence each other (the schema registry's writer).
    pub fn with_instance_id(
        local: Local,
        application_id: &str,
        guarantee: Guarantee,
        instance_id: &str,
    ) -> Result<LocalBackend, BackendError> {
        let txn_id = format!("{application_id}-{instance_id}");
        let producer = match guarantee {
            Guarantee::ExactlyOnce => Some(
                local
                    .init_transactions(&txn_id, TXN_TIMEOUT_MS)
                    .map_err(err)?,
            ),
            Guarantee::AtLeastOnce => None,
        };
        Ok(LocalBackend {
            local,
            group: application_id.to_string(),
            guarantee,
            txn_id,
            producer,
            sequences: HashMap::new(),
            txn_partitions: BTreeSet::new(),
            txn_open: false,
            subscribed: Vec::new(),
            assigned: Vec::new(),
            positions: HashMap::new(),
            events: VecDeque::new(),
            stable: HashMap::new(),
            next_first: 0,
        })
    }

    /// Reads committed records of `tp` from `*pos`, advancing it; stops
    /// after `max` records. Returns the last stable offset.
    fn read_into(
        &self,
        tp: &TopicPartition,
        pos: &mut i64,
        max: usize,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<i64, BackendError> {
        let read = match self
            .local
            .read(&tp.topic, tp.partition, *pos, READ_BYTES, true)
        {
            Ok(r) => r,
            Err(LocalError::Log(runnel_log::LogError::OffsetOutOfRange { start, end, .. })) => {
                // Like auto.offset.reset=earliest (or the end if past it).
                *pos = if *pos < start { start } else { end };
                return Ok(*pos);
            }
            Err(e) => return Err(err(e)),
        };
        let limit = read.last_stable_offset;
        for h in BatchIter::unchecked_crc(&read.bytes).flatten() {
            if out.len() >= max {
                break;
            }
            let next = h.next_offset();
            let aborted = h.is_transactional()
                && read.aborted.iter().any(|(pid, first, last)| {
                    *pid == h.producer_id() && *first <= h.base_offset() && h.base_offset() <= *last
                });
            if !h.is_control() && !aborted {
                let recs = codec::decode_records(&h, DECODE_LIMIT).map_err(|e| {
                    BackendError::Fatal(format!("{tp} at {}: {e}", h.base_offset()))
                })?;
                for r in recs {
                    if r.offset < *pos {
                        continue;
                    }
                    out.push(ConsumedRecord {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r
                            .headers
                            .into_iter()
                            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
                            .collect(),
                    });
                }
            }
            *pos = (*pos).max(next);
        }
        Ok(limit)
    }

    /// Appends `recs` (absolute timestamps in `timestamp_delta`) as one
    /// batch, transactional under exactly-once.
    fn append_batch(
        &mut self,
        topic: &str,
        partition: i32,
        mut recs: Vec<TestRecord>,
    ) -> Result<(), BackendError> {
        // Timestamps become deltas from the batch's smallest.
        let base_ts = recs.iter().map(|r| r.timestamp_delta).min().unwrap_or(0);
        for r in &mut recs {
            r.timestamp_delta -= base_ts;
        }
        let batch = match self.producer {
            Some((pid, epoch)) => {
                let seq = self
                    .sequences
                    .entry((topic.to_string(), partition))
                    .or_insert(0);
                let b = build_batch_with(base_ts, &recs, pid, epoch, *seq, TRANSACTIONAL);
                *seq = seq.wrapping_add(recs.len() as i32) & i32::MAX;
                b
            }
            None => build_batch_with(base_ts, &recs, -1, -1, -1, 0),
        };
        self.local.append(topic, partition, batch).map_err(err)?;
        Ok(())
    }

    fn ensure_in_txn(&mut self, topic: &str, partition: i32) -> Result<(), BackendError> {
        let Some(producer) = self.producer else {
            return Ok(());
        };
        let key = (topic.to_string(), partition);
        if !self.txn_partitions.contains(&key) {
            self.local
                .add_to_transaction(&self.txn_id, producer, std::slice::from_ref(&key), None)
                .map_err(err)?;
            self.txn_partitions.insert(key);
            self.txn_open = true;
        }
        Ok(())
    }

    fn end(&mut self, commit: bool) -> Result<(), BackendError> {
        let Some(producer) = self.producer else {
            return Ok(());
        };
        if self.txn_open {
            let epoch = self
                .local
                .end_transaction(&self.txn_id, producer, commit)
                .map_err(err)?;
            self.producer = Some((producer.0, epoch));
        }
        self.txn_open = false;
        self.txn_partitions.clear();
        Ok(())
    }
}

impl LocalBackend {
    /// Its member id in the group it holds (and in [`Backend::group_members`]).
    fn member_id(&self) -> String {
        format!("{}-local", self.group)
    }

    /// Shows the application in the broker's group listings as its group's
    /// one member, owning every partition it reads (Stable, where a group
    /// with only committed offsets would say Empty), and keeps clients
    /// over the wire out of the group while it runs.
    fn hold_group(&self) {
        let mut partitions: Vec<(String, Vec<i32>)> = Vec::new();
        for tp in &self.assigned {
            match partitions.iter_mut().find(|(t, _)| *t == tp.topic) {
                Some((_, ps)) => ps.push(tp.partition),
                None => partitions.push((tp.topic.clone(), vec![tp.partition])),
            }
        }
        self.local.hold_group(
            &self.group,
            runnel_broker::group::HeldGroup {
                member_id: self.member_id(),
                client_id: self.member_id(),
                client_host: "/127.0.0.1".into(),
                partitions,
            },
        );
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        if !self.subscribed.is_empty() {
            self.local.release_group(&self.group, &self.member_id());
        }
    }
}

impl Backend for LocalBackend {
    fn partition_count(&mut self, topic: &str) -> Result<Option<i32>, BackendError> {
        Ok(self.local.partition_count(topic))
    }

    fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), BackendError> {
        self.local
            .create_topic(topic, partitions, configs.iter().cloned().collect())
            .map_err(err)
    }

    fn subscribe(&mut self, topics: &[String]) -> Result<(), BackendError> {
        self.subscribed = topics.to_vec();
        let mut assigned = Vec::new();
        for t in topics {
            let n = self
                .local
                .partition_count(t)
                .ok_or_else(|| BackendError::Fatal(format!("topic {t} does not exist")))?;
            for p in 0..n {
                assigned.push(TopicPartition::new(t.clone(), p));
            }
        }
        for tp in &assigned {
            let pos = self
                .local
                .committed(&self.group, &tp.topic, tp.partition)
                .unwrap_or(0);
            self.positions.insert(tp.clone(), pos);
        }
        self.assigned = assigned.clone();
        self.hold_group();
        self.events.push_back(PollEvent::Assigned(assigned));
        Ok(())
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<PollEvent>, BackendError> {
        let mut events: Vec<PollEvent> = self.events.drain(..).collect();
        if !events.is_empty() {
            return Ok(events);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let seq = self.local.append_seq();
            let mut out = Vec::new();
            // Every partition gets a share of each poll, starting from a
            // different one each time, so no partition starves the others.
            let n = self.assigned.len().max(1);
            let share = (MAX_POLL_RECORDS / n).max(500);
            self.next_first = (self.next_first + 1) % n;
            let order: Vec<TopicPartition> = self.assigned[self.next_first..]
                .iter()
                .chain(&self.assigned[..self.next_first])
                .cloned()
                .collect();
            for tp in order {
                let mut pos = self.positions.get(&tp).copied().unwrap_or(0);
                let budget = share.min(MAX_POLL_RECORDS - out.len().min(MAX_POLL_RECORDS));
                let before = out.len();
                let stable = self.read_into(&tp, &mut pos, before + budget, &mut out)?;
                self.positions.insert(tp.clone(), pos);
                self.stable.insert(tp, stable);
                if out.len() >= MAX_POLL_RECORDS {
                    break;
                }
            }
            if !out.is_empty() {
                events.push(PollEvent::Records(out));
                return Ok(events);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(events);
            }
            self.local.wait_for_append(seq, left);
        }
    }

    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), BackendError> {
        self.positions.insert(tp.clone(), offset);
        Ok(())
    }

    fn committed(&mut self, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>, BackendError> {
        Ok(tps
            .iter()
            .map(|tp| self.local.committed(&self.group, &tp.topic, tp.partition))
            .collect())
    }

    fn begin(&mut self) -> Result<(), BackendError> {
        // The coordinator starts the transaction with its first partition.
        Ok(())
    }

    fn send(&mut self, records: Vec<ProducedRecord>) -> Result<(), BackendError> {
        // Records grouped by partition, in order within each partition
        // (partitions in order of first appearance): records for several
        // partitions interleaved (hashed keys) still make one batch per
        // partition instead of one per record. Keys and values move into
        // the batch builder's records.
        let mut groups: Vec<(String, i32, Vec<TestRecord>)> = Vec::new();
        let mut last = 0;
        for r in records {
            let same = |g: &(String, i32, Vec<TestRecord>)| g.1 == r.partition && g.0 == r.topic;
            let i = match groups.get(last) {
                Some(g) if same(g) => last,
                _ => match groups.iter().position(same) {
                    Some(i) => i,
                    None => {
                        groups.push((r.topic.clone(), r.partition, Vec::new()));
                        groups.len() - 1
                    }
                },
            };
            last = i;
            if let Some(g) = groups.get_mut(i) {
                g.2.push(to_batch_record(r));
            }
        }
        for (topic, partition, mut recs) in groups {
            self.ensure_in_txn(&topic, partition)?;
            while !recs.is_empty() {
                let rest = recs.split_off(batch_len(&recs));
                self.append_batch(&topic, partition, std::mem::replace(&mut recs, rest))?;
            }
        }
        Ok(())
    }

    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BackendError> {
        let offs: Vec<(String, i32, i64)> = offsets
            .iter()
            .map(|(tp, o)| (tp.topic.clone(), tp.partition, *o))
            .collect();
        match (self.guarantee, self.producer) {
            (Guarantee::ExactlyOnce, Some(producer)) => {
                if !offs.is_empty() {
                    self.local
                        .add_to_transaction(&self.txn_id, producer, &[], Some(&self.group))
                        .map_err(err)?;
                    self.txn_open = true;
                    self.local
                        .stage_offsets(&self.txn_id, producer, &self.group, &offs)
                        .map_err(err)?;
                }
                self.end(true)
            }
            _ => {
                if offs.is_empty() {
                    return Ok(());
                }
                self.local.commit(&self.group, &offs).map_err(err)
            }
        }
    }

    fn abort(&mut self) -> Result<(), BackendError> {
        self.end(false)
    }

    fn end_offsets(&mut self, tps: &[TopicPartition]) -> Result<Vec<i64>, BackendError> {
        tps.iter()
            .map(|tp| {
                self.local
                    .offsets(&tp.topic, tp.partition)
                    .map(|(_, hw, _)| hw)
                    .map_err(err)
            })
            .collect()
    }

    fn lag(&mut self, tp: &TopicPartition) -> Option<i64> {
        let pos = *self.positions.get(tp)?;
        let stable = *self.stable.get(tp)?;
        Some((stable - pos).max(0))
    }

    /// The backend is the group's only member and owns every partition of
    /// its subscription; it advertises no endpoint (the engine fills in its
    /// `StreamsConfig::application_server`). No members before `subscribe`.
    fn group_members(&mut self) -> Result<Vec<MemberInfo>, BackendError> {
        if self.subscribed.is_empty() {
            return Ok(Vec::new());
        }
        let id = self.member_id();
        Ok(vec![MemberInfo {
            member_id: id.clone(),
            client_id: id,
            host: "localhost".to_string(),
            endpoint: None,
            partitions: self.assigned.clone(),
            is_self: true,
        }])
    }

    fn read_partition(
        &mut self,
        tp: &TopicPartition,
        from: i64,
        f: &mut dyn FnMut(ConsumedRecord),
    ) -> Result<i64, BackendError> {
        let mut pos = from;
        let mut out = Vec::new();
        let end = self.read_into(tp, &mut pos, usize::MAX, &mut out)?;
        loop {
            for r in out.drain(..) {
                f(r);
            }
            if pos >= end {
                return Ok(pos.max(from));
            }
            let before = pos;
            self.read_into(tp, &mut pos, usize::MAX, &mut out)?;
            if pos == before && out.is_empty() {
                return Ok(pos);
            }
        }
    }
}

/// The in-process broker as a service sees it ([`runnel_cluster::Cluster`]):
/// a [`LocalBackend`] per application, and topic administration through
/// the same local interface.
#[derive(Clone)]
pub struct LocalCluster {
    local: Local,
    instance_id: String,
}

impl LocalCluster {
    pub fn new(local: Local) -> Self {
        LocalCluster {
            local,
            instance_id: "local".to_string(),
        }
    }

    /// Backends of this cluster take the transactional id
    /// `<application>-<id>` (see [`LocalBackend::with_instance_id`]).
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = id.into();
        self
    }
}

impl runnel_cluster::Cluster for LocalCluster {
    fn backend(
        &self,
        app_id: &str,
        guarantee: Guarantee,
    ) -> Result<Box<dyn Backend>, BackendError> {
        Ok(Box::new(LocalBackend::with_instance_id(
            self.local.clone(),
            app_id,
            guarantee,
            &self.instance_id,
        )?))
    }

    fn topics(&self) -> Result<Vec<(String, i32)>, BackendError> {
        Ok(self.local.topics())
    }

    fn create_topic(&self, topic: &runnel_cluster::NewTopic) -> Result<(), BackendError> {
        self.local
            .create_topic(
                &topic.name,
                topic.partitions,
                topic.configs.iter().cloned().collect(),
            )
            .map_err(err)
    }

    fn delete_topic(&self, topic: &str) -> Result<(), BackendError> {
        self.local.delete_topic(topic).map_err(err)
    }

    fn delete_group(&self, group: &str) -> Result<(), BackendError> {
        self.local.delete_group(group).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_broker::{Broker, BrokerConfig};

    #[test]
    fn one_send_larger_than_max_message_bytes_is_split_into_batches() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
        let local = broker.local();
        local.create_topic("big", 1, Default::default()).unwrap();
        for guarantee in [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
            let mut b = LocalBackend::new(local.clone(), "big-writer", guarantee).unwrap();
            b.begin().unwrap();
            // 4 MiB in one send: four times the topic's max.message.bytes.
            let records = (0..64)
                .map(|i| ProducedRecord {
                    topic: "big".into(),
                    partition: 0,
                    timestamp: i,
                    key: Some(vec![b'k'; 8]),
                    value: Some(vec![b'v'; 64 * 1024]),
                    headers: Vec::new(),
                })
                .collect();
            b.send(records).unwrap();
            b.commit(&[]).unwrap();
        }
        let mut reader = LocalBackend::new(local, "big-reader", Guarantee::AtLeastOnce).unwrap();
        let mut n = 0;
        reader
            .read_partition(&TopicPartition::new("big", 0), 0, &mut |_| n += 1)
            .unwrap();
        assert_eq!(n, 128);
    }
}
