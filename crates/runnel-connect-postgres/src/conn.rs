//! Where a PostgreSQL server is and how to log in: shared by the source's
//! query and replication connections and by the sink.

use crate::error::{Error, Result};
use tokio_postgres::NoTls;

/// Connection settings (no TLS: Runnel's connectors speak plain TCP for
/// now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

/// Session settings every connection of this crate uses, so that text
/// values (dates, times, floats, bytea) come in one known form.
pub(crate) const SESSION_OPTIONS: &str =
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex";

impl ConnSettings {
    /// The tokio-postgres configuration for a normal (query) connection.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .options(SESSION_OPTIONS)
            .application_name("runnel-connect-postgres")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }

    /// Opens a query connection; the connection's driver runs on the
    /// current runtime (it makes progress while the caller awaits).
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) = self.pg_config().connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection closed: {e}");
            }
        });
        Ok(client)
    }

    /// Parses `postgres://user:pass@host:port/db` or
    /// `jdbc:postgresql://host:port/db?user=…&password=…`.
    pub fn from_url(url: &str) -> Result<ConnSettings> {
        let bad = |m: &str| Error::config("connection.url", url, m);
        let rest = url
            .strip_prefix("jdbc:postgresql://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| bad("expected jdbc:postgresql://host:port/db or postgres://…"))?;
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let (authority, db) = match main.split_once('/') {
            Some((a, d)) => (a, d),
            None => (main, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (mut user, mut password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            None => (hostport.to_string(), 5432),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("user", v)) => user = Some(v.to_string()),
                Some(("password", v)) => password = Some(v.to_string()),
                _ => {}
            }
        }
        Ok(ConnSettings {
            host,
            port,
            user: user.unwrap_or_else(|| "postgres".to_string()),
            password,
            dbname: if db.is_empty() {
                "postgres".to_string()
            } else {
                db.to_string()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_both_forms_parse() {
        let a = ConnSettings::from_url("jdbc:postgresql://db:6432/shop?user=u&password=p").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.user.as_str(), a.dbname.as_str()),
            ("db", 6432, "u", "shop")
        );
        assert_eq!(a.password.as_deref(), Some("p"));
        let b = ConnSettings::from_url("postgres://postgres@127.0.0.1:5555/postgres").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", 5555));
        assert!(ConnSettings::from_url("mysql://x").is_err());
    }
}
