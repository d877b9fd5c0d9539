//! Who is at the other end of a request: the connection's listener, peer
//! address and authenticated principal. The server builds one
//! [`ConnectionContext`] per accepted connection and hands it to every
//! request handler; the in-process API ([`crate::local::Local`]) builds its
//! own, so both paths run the same handlers' checks with an identity.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// The name of the listener `serve` uses when none is given (Kafka's
/// default listener name).
pub const DEFAULT_LISTENER: &str = "PLAINTEXT";

/// The name of the listener of in-process calls.
pub const LOCAL_LISTENER: &str = "local";

/// An authenticated identity, as Kafka writes it: `<type>:<name>`.
/// Until SASL or TLS client authentication exists every connection is
/// Kafka's `User:ANONYMOUS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    principal_type: Arc<str>,
    name: Arc<str>,
}

impl Principal {
    /// Kafka's principal of unauthenticated connections.
    pub fn anonymous() -> Principal {
        Principal {
            principal_type: Arc::from("User"),
            name: Arc::from("ANONYMOUS"),
        }
    }

    /// The principal type (`User` for all principals Kafka authenticates).
    pub fn principal_type(&self) -> &str {
        &self.principal_type
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is the unauthenticated principal.
    pub fn is_anonymous(&self) -> bool {
        *self == Principal::anonymous()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// What every request of one connection shares.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    listener: Arc<str>,
    peer: Option<SocketAddr>,
    principal: Principal,
}

impl ConnectionContext {
    /// A connection accepted on `listener` from `peer`, not authenticated.
    pub fn accepted(listener: &str, peer: SocketAddr) -> ConnectionContext {
        ConnectionContext {
            listener: Arc::from(listener),
            peer: Some(peer),
            principal: Principal::anonymous(),
        }
    }

    /// The context of in-process calls: listener [`LOCAL_LISTENER`], no
    /// peer address.
    pub fn in_process() -> ConnectionContext {
        ConnectionContext {
            listener: Arc::from(LOCAL_LISTENER),
            peer: None,
            principal: Principal::anonymous(),
        }
    }

    /// The name of the listener the connection came in on.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The client's address (`None` in process).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Who the client is.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The client host as Kafka reports it (DescribeGroups):
    /// `/<ip address>`, empty in process.
    pub fn client_host(&self) -> String {
        match self.peer {
            Some(peer) => format!("/{}", peer.ip()),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_principal_is_kafkas() {
        let p = Principal::anonymous();
        assert_eq!(p.to_string(), "User:ANONYMOUS");
        assert_eq!((p.principal_type(), p.name()), ("User", "ANONYMOUS"));
        assert!(p.is_anonymous());
    }

    #[test]
    fn client_host_is_slash_ip() {
        let peer: SocketAddr = "10.1.2.3:50000".parse().expect("addr");
        let ctx = ConnectionContext::accepted("PLAINTEXT", peer);
        assert_eq!(ctx.client_host(), "/10.1.2.3");
        assert_eq!(ctx.listener(), "PLAINTEXT");
        assert_eq!(ctx.peer(), Some(peer));
        assert!(ctx.principal().is_anonymous());
        let v6: SocketAddr = "[::1]:9092".parse().expect("addr");
        assert_eq!(ConnectionContext::accepted("x", v6).client_host(), "/::1");
        let local = ConnectionContext::in_process();
        assert_eq!(
            (local.listener(), local.client_host()),
            ("local", String::new())
        );
        assert_eq!(local.peer(), None);
    }
}
