//! KIP-848 group state in `__consumer_offsets`, in the record types Kafka
//! writes there for a consumer group (the key's leading `u16` is the record
//! type; offset commits are type 1, see [`crate::group::offsets`]):
//!
//! | type | key                  | value                                             |
//! |------|----------------------|---------------------------------------------------|
//! | 3    | group                | group metadata: group epoch, the partition counts of the subscribed topics the epoch was computed on |
//! | 5    | group, member        | member metadata: instance id, rack id, client id and host, subscribed topics, regex, server assignor, rebalance timeout |
//! | 6    | group                | target assignment metadata: assignment epoch      |
//! | 7    | group, member        | the member's target assignment                     |
//! | 8    | group, member        | the member's current assignment: member epoch, previous epoch, state, assigned partitions, partitions pending revocation |
//!
//! A null value (tombstone) deletes the key: a member leaving gets
//! tombstones for its 8, 7 and 5 records; a deleted group for its 6 and 3.
//! Strings are `u16 len` + UTF-8, nullable ones behind a `u8` 0/1, lists
//! behind a `u32` count; partitions are grouped by topic *name* (Kafka
//! writes topic ids; Runnel's group state works on names). Every value
//! starts with `u16 version (=0)`.
//!
//! The coordinator keeps the image of what it last wrote for each group
//! ([`GroupImage`]) and writes the difference to the group's current state
//! before the response that depends on it ([`diff`]); on open the records
//! are folded back into images ([`Restoring`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Tp;
use crate::group::records::{put_opt_str, put_str, put_strs, KeyValue, Reader};

const GROUP_METADATA: u16 = 3;
const MEMBER_METADATA: u16 = 5;
const TARGET_METADATA: u16 = 6;
const TARGET_MEMBER: u16 = 7;
const CURRENT_ASSIGNMENT: u16 = 8;
const VALUE_VERSION: u16 = 0;

/// Whether a key's record type is one of this module's.
pub fn is_group_record(record_type: u16) -> bool {
    matches!(
        record_type,
        GROUP_METADATA | MEMBER_METADATA | TARGET_METADATA | TARGET_MEMBER | CURRENT_ASSIGNMENT
    )
}

/// A member's subscription and identity (type 5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMeta {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topics: Vec<String>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
}

/// A member's current assignment (type 8). `state`: 0 stable, 1 unrevoked
/// partitions, 2 unreleased partitions; `left_static`: a static member that
/// left with epoch -2 and may come back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Current {
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: u8,
    pub left_static: bool,
    pub assigned: BTreeSet<Tp>,
    pub revoking: BTreeSet<Tp>,
}

/// One member as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberImage {
    pub meta: MemberMeta,
    pub target: BTreeSet<Tp>,
    pub current: Current,
}

/// A group as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupImage {
    pub epoch: i32,
    pub topic_counts: BTreeMap<String, i32>,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, MemberImage>,
}

fn group_key(kind: u16, group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.extend_from_slice(&kind.to_be_bytes());
    put_str(&mut out, group);
    out
}

fn member_key(kind: u16, group: &str, member: &str) -> Vec<u8> {
    let mut out = group_key(kind, group);
    put_str(&mut out, member);
    out
}

fn value() -> Vec<u8> {
    VALUE_VERSION.to_be_bytes().to_vec()
}

fn put_partitions(out: &mut Vec<u8>, set: &BTreeSet<Tp>) {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in set {
        by_topic.entry(t).or_default().push(*p);
    }
    out.extend_from_slice(&(by_topic.len() as u32).to_be_bytes());
    for (t, ps) in by_topic {
        put_str(out, t);
        out.extend_from_slice(&(ps.len() as u32).to_be_bytes());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
}

fn read_partitions(r: &mut Reader<'_>) -> Option<BTreeSet<Tp>> {
    let mut out = BTreeSet::new();
    for _ in 0..r.u32()? {
        let topic = r.string()?;
        for _ in 0..r.u32()? {
            out.insert((topic.clone(), r.i32()?));
        }
    }
    Some(out)
}

fn encode_group(g: &GroupImage) -> Vec<u8> {
    let mut out = value();
    out.extend_from_slice(&g.epoch.to_be_bytes());
    out.extend_from_slice(&(g.topic_counts.len() as u32).to_be_bytes());
    for (t, n) in &g.topic_counts {
        put_str(&mut out, t);
        out.extend_from_slice(&n.to_be_bytes());
    }
    out
}

fn encode_meta(m: &MemberMeta) -> Vec<u8> {
    let mut out = value();
    put_opt_str(&mut out, m.instance_id.as_deref());
    put_opt_str(&mut out, m.rack_id.as_deref());
    put_str(&mut out, &m.client_id);
    put_str(&mut out, &m.client_host);
    put_strs(&mut out, m.topics.iter());
    put_opt_str(&mut out, m.regex.as_deref());
    put_opt_str(&mut out, m.assignor.as_deref());
    out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
    out
}

fn encode_target_epoch(epoch: i32) -> Vec<u8> {
    let mut out = value();
    out.extend_from_slice(&epoch.to_be_bytes());
    out
}

fn encode_target(set: &BTreeSet<Tp>) -> Vec<u8> {
    let mut out = value();
    put_partitions(&mut out, set);
    out
}

fn encode_current(c: &Current) -> Vec<u8> {
    let mut out = value();
    out.extend_from_slice(&c.epoch.to_be_bytes());
    out.extend_from_slice(&c.previous_epoch.to_be_bytes());
    out.push(c.state);
    out.push(u8::from(c.left_static));
    put_partitions(&mut out, &c.assigned);
    put_partitions(&mut out, &c.revoking);
    out
}

/// The records that take what was written of group `id` (`old`) to `new`
/// (`None`: the group is gone), in the order Kafka writes them: member
/// metadata, group epoch, target assignment (members, then its epoch),
/// current assignments; a member's removal as 8, 7, 5 tombstones.
pub fn diff(id: &str, old: Option<&GroupImage>, new: Option<&GroupImage>) -> Vec<KeyValue> {
    let empty = GroupImage::default();
    let was = old.unwrap_or(&empty);
    let now = new.unwrap_or(&empty);
    let mut out = Vec::new();
    for (m, img) in &now.members {
        if was.members.get(m).map(|w| &w.meta) != Some(&img.meta) {
            out.push((
                member_key(MEMBER_METADATA, id, m),
                Some(encode_meta(&img.meta)),
            ));
        }
    }
    if let Some(g) = new {
        if old.is_none_or(|o| o.epoch != g.epoch || o.topic_counts != g.topic_counts) {
            out.push((group_key(GROUP_METADATA, id), Some(encode_group(g))));
        }
    }
    for (m, img) in &now.members {
        if was.members.get(m).map(|w| &w.target) != Some(&img.target) {
            out.push((
                member_key(TARGET_MEMBER, id, m),
                Some(encode_target(&img.target)),
            ));
        }
    }
    if new.is_some() && (old.is_none() || was.assignment_epoch != now.assignment_epoch) {
        out.push((
            group_key(TARGET_METADATA, id),
            Some(encode_target_epoch(now.assignment_epoch)),
        ));
    }
    for (m, img) in &now.members {
        if was.members.get(m).map(|w| &w.current) != Some(&img.current) {
            out.push((
                member_key(CURRENT_ASSIGNMENT, id, m),
                Some(encode_current(&img.current)),
            ));
        }
    }
    for m in was.members.keys().filter(|m| !now.members.contains_key(*m)) {
        for kind in [CURRENT_ASSIGNMENT, TARGET_MEMBER, MEMBER_METADATA] {
            out.push((member_key(kind, id, m), None));
        }
    }
    if old.is_some() && new.is_none() {
        out.push((group_key(TARGET_METADATA, id), None));
        out.push((group_key(GROUP_METADATA, id), None));
    }
    out
}

/// A group as far as its records have been read.
#[derive(Debug, Default)]
struct Partial {
    group: Option<(i32, BTreeMap<String, i32>)>,
    assignment_epoch: i32,
    meta: BTreeMap<String, MemberMeta>,
    target: BTreeMap<String, BTreeSet<Tp>>,
    current: BTreeMap<String, Current>,
}

/// Folds the records of a replay into groups.
#[derive(Debug, Default)]
pub struct Restoring {
    groups: HashMap<String, Partial>,
}

impl Restoring {
    /// Applies one record (`record_type` is the key's leading `u16`);
    /// false when it cannot be read.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> bool {
        self.try_apply(key, value).is_some()
    }

    fn try_apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Option<()> {
        let mut k = Reader(key);
        let kind = k.u16()?;
        let group = k.string()?;
        let member = match kind {
            MEMBER_METADATA | TARGET_MEMBER | CURRENT_ASSIGNMENT => Some(k.string()?),
            GROUP_METADATA | TARGET_METADATA => None,
            _ => return None,
        };
        let mut v = match value {
            Some(v) => {
                let mut r = Reader(v);
                if r.u16()? != VALUE_VERSION {
                    return None;
                }
                Some(r)
            }
            None => None,
        };
        let g = self.groups.entry(group.clone()).or_default();
        match (kind, member, v.as_mut()) {
            (GROUP_METADATA, _, None) => {
                self.groups.remove(&group);
            }
            (GROUP_METADATA, _, Some(r)) => {
                let epoch = r.i32()?;
                let mut counts = BTreeMap::new();
                for _ in 0..r.u32()? {
                    counts.insert(r.string()?, r.i32()?);
                }
                g.group = Some((epoch, counts));
            }
            (TARGET_METADATA, _, None) => g.assignment_epoch = 0,
            (TARGET_METADATA, _, Some(r)) => g.assignment_epoch = r.i32()?,
            (MEMBER_METADATA, Some(m), None) => {
                g.meta.remove(&m);
            }
            (MEMBER_METADATA, Some(m), Some(r)) => {
                let meta = MemberMeta {
                    instance_id: r.opt_string()?,
                    rack_id: r.opt_string()?,
                    client_id: r.string()?,
                    client_host: r.string()?,
                    topics: r.strings()?,
                    regex: r.opt_string()?,
                    assignor: r.opt_string()?,
                    rebalance_timeout_ms: r.i32()?,
                };
                g.meta.insert(m, meta);
            }
            (TARGET_MEMBER, Some(m), None) => {
                g.target.remove(&m);
            }
            (TARGET_MEMBER, Some(m), Some(r)) => {
                g.target.insert(m, read_partitions(r)?);
            }
            (CURRENT_ASSIGNMENT, Some(m), None) => {
                g.current.remove(&m);
            }
            (CURRENT_ASSIGNMENT, Some(m), Some(r)) => {
                let c = Current {
                    epoch: r.i32()?,
                    previous_epoch: r.i32()?,
                    state: r.u8()?,
                    left_static: r.u8()? != 0,
                    assigned: read_partitions(r)?,
                    revoking: read_partitions(r)?,
                };
                g.current.insert(m, c);
            }
            _ => return None,
        }
        Some(())
    }

    /// The groups found: those with a group metadata record, with the
    /// members that have member metadata.
    pub fn finish(self) -> HashMap<String, GroupImage> {
        self.groups
            .into_iter()
            .filter_map(|(id, mut p)| {
                let (epoch, topic_counts) = p.group.take()?;
                let members = std::mem::take(&mut p.meta)
                    .into_iter()
                    .map(|(m, meta)| {
                        let img = MemberImage {
                            meta,
                            target: p.target.remove(&m).unwrap_or_default(),
                            current: p.current.remove(&m).unwrap_or_default(),
                        };
                        (m, img)
                    })
                    .collect();
                Some((
                    id,
                    GroupImage {
                        epoch,
                        topic_counts,
                        assignment_epoch: p.assignment_epoch,
                        members,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(list: &[(&str, i32)]) -> BTreeSet<Tp> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    fn image() -> GroupImage {
        let member = |client: &str, target: &[(&str, i32)], revoking: &[(&str, i32)]| MemberImage {
            meta: MemberMeta {
                instance_id: Some("i-1".into()),
                rack_id: None,
                client_id: client.into(),
                client_host: "/127.0.0.1".into(),
                topics: vec!["a".into(), "b".into()],
                regex: None,
                assignor: Some("range".into()),
                rebalance_timeout_ms: 300_000,
            },
            target: tps(target),
            current: Current {
                epoch: 4,
                previous_epoch: 3,
                state: 1,
                left_static: false,
                assigned: tps(target),
                revoking: tps(revoking),
            },
        };
        GroupImage {
            epoch: 5,
            topic_counts: BTreeMap::from([("a".into(), 2), ("b".into(), 1)]),
            assignment_epoch: 4,
            members: BTreeMap::from([
                (
                    "m1".into(),
                    member("c1", &[("a", 0), ("b", 0)], &[("a", 1)]),
                ),
                ("m2".into(), member("c2", &[("a", 1)], &[])),
            ]),
        }
    }

    fn replay(records: &[KeyValue]) -> HashMap<String, GroupImage> {
        let mut r = Restoring::default();
        for (k, v) in records {
            assert!(r.apply(k, v.as_deref()), "record {k:?}");
        }
        r.finish()
    }

    #[test]
    fn images_round_trip_through_their_records() {
        let g = image();
        let mut written = diff("g", None, Some(&g));
        assert_eq!(
            replay(&written),
            HashMap::from([("g".to_string(), g.clone())])
        );
        // A member leaves, the other moves on: only the difference is written.
        let mut h = g.clone();
        h.members.remove("m2");
        h.epoch = 6;
        let m1 = h.members.get_mut("m1").map(|m| &mut m.current);
        if let Some(c) = m1 {
            c.epoch = 6;
            c.revoking.clear();
        }
        let step = diff("g", Some(&g), Some(&h));
        assert_eq!(
            step.len(),
            5,
            "group epoch, m1's current assignment, m2's 3 tombstones"
        );
        written.extend(step);
        assert_eq!(
            replay(&written),
            HashMap::from([("g".to_string(), h.clone())])
        );
        assert!(diff("g", Some(&h), Some(&h)).is_empty());
        written.extend(diff("g", Some(&h), None));
        assert!(replay(&written).is_empty());
    }

    #[test]
    fn truncated_values_are_refused() {
        for (k, v) in diff("g", None, Some(&image())) {
            let v = v.unwrap_or_default();
            for n in 0..v.len() {
                let mut r = Restoring::default();
                assert!(!r.apply(&k, Some(&v[..n])), "{n} of {} bytes", v.len());
            }
        }
        assert!(!Restoring::default().apply(&[0, 9, 0, 1, b'g'], None));
    }
}
