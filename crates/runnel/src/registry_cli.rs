//! `runnel registry …`: the schema registry from the command line (rpk's
//! `registry` verbs) against any Confluent-compatible registry.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use runnel_registry_client::RegistryClient;

use crate::produce::schema_type_of;

#[derive(Args, Debug)]
pub struct RegistryArgs {
    /// Schema registry URL.
    #[arg(
        short = 'r',
        long = "schema-registry",
        global = true,
        env = "RUNNEL_SCHEMA_REGISTRY",
        default_value = "http://localhost:8081"
    )]
    registry: String,
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Subcommand, Debug)]
enum RegistryCommand {
    /// Subjects: list or delete.
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// Schemas: register, get, check compatibility.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Compatibility levels, global or per subject.
    #[command(subcommand, name = "compatibility-level")]
    CompatibilityLevel(LevelCommand),
    /// Modes (READWRITE, READONLY, IMPORT), global or per subject.
    #[command(subcommand)]
    Mode(ModeCommand),
}

#[derive(Subcommand, Debug)]
enum ModeCommand {
    /// The global mode, or a subject's.
    Get { subject: Option<String> },
    /// Set the global mode, or a subject's.
    Set {
        subject: Option<String>,
        /// READWRITE, READONLY or IMPORT.
        #[arg(long)]
        mode: String,
    },
}

#[derive(Subcommand, Debug)]
enum SubjectCommand {
    /// List subjects.
    List {
        /// Soft-deleted subjects too.
        #[arg(long)]
        deleted: bool,
    },
    /// Delete a subject (soft; --permanent after a soft delete).
    Delete {
        subject: String,
        #[arg(long)]
        permanent: bool,
    },
    /// A subject's versions.
    Versions { subject: String },
}

#[derive(Subcommand, Debug)]
enum SchemaCommand {
    /// Register a schema file under a subject.
    Create {
        subject: String,
        #[arg(long, value_name = "FILE")]
        schema: PathBuf,
        /// avro, protobuf or json [default: from the file].
        #[arg(long = "type", value_name = "TYPE")]
        schema_type: Option<String>,
    },
    /// Print a subject's schema (latest, or --schema-version).
    Get {
        subject: String,
        #[arg(long, default_value = "latest")]
        schema_version: String,
    },
    /// Delete one version of a subject (soft; --permanent after a soft delete).
    Delete {
        subject: String,
        #[arg(long)]
        schema_version: String,
        #[arg(long)]
        permanent: bool,
    },
    /// Whether a schema file may be registered under a subject.
    CheckCompatibility {
        subject: String,
        #[arg(long, value_name = "FILE")]
        schema: PathBuf,
        #[arg(long = "type", value_name = "TYPE")]
        schema_type: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum LevelCommand {
    /// The global level, or a subject's.
    Get { subject: Option<String> },
    /// Set the global level, or a subject's.
    Set {
        subject: Option<String>,
        /// NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE.
        #[arg(long)]
        level: String,
    },
}

pub async fn run(args: RegistryArgs) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        run_blocking(args, &mut out)
    })
    .await?
}

fn read_schema(path: &Path, given: Option<&str>) -> Result<(runnel_schema::SchemaType, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((schema_type_of(path, &text, given)?, text))
}

/// Rows in columns two spaces apart, as rpk prints them.
fn columns(rows: &[Vec<String>], out: &mut dyn Write) -> Result<()> {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

fn run_blocking(args: RegistryArgs, out: &mut dyn Write) -> Result<()> {
    let client = RegistryClient::new(&args.registry);
    match args.command {
        RegistryCommand::Subject(SubjectCommand::List { deleted }) => {
            for s in client.subjects(deleted)? {
                writeln!(out, "{s}")?;
            }
        }
        RegistryCommand::Subject(SubjectCommand::Delete { subject, permanent }) => {
            let versions = client.delete_subject(&subject, permanent)?;
            let list: Vec<String> = versions.iter().map(i32::to_string).collect();
            writeln!(
                out,
                "deleted {}subject {subject}, versions {}",
                if permanent { "(permanently) " } else { "" },
                list.join(", ")
            )?;
        }
        RegistryCommand::Subject(SubjectCommand::Versions { subject }) => {
            for v in client.versions(&subject)? {
                writeln!(out, "{v}")?;
            }
        }
        RegistryCommand::Schema(SchemaCommand::Delete {
            subject,
            schema_version,
            permanent,
        }) => {
            let v = client.delete_version(&subject, &schema_version, permanent)?;
            writeln!(
                out,
                "deleted {}version {v} of {subject}",
                if permanent { "(permanently) " } else { "" }
            )?;
        }
        RegistryCommand::Mode(command) => {
            let (subject, mode) = match command {
                ModeCommand::Get { subject } => {
                    let mode = client.mode(subject.as_deref())?;
                    (subject, mode)
                }
                ModeCommand::Set { subject, mode } => {
                    let mode = client.set_mode(subject.as_deref(), &mode.to_ascii_uppercase())?;
                    (subject, mode)
                }
            };
            columns(
                &[
                    vec!["SUBJECT".into(), "MODE".into()],
                    vec![subject.unwrap_or_else(|| "{GLOBAL}".into()), mode],
                ],
                out,
            )?;
        }
        RegistryCommand::Schema(SchemaCommand::Create {
            subject,
            schema,
            schema_type,
        }) => {
            let (ty, text) = read_schema(&schema, schema_type.as_deref())?;
            client.register(&subject, ty, &text, &[], false)?;
            let s = client.lookup(&subject, ty, &text, &[], false)?;
            columns(
                &[
                    vec![
                        "SUBJECT".into(),
                        "VERSION".into(),
                        "ID".into(),
                        "TYPE".into(),
                    ],
                    vec![
                        s.subject,
                        s.version.to_string(),
                        s.id.to_string(),
                        ty.name().into(),
                    ],
                ],
                out,
            )?;
        }
        RegistryCommand::Schema(SchemaCommand::Get {
            subject,
            schema_version,
        }) => {
            let s = client.version(&subject, &schema_version)?;
            columns(
                &[
                    vec![
                        "SUBJECT".into(),
                        "VERSION".into(),
                        "ID".into(),
                        "TYPE".into(),
                    ],
                    vec![
                        s.subject.clone(),
                        s.version.to_string(),
                        s.id.to_string(),
                        s.schema.schema_type().name().into(),
                    ],
                ],
                out,
            )?;
            writeln!(out)?;
            writeln!(out, "{}", s.schema.text())?;
        }
        RegistryCommand::Schema(SchemaCommand::CheckCompatibility {
            subject,
            schema,
            schema_type,
        }) => {
            let (ty, text) = read_schema(&schema, schema_type.as_deref())?;
            let ok = client.is_compatible(&subject, ty, &text, &[])?;
            writeln!(out, "{}", if ok { "compatible" } else { "incompatible" })?;
            if !ok {
                anyhow::bail!("{} is not compatible with {subject}", schema.display());
            }
        }
        RegistryCommand::CompatibilityLevel(LevelCommand::Get { subject }) => {
            let level = client.compatibility(subject.as_deref())?;
            columns(
                &[
                    vec!["SUBJECT".into(), "LEVEL".into()],
                    vec![subject.unwrap_or_else(|| "{GLOBAL}".into()), level],
                ],
                out,
            )?;
        }
        RegistryCommand::CompatibilityLevel(LevelCommand::Set { subject, level }) => {
            let level =
                client.set_compatibility(subject.as_deref(), &level.to_ascii_uppercase())?;
            columns(
                &[
                    vec!["SUBJECT".into(), "LEVEL".into()],
                    vec![subject.unwrap_or_else(|| "{GLOBAL}".into()), level],
                ],
                out,
            )?;
        }
    }
    Ok(())
}
