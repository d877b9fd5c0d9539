//! Broker errors and the mapping of log errors onto Kafka error codes.

use kafka_protocol::ResponseError;
use runnel_log::LogError;

/// Why a connection or the server failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("log error: {0}")]
    Log(#[from] LogError),
    #[error("request frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { size: i64, max: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of api {api}")]
    UnsupportedVersion { api: i16, version: i16 },
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// The Kafka error code a log error is reported as.
pub fn log_error_code(err: &LogError) -> ResponseError {
    match err {
        LogError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        LogError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        LogError::InvalidTopicName(..) => ResponseError::InvalidTopicException,
        LogError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        LogError::InvalidConfig { .. } | LogError::UnknownConfig(_) => ResponseError::InvalidConfig,
        LogError::CorruptBatch(_) => ResponseError::CorruptMessage,
        LogError::InvalidRecord(_) => ResponseError::InvalidRecord,
        LogError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        LogError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::StorageFailed(_) | LogError::Io(_) => ResponseError::KafkaStorageError,
        #[allow(unreachable_patterns)]
        _ => ResponseError::UnknownServerError,
    }
}
