//! InitProducerId for idempotent (non-transactional) producers.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::debug;

use super::blocking;
use crate::context::ConnectionContext;
use crate::error::{log_error_code, BrokerError};
use crate::Broker;

pub(crate) async fn init_producer_id(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: InitProducerIdRequest,
) -> Result<InitProducerIdResponse, BrokerError> {
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = req.transactional_id.as_ref().map(|t| t.0.to_string()) {
        let b = broker.clone();
        let timeout = req.transaction_timeout_ms;
        return blocking(
            move || match b.txn.init_producer(&id, timeout, b.txn_deps()) {
                Ok(meta) => resp
                    .with_producer_id(ProducerId(meta.producer_id))
                    .with_producer_epoch(meta.epoch),
                Err(e) => resp.with_error_code(super::txn::txn_error_code(&e)),
            },
        )
        .await;
    }
    // KIP-360: a producer that knows its id asks for a bumped epoch.
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    if pid >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        resp.producer_id = ProducerId(pid);
        resp.producer_epoch = epoch + 1;
        return Ok(resp);
    }
    let b = broker.clone();
    match blocking(move || b.producers.allocate_id()).await? {
        Ok(id) => {
            debug!(producer_id = id, "allocated producer id");
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => resp.error_code = log_error_code(&e).code(),
    }
    Ok(resp)
}
