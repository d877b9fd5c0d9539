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
