//! `runnel group …`: consumer group administration over the Kafka protocol
//! (list, describe with lag, delete).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    ListOffsetsRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;

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
    /// List consumer groups with their state.
    List,
    /// Show a group's members, committed offsets and lag per partition.
    Describe { group: String },
    /// Delete groups without members (and their committed offsets).
    Delete { groups: Vec<String> },
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn check(code: i16, what: &str) -> Result<()> {
    if let Some(err) = code.err() {
        bail!("{what}: {err:?}");
    }
    Ok(())
}

pub async fn run(args: GroupArgs) -> Result<()> {
    let mut client = Client::connect(&args.bootstrap).await?;
    match args.command {
        GroupCommand::List => {
            let v = client.version(ApiKey::ListGroups, 4)?;
            let resp = client.send(&ListGroupsRequest::default(), v).await?;
            check(resp.error_code, "list groups")?;
            let mut groups = resp.groups;
            groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
            println!("GROUP\tSTATE\tPROTOCOL-TYPE");
            for g in groups {
                let state = if v >= 4 { g.group_state.as_str() } else { "-" };
                println!("{}\t{state}\t{}", g.group_id.0, g.protocol_type);
            }
        }
        GroupCommand::Describe { group } => describe(&mut client, &group).await?,
        GroupCommand::Delete { groups } => {
            let v = client.version(ApiKey::DeleteGroups, 2)?;
            let req = DeleteGroupsRequest::default()
                .with_groups_names(groups.iter().map(|g| GroupId(s(g))).collect());
            let resp = client.send(&req, v).await?;
            let mut failed = false;
            for r in resp.results {
                match r.error_code.err() {
                    None => println!("deleted group {}", r.group_id.0),
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
    check(g.error_code, "describe group")?;
    if g.group_state.as_str() == "Dead" {
        bail!("group {group} does not exist");
    }
    // (topic, partition) -> (member id, host, client id)
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
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
    let lv = client.version(ApiKey::ListOffsets, 7)?;
    for (topic, partitions) in by_topic {
        let req = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(-1)
                        })
                        .collect(),
                )]);
        let resp = client.send(&req, lv).await?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    ends.insert((topic.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    println!(
        "Group: {group}\tState: {}\tProtocol: {}\tMembers: {}",
        g.group_state,
        if g.protocol_data.is_empty() {
            "-"
        } else {
            g.protocol_data.as_str()
        },
        g.members.len()
    );
    println!("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID");
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
        println!(
            "{topic}\t{partition}\t{}\t{}\t{lag}\t{member}\t{}\t{client_id}",
            current.map_or_else(dash, |c| c.to_string()),
            end.map_or_else(dash, |e| e.to_string()),
            if host.is_empty() { dash() } else { host },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
