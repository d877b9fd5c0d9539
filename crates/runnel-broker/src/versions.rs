//! The API versions this broker advertises in ApiVersions.
//!
//! Maxima stop below versions that identify topics by id only (Fetch 13+,
//! Produce 13) and follow what librdkafka, KafkaJS, kafka-python and the
//! Java client use. Produce advertises a minimum of 0 even though versions
//! below 3 are refused: librdkafka turns compression off when the advertised
//! minimum is higher.

use kafka_protocol::messages::ApiKey;

/// One supported API with its advertised version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supported {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn s(key: ApiKey, min: i16, max: i16) -> Supported {
    Supported { key, min, max }
}

/// Every API the broker answers, in api-key order.
pub const SUPPORTED: &[Supported] = &[
    s(ApiKey::Produce, 0, 11),
    s(ApiKey::Fetch, 4, 12),
    s(ApiKey::ListOffsets, 1, 7),
    s(ApiKey::Metadata, 0, 12),
    s(ApiKey::OffsetCommit, 2, 9),
    s(ApiKey::OffsetFetch, 1, 9),
    s(ApiKey::FindCoordinator, 0, 4),
    s(ApiKey::JoinGroup, 0, 9),
    s(ApiKey::Heartbeat, 0, 4),
    s(ApiKey::LeaveGroup, 0, 5),
    s(ApiKey::SyncGroup, 0, 5),
    s(ApiKey::DescribeGroups, 0, 6),
    s(ApiKey::ListGroups, 0, 5),
    s(ApiKey::ApiVersions, 0, 3),
    s(ApiKey::CreateTopics, 2, 7),
    s(ApiKey::DeleteTopics, 1, 6),
    s(ApiKey::DeleteRecords, 0, 2),
    s(ApiKey::InitProducerId, 0, 4),
    s(ApiKey::AddPartitionsToTxn, 0, 3),
    s(ApiKey::AddOffsetsToTxn, 0, 3),
    s(ApiKey::EndTxn, 0, 5),
    s(ApiKey::TxnOffsetCommit, 0, 3),
    s(ApiKey::DescribeConfigs, 1, 4),
    s(ApiKey::AlterConfigs, 0, 2),
    s(ApiKey::DescribeLogDirs, 1, 4),
    s(ApiKey::CreatePartitions, 0, 3),
    s(ApiKey::DeleteGroups, 0, 2),
    s(ApiKey::IncrementalAlterConfigs, 0, 1),
    s(ApiKey::OffsetDelete, 0, 0),
    s(ApiKey::DescribeCluster, 0, 1),
    s(ApiKey::DescribeProducers, 0, 0),
    s(ApiKey::DescribeTransactions, 0, 0),
    s(ApiKey::ListTransactions, 0, 2),
    s(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    s(ApiKey::ConsumerGroupDescribe, 0, 1),
    s(ApiKey::DescribeTopicPartitions, 0, 0),
    s(ApiKey::ShareGroupHeartbeat, 1, 1),
    s(ApiKey::ShareGroupDescribe, 1, 1),
    s(ApiKey::ShareFetch, 1, 2),
    s(ApiKey::ShareAcknowledge, 1, 2),
    s(ApiKey::DescribeShareGroupOffsets, 0, 1),
    s(ApiKey::AlterShareGroupOffsets, 0, 0),
    s(ApiKey::DeleteShareGroupOffsets, 0, 0),
];

/// Versions the codec does not know but the broker answers: their requests
/// are laid out as an older version's, which decodes them, and their
/// responses are encoded by hand. DescribeShareGroupOffsets v1 only adds
/// `Lag` to the response (KIP-1226).
pub const HAND_ENCODED: &[(ApiKey, i16, i16)] = &[(ApiKey::DescribeShareGroupOffsets, 1, 0)];

/// The feature levels ApiVersions (v3+) advertises as supported (min, max)
/// and finalized (at max), as Kafka 4 does for what they switch on:
/// `group.version` 1 is the consumer group protocol (KIP-848:
/// ConsumerGroupHeartbeat, ConsumerGroupDescribe), `share.version` 1 share
/// groups (KIP-932). Kafka 4.4's `share.version` 2 adds the share groups'
/// dead-letter queue (its ShareVersion's supportsShareGroupDLQ), which
/// Runnel does not have. Nothing else: `transaction.version` 2 (KIP-890's
/// second part) and `streams.version` (KIP-1071) are not implemented, and
/// a feature advertised would be taken as working.
pub const FEATURES: &[(&str, i16, i16)] = &[("group.version", 0, 1), ("share.version", 0, 1)];

/// Versions the codec does not know whose requests are an older
/// version's with fields inserted: they are cut back to it, decoded, and
/// answered through the usual handlers (see [`crate::splice`]).
pub const SPLICED: &[(ApiKey, i16, i16)] =
    &[(ApiKey::ShareFetch, 2, 1), (ApiKey::ShareAcknowledge, 2, 1)];

/// Whether `key` v`version` is one of [`SPLICED`].
pub fn spliced(key: ApiKey, version: i16) -> bool {
    SPLICED.iter().any(|(k, v, _)| *k == key && *v == version)
}

/// The version whose layout the codec decodes a request of `key` v`version`
/// with (the version itself, but for [`HAND_ENCODED`] and [`SPLICED`]
/// ones).
pub fn codec_version(key: ApiKey, version: i16) -> i16 {
    HAND_ENCODED
        .iter()
        .chain(SPLICED)
        .find(|(k, v, _)| *k == key && *v == version)
        .map_or(version, |(_, _, codec)| *codec)
}

/// The lowest version the broker actually decodes for `key` (Produce below 3
/// is advertised for librdkafka's sake but refused).
pub fn accepted(key: ApiKey, version: i16) -> bool {
    let Some(entry) = SUPPORTED.iter().find(|e| e.key == key) else {
        return false;
    };
    let min = if key == ApiKey::Produce { 3 } else { entry.min };
    version >= min && version <= entry.max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_are_decodable_by_the_codec() {
        for e in SUPPORTED {
            let codec = e.key.valid_versions();
            let min = if e.key == ApiKey::Produce { 3 } else { e.min };
            let max = codec_version(e.key, e.max);
            assert!(codec.min <= min && max <= codec.max, "{:?}", e.key);
        }
    }

    /// ARCHITECTURE.md's table of API versions, as [`SUPPORTED`],
    /// [`accepted`], [`HAND_ENCODED`] and [`SPLICED`] make it.
    fn versions_table() -> String {
        let mut out = String::from("| Key | API | Versions | Notes |\n|---:|---|---|---|\n");
        for e in SUPPORTED {
            let mut notes = Vec::new();
            if let Some(first) = (e.min..=e.max).find(|v| accepted(e.key, *v)) {
                if first > e.min {
                    notes.push(format!(
                        "{}–{} advertised but refused (as Kafka 4 does, KAFKA-18659)",
                        e.min,
                        first - 1
                    ));
                }
            }
            for (k, v, codec) in HAND_ENCODED {
                if *k == e.key {
                    notes.push(format!(
                        "v{v}: request read as v{codec}, response encoded by hand"
                    ));
                }
            }
            for (k, v, codec) in SPLICED {
                if *k == e.key {
                    notes.push(format!(
                        "v{v}: request cut back to v{codec}'s layout (`splice.rs`)"
                    ));
                }
            }
            out.push_str(&format!(
                "| {} | {:?} | {}–{} | {} |\n",
                e.key as i16,
                e.key,
                e.min,
                e.max,
                notes.join("; ")
            ));
        }
        out
    }

    /// ARCHITECTURE.md lists the versions Runnel implements per API key
    /// (issue 21); this keeps the list true. On a change, paste the table
    /// this prints between the markers.
    #[test]
    fn architecture_md_lists_the_advertised_versions() {
        let doc = include_str!("../../../ARCHITECTURE.md");
        let begin = "<!-- api-versions:begin (generated by versions.rs's tests) -->\n";
        let end = "<!-- api-versions:end -->";
        let start = doc
            .find(begin)
            .expect("ARCHITECTURE.md has the begin marker")
            + begin.len();
        let stop = doc[start..].find(end).expect("and the end marker") + start;
        let want = versions_table();
        assert!(
            doc[start..stop] == want,
            "ARCHITECTURE.md's API versions table is out of date; it should read:\n{want}"
        );
    }

    #[test]
    fn supported_is_in_api_key_order() {
        assert!(SUPPORTED
            .windows(2)
            .all(|w| (w[0].key as i16) < (w[1].key as i16)));
    }

    #[test]
    fn produce_below_three_is_refused_but_advertised() {
        assert!(!accepted(ApiKey::Produce, 2));
        assert!(accepted(ApiKey::Produce, 3));
        assert!(SUPPORTED
            .iter()
            .any(|e| e.key == ApiKey::Produce && e.min == 0));
        assert!(!accepted(ApiKey::Fetch, 13));
    }

    /// Each feature level advertised comes with the APIs it switches on.
    #[test]
    fn features_are_advertised_only_with_their_apis() {
        let needs = |feature: &str| -> &[ApiKey] {
            match feature {
                "group.version" => &[
                    ApiKey::ConsumerGroupHeartbeat,
                    ApiKey::ConsumerGroupDescribe,
                ],
                "share.version" => &[
                    ApiKey::ShareGroupHeartbeat,
                    ApiKey::ShareGroupDescribe,
                    ApiKey::ShareFetch,
                    ApiKey::ShareAcknowledge,
                    ApiKey::DescribeShareGroupOffsets,
                    ApiKey::AlterShareGroupOffsets,
                    ApiKey::DeleteShareGroupOffsets,
                ],
                other => panic!("no APIs known for feature {other}"),
            }
        };
        for (name, min, max) in FEATURES {
            assert_eq!((*min, *max), (0, 1), "{name}");
            for key in needs(name) {
                assert!(
                    SUPPORTED.iter().any(|e| e.key == *key),
                    "{name} needs {key:?}"
                );
            }
        }
    }
}
