//! The CDC source's configuration, with Debezium's key names.

use crate::conn::ConnSettings;
use crate::error::{Error, Result};
use crate::types::DecimalMode;
use regex::Regex;
use runnel_connect_api::{Config, ConfigDef, ConfigKey, ConfigType, Importance, Validator};

/// When to snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// When no offset is stored (or the stored snapshot did not finish).
    Initial,
    /// At every start.
    Always,
    /// Never: stream only.
    Never,
    /// Snapshot (as `initial`), then produce nothing more.
    InitialOnly,
}

/// How the publication is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCreate {
    AllTables,
    Disabled,
    Filtered,
}

/// A parsed, checked source configuration.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub conn: ConnSettings,
    pub prefix: String,
    pub slot: String,
    pub publication: String,
    pub autocreate: AutoCreate,
    pub table_include: Vec<Regex>,
    pub table_exclude: Vec<Regex>,
    pub schema_include: Vec<Regex>,
    pub schema_exclude: Vec<Regex>,
    pub snapshot_mode: SnapshotMode,
    pub heartbeat_ms: u64,
    pub tombstones_on_delete: bool,
    pub decimal_mode: DecimalMode,
    pub slot_drop_on_stop: bool,
    /// `skipped.operations`: the streamed operations (`c`, `u`, `d`, `t`)
    /// not emitted; Debezium's default skips truncates.
    pub skipped_operations: Vec<char>,
    /// `provide.transaction.metadata`: BEGIN/END records on
    /// `<topic.prefix>.<topic.transaction>` and a `transaction` block in
    /// each streamed change event.
    pub transaction_metadata: bool,
    /// `<topic.prefix>.<topic.transaction>`.
    pub transaction_topic: String,
}

fn check_skipped_operations(value: &str) -> std::result::Result<(), String> {
    parse_skipped_operations(value).map(|_| ())
}

/// `skipped.operations` as Debezium reads it: a list of `c`, `u`, `d`,
/// `t` (any case), or `none`.
fn parse_skipped_operations(value: &str) -> std::result::Result<Vec<char>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.to_ascii_lowercase().as_str() {
            "none" => {}
            "c" => out.push('c'),
            "u" => out.push('u'),
            "d" => out.push('d'),
            "t" => out.push('t'),
            other => {
                return Err(format!(
                    "The 'skipped.operations' value is invalid: unknown operation '{other}' (one of c, u, d, t or none)"
                ))
            }
        }
    }
    Ok(out)
}

fn key(name: &str, kind: ConfigType, default: Option<&str>, doc: &str) -> ConfigKey {
    ConfigKey::new(name, kind, default, Importance::High, doc).group("Postgres")
}

fn check_regex_list(value: &str) -> std::result::Result<(), String> {
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        Regex::new(item).map_err(|e| format!("not a regular expression: {e}"))?;
    }
    Ok(())
}

fn check_slot_name(value: &str) -> std::result::Result<(), String> {
    if !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    {
        Ok(())
    } else {
        Err("a slot name has 1 to 63 lower case letters, digits and underscores".into())
    }
}

/// The source's configuration keys.
pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key("database.hostname", ConfigType::String, None, "Host of the PostgreSQL server").validator(Validator::NonEmpty))
        .define(key("database.port", ConfigType::Int, Some("5432"), "Port of the PostgreSQL server").validator(Validator::Range { min: Some(1), max: Some(65535) }))
        .define(key("database.user", ConfigType::String, None, "User to connect as (needs REPLICATION)"))
        .define(key("database.password", ConfigType::Password, Some(""), "Password of the user"))
        .define(key("database.dbname", ConfigType::String, None, "Database to capture").validator(Validator::NonEmpty))
        .define(key("topic.prefix", ConfigType::String, None, "Prefix of every topic name, and the logical name of the server (source partition, source.name)").validator(Validator::NonEmpty))
        .define(key("plugin.name", ConfigType::String, Some("pgoutput"), "Logical decoding plugin; only pgoutput").validator(Validator::one_of(&["pgoutput"])))
        .define(key("slot.name", ConfigType::String, Some("debezium"), "Replication slot to create or reuse").validator(Validator::Custom(check_slot_name)))
        .define(key("slot.drop.on.stop", ConfigType::Boolean, Some("false"), "Drop the slot when the task stops"))
        .define(key("publication.name", ConfigType::String, Some("dbz_publication"), "Publication to create or reuse").validator(Validator::NonEmpty))
        .define(key("publication.autocreate.mode", ConfigType::String, Some("all_tables"), "all_tables: CREATE PUBLICATION … FOR ALL TABLES; filtered: for the tables the include/exclude lists select; disabled: the publication must exist").validator(Validator::one_of(&["all_tables", "disabled", "filtered"])))
        .define(key("table.include.list", ConfigType::List, Some(""), "Regular expressions matching schema.table to capture").validator(Validator::Custom(check_regex_list)))
        .define(key("table.exclude.list", ConfigType::List, Some(""), "Regular expressions matching schema.table not to capture").validator(Validator::Custom(check_regex_list)))
        .define(key("schema.include.list", ConfigType::List, Some(""), "Regular expressions matching schemas to capture").validator(Validator::Custom(check_regex_list)))
        .define(key("schema.exclude.list", ConfigType::List, Some(""), "Regular expressions matching schemas not to capture").validator(Validator::Custom(check_regex_list)))
        .define(key("snapshot.mode", ConfigType::String, Some("initial"), "initial, always, never, no_data, initial_only").validator(Validator::one_of(&["initial", "always", "never", "no_data", "initial_only"])))
        .define(key("heartbeat.interval.ms", ConfigType::Int, Some("0"), "Emit a heartbeat record this often (0: never)").validator(Validator::Range { min: Some(0), max: None }))
        .define(key("tombstones.on.delete", ConfigType::Boolean, Some("true"), "Follow a delete event with a tombstone"))
        .define(key("provide.transaction.metadata", ConfigType::Boolean, Some("false"), "Write BEGIN and END records of each transaction to <topic.prefix>.<topic.transaction> and a transaction block in each change event"))
        .define(key("topic.transaction", ConfigType::String, Some("transaction"), "The suffix of the transaction metadata topic's name").validator(Validator::NonEmpty))
        .define(key("skipped.operations", ConfigType::List, Some("t"), "Streamed operations not to emit: c (inserts), u (updates), d (deletes), t (truncates), or none").validator(Validator::Custom(check_skipped_operations)))
        .define(key("decimal.handling.mode", ConfigType::String, Some("precise"), "precise, double or string").validator(Validator::one_of(&["precise", "double", "string"])))
}

fn regexes(def: &ConfigDef, config: &Config, name: &str) -> Result<Vec<Regex>> {
    def.list(config, name)
        .map_err(|e| Error::config(name, e.value, e.message))?
        .into_iter()
        .map(|item| {
            // Debezium matches the whole identifier.
            Regex::new(&format!("^(?:{item})$"))
                .map_err(|e| Error::config(name, item.clone(), e.to_string()))
        })
        .collect()
}

impl SourceConfig {
    /// Parses and checks `config`; the first problem is a config error
    /// naming its key.
    pub fn parse(config: &Config) -> Result<SourceConfig> {
        let def = config_def();
        def.check(config)
            .map_err(|e| Error::config(e.name, e.value, e.message))?;
        let s = |name: &str| {
            def.string(config, name)
                .map_err(|e| Error::config(name, e.value, e.message))
        };
        let b = |name: &str| {
            def.boolean(config, name)
                .map_err(|e| Error::config(name, e.value, e.message))
        };
        let port = def
            .int(config, "database.port")
            .map_err(|e| Error::config("database.port", e.value, e.message))?;
        let password = s("database.password")?;
        let snapshot_mode = match s("snapshot.mode")?.to_ascii_lowercase().as_str() {
            "initial" => SnapshotMode::Initial,
            "always" => SnapshotMode::Always,
            "never" | "no_data" => SnapshotMode::Never,
            _ => SnapshotMode::InitialOnly,
        };
        let autocreate = match s("publication.autocreate.mode")?
            .to_ascii_lowercase()
            .as_str()
        {
            "all_tables" => AutoCreate::AllTables,
            "disabled" => AutoCreate::Disabled,
            _ => AutoCreate::Filtered,
        };
        let decimal_mode = match s("decimal.handling.mode")?.to_ascii_lowercase().as_str() {
            "double" => DecimalMode::Double,
            "string" => DecimalMode::String,
            _ => DecimalMode::Precise,
        };
        let out = SourceConfig {
            conn: ConnSettings {
                host: s("database.hostname")?,
                port: u16::try_from(port)
                    .map_err(|_| Error::config("database.port", port.to_string(), "not a port"))?,
                user: s("database.user")?,
                password: if password.is_empty() {
                    None
                } else {
                    Some(password)
                },
                dbname: s("database.dbname")?,
            },
            prefix: s("topic.prefix")?,
            slot: s("slot.name")?,
            publication: s("publication.name")?,
            autocreate,
            table_include: regexes(&def, config, "table.include.list")?,
            table_exclude: regexes(&def, config, "table.exclude.list")?,
            schema_include: regexes(&def, config, "schema.include.list")?,
            schema_exclude: regexes(&def, config, "schema.exclude.list")?,
            snapshot_mode,
            heartbeat_ms: u64::try_from(
                def.int(config, "heartbeat.interval.ms")
                    .map_err(|e| Error::config("heartbeat.interval.ms", e.value, e.message))?,
            )
            .unwrap_or(0),
            tombstones_on_delete: b("tombstones.on.delete")?,
            decimal_mode,
            slot_drop_on_stop: b("slot.drop.on.stop")?,
            transaction_metadata: b("provide.transaction.metadata")?,
            transaction_topic: format!("{}.{}", s("topic.prefix")?, s("topic.transaction")?),
            skipped_operations: {
                let v = s("skipped.operations")?;
                parse_skipped_operations(&v)
                    .map_err(|e| Error::config("skipped.operations", v, e))?
            },
        };
        if !out.table_include.is_empty() && !out.table_exclude.is_empty() {
            return Err(Error::config(
                "table.exclude.list",
                config
                    .get("table.exclude.list")
                    .cloned()
                    .unwrap_or_default(),
                "table.include.list and table.exclude.list cannot both be set",
            ));
        }
        if !out.schema_include.is_empty() && !out.schema_exclude.is_empty() {
            return Err(Error::config(
                "schema.exclude.list",
                config
                    .get("schema.exclude.list")
                    .cloned()
                    .unwrap_or_default(),
                "schema.include.list and schema.exclude.list cannot both be set",
            ));
        }
        Ok(out)
    }

    /// Whether `schema.table` is captured.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        let any = |list: &[Regex], s: &str| list.iter().any(|r| r.is_match(s));
        if !self.schema_include.is_empty() && !any(&self.schema_include, schema) {
            return false;
        }
        if any(&self.schema_exclude, schema) {
            return false;
        }
        let full = format!("{schema}.{table}");
        if !self.table_include.is_empty() && !any(&self.table_include, &full) {
            return false;
        }
        !any(&self.table_exclude, &full)
    }

    /// Where a captured table comes in the snapshot: Debezium snapshots
    /// tables in the order of the `table.include.list` entry that first
    /// matches them (by name within one entry); without a list, by name.
    pub fn snapshot_rank(&self, schema: &str, table: &str) -> usize {
        let full = format!("{schema}.{table}");
        self.table_include
            .iter()
            .position(|r| r.is_match(&full))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut c: Config = [
            ("database.hostname", "db"),
            ("database.user", "u"),
            ("database.dbname", "shop"),
            ("topic.prefix", "srv"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            c.insert(k.to_string(), v.to_string());
        }
        c
    }

    #[test]
    fn snapshot_order_follows_the_include_list() {
        let c = SourceConfig::parse(&config(&[(
            "table.include.list",
            "public.types, public.full_.*,public.single",
        )]))
        .unwrap();
        assert_eq!(c.snapshot_rank("public", "types"), 0);
        assert_eq!(c.snapshot_rank("public", "full_t"), 1);
        assert_eq!(c.snapshot_rank("public", "single"), 2);
        let all = SourceConfig::parse(&config(&[])).unwrap();
        assert_eq!(all.snapshot_rank("public", "zebra"), 0);
        assert_eq!(all.snapshot_rank("public", "ant"), 0);
    }

    #[test]
    fn defaults_are_debeziums() {
        let c = SourceConfig::parse(&config(&[])).unwrap();
        assert_eq!(c.conn.port, 5432);
        assert_eq!(c.slot, "debezium");
        assert_eq!(c.publication, "dbz_publication");
        assert_eq!(c.autocreate, AutoCreate::AllTables);
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert!(c.tombstones_on_delete);
        assert_eq!(c.skipped_operations, vec!['t']);
        let c = SourceConfig::parse(&config(&[("skipped.operations", "none")])).unwrap();
        assert!(c.skipped_operations.is_empty());
        let c = SourceConfig::parse(&config(&[("skipped.operations", "C, d")])).unwrap();
        assert_eq!(c.skipped_operations, vec!['c', 'd']);
        assert!(!c.slot_drop_on_stop);
        assert_eq!(c.heartbeat_ms, 0);
        assert_eq!(c.decimal_mode, DecimalMode::Precise);
        let no_data = SourceConfig::parse(&config(&[("snapshot.mode", "no_data")])).unwrap();
        assert_eq!(no_data.snapshot_mode, SnapshotMode::Never);
    }

    #[test]
    fn filters_match_whole_names() {
        let c = SourceConfig::parse(&config(&[(
            "table.include.list",
            "public\\.ord.*,inv\\.items",
        )]))
        .unwrap();
        assert!(c.captures("public", "orders"));
        assert!(c.captures("inv", "items"));
        assert!(!c.captures("inv", "items2"));
        assert!(!c.captures("xpublic", "orders"));
        let c = SourceConfig::parse(&config(&[("schema.exclude.list", "audit")])).unwrap();
        assert!(!c.captures("audit", "log"));
        assert!(c.captures("audit2", "log"));
    }

    #[test]
    fn bad_values_are_errors_on_their_key() {
        for (key, value) in [
            ("plugin.name", "decoderbufs"),
            ("slot.name", "Bad-Slot"),
            ("snapshot.mode", "sometimes"),
            ("table.include.list", "a("),
            ("database.port", "70000"),
            ("skipped.operations", "c,x"),
        ] {
            match SourceConfig::parse(&config(&[(key, value)])) {
                Err(Error::Config { field, .. }) => assert_eq!(field, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        match SourceConfig::parse(&config(&[
            ("table.include.list", "a"),
            ("table.exclude.list", "b"),
        ])) {
            Err(Error::Config { field, .. }) => assert_eq!(field, "table.exclude.list"),
            other => panic!("{other:?}"),
        }
    }
}
