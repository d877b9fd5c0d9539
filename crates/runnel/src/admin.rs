//! `runnel topic …`: topic administration over the Kafka protocol.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse, TopicName,
};

use crate::client::{check, s, Client};
use crate::config::parse_kv;

#[derive(Args, Debug)]
pub struct TopicArgs {
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
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions [default: the broker's].
        #[arg(short, long)]
        partitions: Option<i32>,
        /// Replication factor [default: the broker's].
        #[arg(short, long)]
        replication_factor: Option<i16>,
        /// Topic config, e.g. retention.ms=3600000 (repeatable).
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics.
    List,
    /// Show a topic's partitions, offsets and configs.
    Describe { name: String },
    /// Delete topics.
    Delete { names: Vec<String> },
    /// Set or remove topic configs.
    AlterConfig {
        name: String,
        /// Config to set (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Config to reset to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

pub async fn run(args: TopicArgs) -> Result<()> {
    let mut client = Client::connect(&args.bootstrap).await?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut topic = CreatableTopic::default()
                .with_name(TopicName(s(&name)))
                .with_num_partitions(partitions.unwrap_or(-1))
                .with_replication_factor(replication_factor.unwrap_or(-1));
            for kv in &configs {
                let (k, v) = parse_kv(kv)?;
                topic.configs.push(
                    CreatableTopicConfig::default()
                        .with_name(s(&k))
                        .with_value(Some(s(&v))),
                );
            }
            let v = client.version(ApiKey::CreateTopics, 5)?;
            let req = CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000);
            let resp = client.send(&req, v).await?;
            for t in &resp.topics {
                check(
                    t.error_code,
                    t.error_message.as_ref(),
                    &format!("cannot create topic {name}"),
                )?;
            }
            outln!("created topic {name}")?;
        }
        TopicCommand::List => {
            let meta = metadata(&mut client, None).await?;
            let mut names: Vec<(String, usize)> = meta
                .topics
                .iter()
                .filter_map(|t| {
                    t.name
                        .as_ref()
                        .map(|n| (n.0.to_string(), t.partitions.len()))
                })
                .collect();
            names.sort();
            for (name, partitions) in names {
                outln!("{name}\t{partitions} partition(s)")?;
            }
        }
        TopicCommand::Describe { name } => describe(&mut client, &name).await?,
        TopicCommand::Delete { names } => {
            let v = client.version(ApiKey::DeleteTopics, 5)?;
            let req = if v >= 6 {
                DeleteTopicsRequest::default().with_topics(
                    names
                        .iter()
                        .map(|n| DeleteTopicState::default().with_name(Some(TopicName(s(n)))))
                        .collect(),
                )
            } else {
                DeleteTopicsRequest::default()
                    .with_topic_names(names.iter().map(|n| TopicName(s(n))).collect())
            }
            .with_timeout_ms(30_000);
            let resp = client.send(&req, v).await?;
            for r in &resp.responses {
                let n = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                check(
                    r.error_code,
                    r.error_message.as_ref(),
                    &format!("cannot delete topic {n}"),
                )?;
                outln!("deleted topic {n}")?;
            }
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            let mut configs = Vec::new();
            for kv in &set {
                let (k, v) = parse_kv(kv)?;
                configs.push(
                    AlterableConfig::default()
                        .with_name(s(&k))
                        .with_config_operation(0)
                        .with_value(Some(s(&v))),
                );
            }
            for k in &delete {
                configs.push(
                    AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(1),
                );
            }
            let v = client.version(ApiKey::IncrementalAlterConfigs, 1)?;
            let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(&name))
                    .with_configs(configs),
            ]);
            let resp = client.send(&req, v).await?;
            for r in &resp.responses {
                check(
                    r.error_code,
                    r.error_message.as_ref(),
                    &format!("cannot alter configs of {name}"),
                )?;
            }
            outln!("altered configs of topic {name}")?;
        }
    }
    Ok(())
}

async fn metadata(client: &mut Client, topic: Option<&str>) -> Result<MetadataResponse> {
    let v = client.version(ApiKey::Metadata, 12)?;
    let req = MetadataRequest::default()
        .with_topics(
            topic.map(|t| vec![MetadataRequestTopic::default().with_name(Some(TopicName(s(t))))]),
        )
        .with_allow_auto_topic_creation(false);
    client.send(&req, v).await
}

async fn describe(client: &mut Client, name: &str) -> Result<()> {
    let meta = metadata(client, Some(name)).await?;
    let Some(topic) = meta.topics.first() else {
        bail!("no metadata for topic {name}")
    };
    check(
        topic.error_code,
        None,
        &format!("cannot describe topic {name}"),
    )?;
    let mut partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort_unstable();
    let earliest = client.list_offsets(name, &partitions, -2).await?;
    let latest = client.list_offsets(name, &partitions, -1).await?;
    let find = |offsets: &std::collections::BTreeMap<i32, i64>, p: i32| {
        offsets.get(&p).copied().unwrap_or(-1)
    };
    outln!(
        "Topic: {name}\tPartitionCount: {}\tTopicId: {}",
        partitions.len(),
        topic.topic_id
    )?;
    outln!("PARTITION\tLEADER\tLOG-START-OFFSET\tLOG-END-OFFSET")?;
    for p in &partitions {
        let leader = topic
            .partitions
            .iter()
            .find(|x| x.partition_index == *p)
            .map(|x| x.leader_id.0)
            .unwrap_or(-1);
        outln!(
            "{p}\t{leader}\t{}\t{}",
            find(&earliest, *p),
            find(&latest, *p)
        )?;
    }
    let v = client.version(ApiKey::DescribeConfigs, 4)?;
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    let resp = client.send(&req, v).await?;
    outln!("CONFIG\tVALUE\tSOURCE")?;
    for r in &resp.results {
        check(
            r.error_code,
            r.error_message.as_ref(),
            &format!("cannot describe configs of {name}"),
        )?;
        for c in &r.configs {
            let source = match c.config_source {
                1 => "topic",
                4 => "broker",
                5 => "default",
                _ => "other",
            };
            outln!(
                "{}\t{}\t{source}",
                &*c.name,
                c.value.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}
