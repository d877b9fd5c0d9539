//! Connector configuration: a [`Config`] is the string map users send;
//! a [`ConfigDef`] says which keys exist, their types, defaults and
//! validators, and checks a config the way Kafka Connect's `ConfigDef`
//! does — one [`ConfigValue`] per key with its errors, which the REST API's
//! `PUT /connector-plugins/{class}/config/validate` returns and a create
//! with errors turns into a 400.

use std::collections::BTreeMap;

/// A connector or task configuration: key → value, as sent.
pub type Config = BTreeMap<String, String>;

/// The type of a configuration key (Kafka's `ConfigDef.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    /// Comma-separated values.
    List,
    Class,
    Password,
}

impl ConfigType {
    /// The name the REST API writes (`"STRING"`…).
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }

    /// Checks that `value` parses as this type; the message is Kafka's.
    fn check(self, value: &str) -> Result<(), String> {
        let v = value.trim();
        let ok = match self {
            ConfigType::Boolean => {
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            ConfigType::Int => v.parse::<i32>().is_ok(),
            ConfigType::Short => v.parse::<i16>().is_ok(),
            ConfigType::Long => v.parse::<i64>().is_ok(),
            ConfigType::Double => v.parse::<f64>().is_ok(),
            ConfigType::String | ConfigType::List | ConfigType::Class | ConfigType::Password => {
                true
            }
        };
        if ok {
            Ok(())
        } else if self == ConfigType::Boolean {
            Err("Expected value to be either true or false".to_string())
        } else {
            Err(format!("Not a number of type {}", self.as_str()))
        }
    }
}

/// How important a key is (shown by the REST API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    pub fn as_str(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// A check on a value beyond its type.
#[derive(Debug, Clone)]
pub enum Validator {
    /// One of these strings, ignoring case (Kafka's `CaseInsensitiveValidString`).
    OneOf(Vec<String>),
    /// A number within bounds (inclusive).
    Range { min: Option<i64>, max: Option<i64> },
    /// A string that is not empty.
    NonEmpty,
    /// Any check: `Err` carries the message.
    Custom(fn(&str) -> Result<(), String>),
}

impl Validator {
    /// One of `values`, ignoring case.
    pub fn one_of(values: &[&str]) -> Validator {
        Validator::OneOf(values.iter().map(|v| v.to_string()).collect())
    }

    fn check(&self, value: &str) -> Result<(), String> {
        match self {
            Validator::OneOf(values) => {
                if values.iter().any(|v| v.eq_ignore_ascii_case(value.trim())) {
                    Ok(())
                } else {
                    Err(format!("String must be one of: {}", values.join(", ")))
                }
            }
            Validator::Range { min, max } => {
                let n: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| "Not a number".to_string())?;
                if let Some(min) = min {
                    if n < *min as f64 {
                        return Err(format!("Value must be at least {min}"));
                    }
                }
                if let Some(max) = max {
                    if n > *max as f64 {
                        return Err(format!("Value must be no more than {max}"));
                    }
                }
                Ok(())
            }
            Validator::NonEmpty => {
                if value.trim().is_empty() {
                    Err("String must be non-empty".to_string())
                } else {
                    Ok(())
                }
            }
            Validator::Custom(f) => f(value),
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    pub name: String,
    pub kind: ConfigType,
    /// `None`: required (no default).
    pub default: Option<String>,
    pub importance: Importance,
    pub doc: String,
    pub group: Option<String>,
    pub display_name: String,
    pub validator: Option<Validator>,
    /// Values to suggest (shown as `recommended_values`).
    pub recommended: Vec<String>,
}

impl ConfigKey {
    /// A key with a default (`None` makes it required).
    pub fn new(
        name: impl Into<String>,
        kind: ConfigType,
        default: Option<&str>,
        importance: Importance,
        doc: impl Into<String>,
    ) -> ConfigKey {
        let name = name.into();
        ConfigKey {
            display_name: name.clone(),
            name,
            kind,
            default: default.map(str::to_string),
            importance,
            doc: doc.into(),
            group: None,
            validator: None,
            recommended: Vec::new(),
        }
    }

    pub fn validator(mut self, validator: Validator) -> ConfigKey {
        if let Validator::OneOf(values) = &validator {
            self.recommended = values.clone();
        }
        self.validator = Some(validator);
        self
    }

    pub fn group(mut self, group: impl Into<String>) -> ConfigKey {
        self.group = Some(group.into());
        self
    }

    pub fn display_name(mut self, name: impl Into<String>) -> ConfigKey {
        self.display_name = name.into();
        self
    }

    /// Whether the key has no default.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

/// The result of validating one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValue {
    pub name: String,
    pub value: Option<String>,
    pub recommended_values: Vec<String>,
    pub errors: Vec<String>,
    pub visible: bool,
}

impl ConfigValue {
    /// A value with no errors yet.
    pub fn new(name: impl Into<String>, value: Option<String>) -> ConfigValue {
        ConfigValue {
            name: name.into(),
            value,
            recommended_values: Vec::new(),
            errors: Vec::new(),
            visible: true,
        }
    }
}

/// The keys a connector (or the runtime) accepts, in definition order.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    pub keys: Vec<ConfigKey>,
}

/// A value missing or malformed when read with the typed getters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid value {value} for configuration {name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub message: String,
}

impl ConfigDef {
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    /// Adds a key (a later key of the same name replaces the earlier).
    pub fn define(mut self, key: ConfigKey) -> ConfigDef {
        self.keys.retain(|k| k.name != key.name);
        self.keys.push(key);
        self
    }

    /// Adds every key of `other`.
    pub fn merge(mut self, other: ConfigDef) -> ConfigDef {
        for key in other.keys {
            self = self.define(key);
        }
        self
    }

    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Validates `config`: one entry per defined key, in order, with
    /// Kafka's messages ("Missing required configuration \"x\" which has no
    /// default value.", "Invalid value x for configuration y: …"). Keys
    /// the definition does not know are not reported (connectors pass
    /// unknown keys through, as Kafka Connect does).
    pub fn validate(&self, config: &Config) -> Vec<ConfigValue> {
        self.keys
            .iter()
            .map(|key| {
                let value = config.get(&key.name).cloned();
                let mut out = ConfigValue::new(&key.name, value.clone());
                out.recommended_values = key.recommended.clone();
                match value.as_deref().or(key.default.as_deref()) {
                    None => out.errors.push(format!(
                        "Missing required configuration \"{}\" which has no default value.",
                        key.name
                    )),
                    Some(v) => {
                        let checked = key.kind.check(v).and_then(|()| match &key.validator {
                            // A default is not checked when not given
                            // (Kafka's defaults may be empty strings).
                            Some(validator) if value.is_some() => validator.check(v),
                            _ => Ok(()),
                        });
                        if let Err(message) = checked {
                            out.errors.push(format!(
                                "Invalid value {v} for configuration {}: {message}",
                                key.name
                            ));
                        }
                    }
                }
                out
            })
            .collect()
    }

    /// The first error of [`Self::validate`], if any, as a typed error.
    pub fn check(&self, config: &Config) -> Result<(), ConfigError> {
        for v in self.validate(config) {
            if let Some(message) = v.errors.into_iter().next() {
                return Err(ConfigError {
                    name: v.name,
                    value: v.value.unwrap_or_default(),
                    message,
                });
            }
        }
        Ok(())
    }

    fn raw<'a>(&'a self, config: &'a Config, name: &str) -> Result<&'a str, ConfigError> {
        let missing = || ConfigError {
            name: name.to_string(),
            value: String::new(),
            message: format!(
                "Missing required configuration \"{name}\" which has no default value."
            ),
        };
        match config.get(name) {
            Some(v) => Ok(v.as_str()),
            None => self
                .key(name)
                .and_then(|k| k.default.as_deref())
                .ok_or_else(missing),
        }
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        config: &Config,
        name: &str,
        kind: ConfigType,
    ) -> Result<T, ConfigError> {
        let raw = self.raw(config, name)?;
        raw.trim().parse().map_err(|_| ConfigError {
            name: name.to_string(),
            value: raw.to_string(),
            message: format!("Not a number of type {}", kind.as_str()),
        })
    }

    /// A string key's value (given, or its default).
    pub fn string(&self, config: &Config, name: &str) -> Result<String, ConfigError> {
        self.raw(config, name).map(str::to_string)
    }
    pub fn int(&self, config: &Config, name: &str) -> Result<i32, ConfigError> {
        self.parsed(config, name, ConfigType::Int)
    }
    pub fn long(&self, config: &Config, name: &str) -> Result<i64, ConfigError> {
        self.parsed(config, name, ConfigType::Long)
    }
    pub fn double(&self, config: &Config, name: &str) -> Result<f64, ConfigError> {
        self.parsed(config, name, ConfigType::Double)
    }
    pub fn boolean(&self, config: &Config, name: &str) -> Result<bool, ConfigError> {
        let raw = self.raw(config, name)?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError {
                name: name.to_string(),
                value: raw.to_string(),
                message: "Expected value to be either true or false".to_string(),
            }),
        }
    }
    /// A list key's items: split on commas, trimmed, empty items dropped.
    pub fn list(&self, config: &Config, name: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .raw(config, name)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(ConfigKey::new(
                "database.hostname",
                ConfigType::String,
                None,
                Importance::High,
                "host",
            ))
            .define(ConfigKey::new(
                "database.port",
                ConfigType::Int,
                Some("5432"),
                Importance::High,
                "port",
            ))
            .define(
                ConfigKey::new(
                    "snapshot.mode",
                    ConfigType::String,
                    Some("initial"),
                    Importance::Low,
                    "mode",
                )
                .validator(Validator::one_of(&["initial", "never"])),
            )
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validation_reports_each_field_with_kafkas_messages() {
        let out = def().validate(&config(&[
            ("database.port", "x"),
            ("snapshot.mode", "sometimes"),
        ]));
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0].errors,
            vec![
                "Missing required configuration \"database.hostname\" which has no default value."
            ]
        );
        assert_eq!(
            out[1].errors,
            vec!["Invalid value x for configuration database.port: Not a number of type INT"]
        );
        assert!(out[2].errors[0].contains("String must be one of: initial, never"));
        assert_eq!(out[2].recommended_values, vec!["initial", "never"]);
    }

    #[test]
    fn getters_apply_defaults_and_types() {
        let d = def();
        let c = config(&[("database.hostname", "db"), ("snapshot.mode", "NEVER")]);
        assert!(d.check(&c).is_ok());
        assert_eq!(d.int(&c, "database.port").unwrap(), 5432);
        assert_eq!(d.string(&c, "database.hostname").unwrap(), "db");
        assert!(d
            .int(&config(&[("database.port", "p")]), "database.port")
            .is_err());
        let lists = ConfigDef::new().define(ConfigKey::new(
            "table.include.list",
            ConfigType::List,
            Some(""),
            Importance::Low,
            "",
        ));
        assert_eq!(
            lists
                .list(
                    &config(&[("table.include.list", "a.b, c.d,")]),
                    "table.include.list"
                )
                .unwrap(),
            vec!["a.b", "c.d"]
        );
    }
}
