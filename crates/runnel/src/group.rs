//! `runnel group …`: consumer group administration over the Kafka protocol
//! (list, describe with lag, reset offsets, delete).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    DescribeShareGroupOffsetsRequest, GroupId, ListGroupsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetFetchRequest, ShareGroupDescribeRequest, TopicName,
};
use kafka_protocol::ResponseError;

use crate::client::{s, Client};

#[derive(Args, Debug)]
pub struct GroupArgs {
    /// Broker address(es), comma separated.
    #[arg(
        short,
        long,
        global = true,
        env = "RUNNEL_BOOTSTRAP",
        default_value = "localhost:9092"
    )]
    bootstrap: String,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List groups (classic, consumer and share) with their state.
    List,
    /// Show a group's members, committed offsets and lag per partition.
    Describe { group: String },
    /// Delete groups without members (and their committed offsets).
    Delete { groups: Vec<String> },
    /// Move a group's committed offsets (the group must have no members).
    /// Prints the plan; commits only with --execute.
    ResetOffsets {
        group: String,
        /// Topic to reset, optionally with partitions: `orders` or
        /// `orders:0,2` (repeatable).
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
        #[command(flatten)]
        to: ResetTo,
        /// Commit the new offsets (default: dry run).
        #[arg(long)]
        execute: bool,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct ResetTo {
    /// The log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    to_latest: bool,
    /// An absolute offset (clamped to the log's range).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// The first offset at or after a time: epoch milliseconds or UTC
    /// `YYYY-MM-DDTHH:MM:SS[.mmm]Z`.
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
}

fn check(code: i16, what: &str) -> Result<()> {
    crate::client::check(code, None, what)
}

pub async fn run(args: GroupArgs) -> Result<()> {
    let mut client = Client::connect(&args.bootstrap).await?;
    match args.command {
        GroupCommand::List => {
            // v5 names each group's protocol (TYPE: classic, consumer or
            // share): a classic consumer group and a KIP-848 one have the
            // same protocol type, "consumer".
            let v = client.version(ApiKey::ListGroups, 5)?;
            let resp = client.send(&ListGroupsRequest::default(), v).await?;
            check(resp.error_code, "list groups")?;
            let mut groups = resp.groups;
            groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
            outln!("GROUP\tSTATE\tPROTOCOL-TYPE\tTYPE")?;
            for g in groups {
                let state = if v >= 4 { g.group_state.as_str() } else { "-" };
                let kind = if v >= 5 { g.group_type.as_str() } else { "-" };
                outln!("{}\t{state}\t{}\t{kind}", g.group_id.0, g.protocol_type)?;
            }
        }
        GroupCommand::Describe { group } => describe(&mut client, &group).await?,
        GroupCommand::ResetOffsets {
            group,
            topics,
            to,
            execute,
        } => reset_offsets(&mut client, &group, &topics, &to, execute).await?,
        GroupCommand::Delete { groups } => {
            let v = client.version(ApiKey::DeleteGroups, 2)?;
            let req = DeleteGroupsRequest::default()
                .with_groups_names(groups.iter().map(|g| GroupId(s(g))).collect());
            let resp = client.send(&req, v).await?;
            let mut failed = false;
            for r in resp.results {
                match r.error_code.err() {
                    None => outln!("deleted group {}", r.group_id.0)?,
                    Some(e) => {
                        failed = true;
                        eprintln!("cannot delete group {}: {e:?}", r.group_id.0);
                    }
                }
            }
            if failed {
                bail!("some groups were not deleted");
            }
        }
    }
    Ok(())
}

/// Topic partitions in a consumer protocol assignment (`i16 version`, then
/// `[topic: string, partitions: [i32]]`, then user data); empty if it does
/// not parse.
fn assigned_partitions(b: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
        let s = b.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(s)
    }
    fn i32_at(b: &[u8], pos: &mut usize) -> Option<i32> {
        take(b, pos, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    fn parse(b: &[u8]) -> Option<Vec<(String, i32)>> {
        let mut pos = 2;
        let mut out = Vec::new();
        for _ in 0..i32_at(b, &mut pos)?.max(0) {
            let len = take(b, &mut pos, 2).map(|x| i16::from_be_bytes([x[0], x[1]]))?;
            let name = String::from_utf8(take(b, &mut pos, len.max(0) as usize)?.to_vec()).ok()?;
            for _ in 0..i32_at(b, &mut pos)?.max(0) {
                out.push((name.clone(), i32_at(b, &mut pos)?));
            }
        }
        Some(out)
    }
    parse(b).unwrap_or_default()
}

async fn describe(client: &mut Client, group: &str) -> Result<()> {
    let v = client.version(ApiKey::DescribeGroups, 5)?;
    let resp = client
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
            v,
        )
        .await?;
    let Some(g) = resp.groups.into_iter().next() else {
        bail!("no description of group {group} in the response");
    };
    // Kafka 4 answers DescribeGroups for classic groups only: a share or
    // consumer-protocol (KIP-848) group is GROUP_ID_NOT_FOUND (or Dead)
    // there and has its own describe call.
    let (header, owners) = if g.error_code.err() == Some(ResponseError::GroupIdNotFound)
        || g.group_state.as_str() == "Dead"
    {
        if describe_share(client, group).await? {
            return Ok(());
        }
        match describe_consumer_protocol(client, group).await? {
            Some(found) => found,
            None => bail!("group {group} does not exist"),
        }
    } else {
        check(g.error_code, "describe group")?;
        // (topic, partition) -> (member id, host, client id)
        let mut owners: Owners = BTreeMap::new();
        let is_consumer = g.protocol_type.as_str() == "consumer" || g.protocol_type.is_empty();
        for m in &g.members {
            if !is_consumer {
                continue;
            }
            for tp in assigned_partitions(&m.member_assignment) {
                owners.insert(
                    tp,
                    (
                        m.member_id.to_string(),
                        m.client_host.to_string(),
                        m.client_id.to_string(),
                    ),
                );
            }
        }
        let header = format!(
            "Group: {group}\tState: {}\tProtocol: classic\tAssignor: {}\tMembers: {}",
            g.group_state,
            if g.protocol_data.is_empty() {
                "-"
            } else {
                g.protocol_data.as_str()
            },
            g.members.len()
        );
        (header, owners)
    };
    let fv = client.version(ApiKey::OffsetFetch, 7)?;
    if fv < 2 {
        bail!("the broker needs OffsetFetch v2+ to list a group's offsets");
    }
    let fetched = client
        .send(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None),
            fv,
        )
        .await?;
    check(fetched.error_code, "fetch committed offsets")?;
    let mut rows: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in fetched.topics {
        for p in t.partitions {
            rows.insert(
                (t.name.0.to_string(), p.partition_index),
                p.committed_offset,
            );
        }
    }
    for tp in owners.keys() {
        rows.entry(tp.clone()).or_insert(-1);
    }
    // Log end offsets, one ListOffsets per topic.
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in rows.keys() {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    for (topic, partitions) in by_topic {
        // A partition the broker cannot answer for shows "-".
        if let Ok(offsets) = client.list_offsets(topic, &partitions, -1).await {
            ends.extend(
                offsets
                    .into_iter()
                    .map(|(p, o)| ((topic.to_string(), p), o)),
            );
        }
    }
    outln!("{header}")?;
    outln!("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID")?;
    let dash = || "-".to_string();
    for ((topic, partition), committed) in &rows {
        let end = ends.get(&(topic.clone(), *partition)).copied();
        let current = (*committed >= 0).then_some(*committed);
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => dash(),
        };
        let (member, host, client_id) = owners
            .get(&(topic.clone(), *partition))
            .cloned()
            .unwrap_or_else(|| (dash(), dash(), dash()));
        outln!(
            "{topic}\t{partition}\t{}\t{}\t{lag}\t{member}\t{}\t{client_id}",
            current.map_or_else(dash, |c| c.to_string()),
            end.map_or_else(dash, |e| e.to_string()),
            if host.is_empty() { dash() } else { host },
        )?;
    }
    Ok(())
}

/// Who owns each partition: (topic, partition) -> (member id, host, client id).
type Owners = BTreeMap<(String, i32), (String, String, String)>;

/// A consumer-protocol (KIP-848) group through ConsumerGroupDescribe: its
/// header line and partition owners; `None` when there is no such group.
async fn describe_consumer_protocol(
    client: &mut Client,
    group: &str,
) -> Result<Option<(String, Owners)>> {
    let Ok(v) = client.version(ApiKey::ConsumerGroupDescribe, 1) else {
        return Ok(None);
    };
    let resp = client
        .send(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
            v,
        )
        .await?;
    let Some(g) = resp.groups.into_iter().next() else {
        bail!("no description of group {group} in the response");
    };
    if g.error_code.err() == Some(ResponseError::GroupIdNotFound) {
        return Ok(None);
    }
    check(g.error_code, "describe consumer group")?;
    let mut owners = Owners::new();
    for m in &g.members {
        for t in &m.assignment.topic_partitions {
            for p in &t.partitions {
                owners.insert(
                    (t.topic_name.0.to_string(), *p),
                    (
                        m.member_id.to_string(),
                        m.client_host.to_string(),
                        m.client_id.to_string(),
                    ),
                );
            }
        }
    }
    let header = format!(
        "Group: {group}\tState: {}\tProtocol: consumer\tAssignor: {}\tMembers: {}",
        g.group_state,
        g.assignor_name,
        g.members.len()
    );
    Ok(Some((header, owners)))
}

/// Describes a share group (KIP-932): its members, and per partition the
/// share-partition start offset, the log end and the lag between them.
/// `false` when there is no such share group.
async fn describe_share(client: &mut Client, group: &str) -> Result<bool> {
    let Ok(v) = client.version(ApiKey::ShareGroupDescribe, 1) else {
        return Ok(false);
    };
    let resp = client
        .send(
            &ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
            v,
        )
        .await?;
    let Some(g) = resp.groups.into_iter().next() else {
        bail!("no description of group {group} in the response");
    };
    if g.error_code.err() == Some(ResponseError::GroupIdNotFound) {
        return Ok(false);
    }
    check(g.error_code, "describe share group")?;
    // (topic, partition) -> the members fetching it (several may).
    let mut consumers: BTreeMap<(String, i32), Vec<String>> = BTreeMap::new();
    for m in &g.members {
        for t in &m.assignment.topic_partitions {
            for p in &t.partitions {
                consumers
                    .entry((t.topic_name.0.to_string(), *p))
                    .or_default()
                    .push(format!("{}@{}", m.client_id, m.client_host));
            }
        }
    }
    let ov = client.version(ApiKey::DescribeShareGroupOffsets, 0)?;
    let offsets = client
        .send(
            &DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(GroupId(s(group)))
                    .with_topics(None),
            ]),
            ov,
        )
        .await?;
    let mut starts: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for og in offsets.groups {
        check(og.error_code, "describe share group offsets")?;
        for t in og.topics {
            for p in t.partitions {
                starts.insert(
                    (t.topic_name.0.to_string(), p.partition_index),
                    p.start_offset,
                );
            }
        }
    }
    for tp in consumers.keys() {
        starts.entry(tp.clone()).or_insert(-1);
    }
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in starts.keys() {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    for (topic, partitions) in by_topic {
        if let Ok(o) = client.list_offsets(topic, &partitions, -1).await {
            ends.extend(o.into_iter().map(|(p, o)| ((topic.to_string(), p), o)));
        }
    }
    outln!(
        "Group: {group}\tState: {}\tProtocol: share\tAssignor: {}\tMembers: {}",
        g.group_state,
        g.assignor_name,
        g.members.len()
    )?;
    outln!("TOPIC\tPARTITION\tSTART-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMERS")?;
    let dash = || "-".to_string();
    for ((topic, partition), start) in &starts {
        let start = (*start >= 0).then_some(*start);
        let end = ends.get(&(topic.clone(), *partition)).copied();
        let lag = match (start, end) {
            (Some(s), Some(e)) => (e - s).max(0).to_string(),
            _ => dash(),
        };
        let who = consumers
            .get(&(topic.clone(), *partition))
            .map_or_else(dash, |c| c.join(","));
        outln!(
            "{topic}\t{partition}\t{}\t{}\t{lag}\t{who}",
            start.map_or_else(dash, |s| s.to_string()),
            end.map_or_else(dash, |e| e.to_string()),
        )?;
    }
    Ok(true)
}

/// Parses epoch milliseconds or `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (UTC).
fn parse_datetime(text: &str) -> Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || anyhow::anyhow!("{text:?} is neither epoch ms nor YYYY-MM-DDTHH:MM:SS[.mmm]Z");
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = body.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (hms, millis) = match time.split_once('.') {
        Some((hms, frac)) => {
            let mut f = frac.to_string();
            f.truncate(3);
            while f.len() < 3 {
                f.push('0');
            }
            (hms, f.parse::<i64>().map_err(|_| bad())?)
        }
        None => (time, 0),
    };
    let t: Vec<i64> = hms
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let ([y, mo, da], [h, mi, se]) = (
        <[i64; 3]>::try_from(d).map_err(|_| bad())?,
        <[i64; 3]>::try_from(t).map_err(|_| bad())?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    // Days from the civil date (proleptic Gregorian), epoch 1970-01-01.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000 + millis)
}

async fn reset_offsets(
    client: &mut Client,
    group: &str,
    topics: &[String],
    to: &ResetTo,
    execute: bool,
) -> Result<()> {
    let datetime = to.to_datetime.as_deref().map(parse_datetime).transpose()?;
    // (topic, partitions) with partitions from the spec or the metadata.
    let mut wanted: Vec<(String, Vec<i32>)> = Vec::new();
    for spec in topics {
        let (topic, parts) = match spec.split_once(':') {
            Some((t, p)) => {
                let parts = p
                    .split(',')
                    .map(|x| x.trim().parse::<i32>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| anyhow::anyhow!("bad partition list in {spec:?}"))?;
                (t.to_string(), parts)
            }
            None => {
                let v = client.version(ApiKey::Metadata, 12)?;
                let req = MetadataRequest::default()
                    .with_topics(Some(vec![
                        MetadataRequestTopic::default().with_name(Some(TopicName(s(spec))))
                    ]))
                    .with_allow_auto_topic_creation(false);
                let md = client.send(&req, v).await?;
                let Some(t) = md.topics.first() else {
                    bail!("no metadata for topic {spec}");
                };
                check(t.error_code, &format!("topic {spec}"))?;
                (
                    spec.clone(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            }
        };
        wanted.push((topic, parts));
    }
    let fv = client.version(ApiKey::OffsetFetch, 7)?;
    let fetched = client
        .send(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(
                    wanted
                        .iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(TopicName(s(t)))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect(),
                )),
            fv,
        )
        .await?;
    check(fetched.error_code, "fetch committed offsets")?;
    let current = |topic: &str, p: i32| {
        fetched
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|x| x.partition_index == p)
            .map_or(-1, |x| x.committed_offset)
    };
    let mut plan: Vec<(String, i32, i64, i64)> = Vec::new();
    for (topic, parts) in &wanted {
        let earliest = client.list_offsets(topic, parts, -2).await?;
        let latest = client.list_offsets(topic, parts, -1).await?;
        let by_time = match datetime {
            Some(ts) => Some(client.list_offsets(topic, parts, ts).await?),
            None => None,
        };
        for p in parts {
            let lo = earliest.get(p).copied().unwrap_or(0);
            let hi = latest.get(p).copied().unwrap_or(lo);
            let target = if to.to_earliest {
                lo
            } else if to.to_latest {
                hi
            } else if let Some(o) = to.to_offset {
                o.clamp(lo, hi)
            } else {
                by_time
                    .as_ref()
                    .and_then(|m| m.get(p).copied())
                    .filter(|o| *o >= 0)
                    .unwrap_or(hi)
            };
            plan.push((topic.clone(), *p, current(topic, *p), target));
        }
    }
    outln!("TOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET")?;
    for (t, p, cur, new) in &plan {
        let cur = if *cur < 0 {
            "-".to_string()
        } else {
            cur.to_string()
        };
        outln!("{t}\t{p}\t{cur}\t{new}")?;
    }
    if !execute {
        outln!("(dry run: add --execute to commit these offsets)")?;
        return Ok(());
    }
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, _, new) in &plan {
        let part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*new)
            .with_committed_leader_epoch(-1);
        match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let cv = client.version(ApiKey::OffsetCommit, 7)?;
    let resp = client
        .send(
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(topics),
            cv,
        )
        .await?;
    for t in resp.topics {
        for p in t.partitions {
            if let Some(e) = p.error_code.err() {
                bail!(
                    "commit {}-{}: {e:?} (a group with members cannot be reset)",
                    t.name.0,
                    p.partition_index
                );
            }
        }
    }
    outln!("committed {} offsets for group {group}", plan.len())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn datetimes_parse() {
        assert_eq!(parse_datetime("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_datetime("2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_datetime("2000-03-01T00:00:00Z").unwrap(),
            951_868_800_000
        );
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2023-13-01T00:00:00Z").is_err());
    }

    use super::*;

    #[test]
    fn consumer_assignments_parse() {
        let mut b = vec![0u8, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2];
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(&5i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            assigned_partitions(&b),
            vec![("t".to_string(), 3), ("t".to_string(), 5)]
        );
        assert!(assigned_partitions(&[0, 0, 0, 0, 0, 9]).is_empty());
    }
}
