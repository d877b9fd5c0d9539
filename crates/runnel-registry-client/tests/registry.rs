//! The client against a real registry (Runnel's own, on an in-process
//! broker, over HTTP): registration, look-ups, schemas by id with their
//! references, the latest version, and the registry's errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

use std::time::Duration;

use runnel_registry_client::{ClientConfig, ClientError, Reference, RegistryClient};
use runnel_schema::SchemaType;
use runnel_testkit::TestRegistry;

const USER: &str = r#"{"type":"record","name":"User","namespace":"ex","fields":[{"name":"name","type":"string"}]}"#;
const USER2: &str = r#"{"type":"record","name":"User","namespace":"ex","fields":[{"name":"name","type":"string"},{"name":"age","type":["null","int"],"default":null}]}"#;

#[test]
fn register_look_up_and_fetch_by_id() {
    let served = TestRegistry::start();
    let client = RegistryClient::new(served.url());
    let id = client
        .register("users-value", SchemaType::Avro, USER, &[], false)
        .unwrap();
    // The same schema again: the same id (from the cache or the registry).
    assert_eq!(
        client
            .register("users-value", SchemaType::Avro, USER, &[], false)
            .unwrap(),
        id
    );
    let fresh = RegistryClient::new(served.url());
    assert_eq!(
        fresh
            .register("users-value", SchemaType::Avro, USER, &[], false)
            .unwrap(),
        id
    );
    let s = fresh.schema_by_id(id).unwrap();
    assert_eq!(s.record_name().as_deref(), Some("ex.User"));
    assert!(s.as_avro().is_some());

    let id2 = client
        .register("users-value", SchemaType::Avro, USER2, &[], false)
        .unwrap();
    assert_ne!(id, id2);
    let latest = client.latest("users-value").unwrap();
    assert_eq!((latest.version, latest.id), (2, id2));
    let found = client
        .lookup("users-value", SchemaType::Avro, USER, &[], false)
        .unwrap();
    assert_eq!((found.version, found.id), (1, id));
    assert!(client
        .is_compatible("users-value", SchemaType::Avro, USER, &[])
        .unwrap());
}

#[test]
fn references_are_resolved_for_schemas_by_id() {
    let served = TestRegistry::start();
    let client = RegistryClient::new(served.url());
    let common = r#"syntax = "proto3"; package ex; message Money { int64 cents = 1; }"#;
    client
        .register("money.proto", SchemaType::Protobuf, common, &[], false)
        .unwrap();
    let order = r#"syntax = "proto3"; package ex; import "money.proto"; message Order { Money total = 1; }"#;
    let id = client
        .register(
            "orders-value",
            SchemaType::Protobuf,
            order,
            &[Reference {
                name: "money.proto".into(),
                subject: "money.proto".into(),
                version: 1,
            }],
            false,
        )
        .unwrap();
    let s = RegistryClient::new(served.url()).schema_by_id(id).unwrap();
    assert_eq!(s.references().len(), 1);
    let m = s.as_protobuf().unwrap();
    assert_eq!(m.full_name(), "ex.Order");
    assert_eq!(
        m.get_field_by_name("total")
            .unwrap()
            .kind()
            .as_message()
            .unwrap()
            .full_name(),
        "ex.Money"
    );
}

#[test]
fn the_registrys_errors_carry_its_codes() {
    let served = TestRegistry::start();
    let client = RegistryClient::new(served.url());
    let e = client.latest("nope-value").unwrap_err();
    assert_eq!(e.error_code(), Some(40401), "{e}");
    assert!(e.is_not_found());
    let e = client.schema_by_id(999).unwrap_err();
    assert_eq!(e.error_code(), Some(40403), "{e}");
    let e = client
        .register(
            "bad-value",
            SchemaType::Avro,
            "{\"type\":\"recrd\"}",
            &[],
            false,
        )
        .unwrap_err();
    assert_eq!(e.error_code(), Some(42201), "{e}");
    client
        .register("evolving-value", SchemaType::Avro, USER, &[], false)
        .unwrap();
    let incompatible = r#"{"type":"record","name":"User","namespace":"ex","fields":[{"name":"name","type":"int"}]}"#;
    let e = client
        .register("evolving-value", SchemaType::Avro, incompatible, &[], false)
        .unwrap_err();
    assert_eq!(e.error_code(), Some(40901), "{e}");
    assert!(matches!(e, ClientError::Registry { status: 409, .. }));
}

#[test]
fn the_latest_version_is_remembered_only_briefly() {
    let served = TestRegistry::start();
    let client = RegistryClient::with_config(
        served.url(),
        ClientConfig {
            latest_ttl: Duration::from_millis(300),
            ..ClientConfig::default()
        },
    );
    let writer = RegistryClient::new(served.url());
    writer
        .register("t-value", SchemaType::Avro, USER, &[], false)
        .unwrap();
    assert_eq!(client.latest("t-value").unwrap().version, 1);
    writer
        .register("t-value", SchemaType::Avro, USER2, &[], false)
        .unwrap();
    // Within the TTL the cached answer stands; after it, the new version.
    assert_eq!(client.latest("t-value").unwrap().version, 1);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(client.latest("t-value").unwrap().version, 2);
}
