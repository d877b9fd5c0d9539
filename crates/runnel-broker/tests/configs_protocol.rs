//! DescribeConfigs over a socket: values, sources and (when asked for)
//! synonyms, as Kafka's tools read them (`kafka-configs --describe`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use common::{call, start};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

#[tokio::test(flavor = "multi_thread")]
async fn topic_configs_carry_kafkas_synonyms_when_asked() {
    let r = start().await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("syn")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("7200000")))])])
        .with_timeout_ms(5_000);
    let created = call(&mut c, &create, 5).await;
    assert_eq!(created.topics[0].error_code, 0);
    let describe = |synonyms: bool| {
        DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("syn"))
                .with_configuration_keys(Some(vec![
                    s("retention.ms"),
                    s("cleanup.policy"),
                ]))])
            .with_include_synonyms(synonyms)
    };
    for v in 1..=4i16 {
        let resp = call(&mut c, &describe(true), v).await;
        let configs = &resp.results[0].configs;
        let get = |name: &str| configs.iter().find(|e| e.name.as_str() == name).unwrap();
        let retention = get("retention.ms");
        assert_eq!(retention.config_source, DYNAMIC_TOPIC_CONFIG);
        let syn: Vec<(String, Option<String>, i8)> = retention
            .synonyms
            .iter()
            .map(|x| {
                (
                    x.name.to_string(),
                    x.value.as_ref().map(|v| v.to_string()),
                    x.source,
                )
            })
            .collect();
        assert_eq!(
            syn,
            [(
                "retention.ms".to_string(),
                Some("7200000".to_string()),
                DYNAMIC_TOPIC_CONFIG
            )],
            "v{v}"
        );
        let cleanup = get("cleanup.policy");
        assert_eq!(cleanup.config_source, DEFAULT_CONFIG);
        assert_eq!(cleanup.synonyms.len(), 1, "v{v}");
        assert_eq!(cleanup.synonyms[0].name.as_str(), "log.cleanup.policy");
        assert_eq!(cleanup.synonyms[0].source, DEFAULT_CONFIG);
        // Not asked for, not sent.
        let plain = call(&mut c, &describe(false), v).await;
        assert!(plain.results[0]
            .configs
            .iter()
            .all(|e| e.synonyms.is_empty()));
    }
}

/// The legacy AlterConfigs API (librdkafka's AlterConfigs, older tools):
/// the given configs become the topic's whole set of overrides.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_alter_configs_replaces_a_topics_overrides() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let r = start().await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("legacy")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("7200000")))])])
        .with_timeout_ms(5_000);
    assert_eq!(call(&mut c, &create, 5).await.topics[0].error_code, 0);
    let alter = |configs: Vec<(&str, &str)>, validate_only: bool| {
        AlterConfigsRequest::default()
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("legacy"))
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                )])
            .with_validate_only(validate_only)
    };
    let overrides = |resp: &DescribeConfigsResponse| -> Vec<(String, String)> {
        resp.results[0]
            .configs
            .iter()
            .filter(|e| e.config_source == DYNAMIC_TOPIC_CONFIG)
            .map(|e| (e.name.to_string(), e.value.as_ref().unwrap().to_string()))
            .collect()
    };
    let describe =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("legacy"))
            .with_configuration_keys(None)]);
    for v in 0..=2i16 {
        // Validate only: nothing changes; a bad value is refused.
        let resp = call(&mut c, &alter(vec![("cleanup.policy", "compact")], true), v).await;
        assert_eq!(resp.responses[0].error_code, 0, "v{v}");
        let bad = call(&mut c, &alter(vec![("retention.ms", "soon")], false), v).await;
        assert_ne!(bad.responses[0].error_code, 0, "v{v}");
        assert_eq!(
            overrides(&call(&mut c, &describe, 4).await),
            [("retention.ms".to_string(), "7200000".to_string())],
            "v{v}"
        );
        // The set replaces the overrides: retention.ms is gone.
        let resp = call(
            &mut c,
            &alter(vec![("cleanup.policy", "compact")], false),
            v,
        )
        .await;
        assert_eq!(resp.responses[0].error_code, 0, "v{v}");
        assert_eq!(
            overrides(&call(&mut c, &describe, 4).await),
            [("cleanup.policy".to_string(), "compact".to_string())],
            "v{v}"
        );
        // Back to the start for the next version.
        let resp = call(&mut c, &alter(vec![("retention.ms", "7200000")], false), v).await;
        assert_eq!(resp.responses[0].error_code, 0, "v{v}");
    }
}
