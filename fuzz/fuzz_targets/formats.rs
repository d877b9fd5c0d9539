//! Record bytes decoded as rows in JSON and DELIMITED, with a schema of
//! every kind of column: an error for what does not fit, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runnel_format::format::{CodecSpec, Format, RowCodec};
use runnel_format::schema::Column;
use runnel_format::types::SqlType;

fn codecs() -> &'static Vec<std::sync::Arc<dyn RowCodec>> {
    static CODECS: OnceLock<Vec<std::sync::Arc<dyn RowCodec>>> = OnceLock::new();
    CODECS.get_or_init(|| {
        let columns = vec![
            Column::new("B", SqlType::Boolean),
            Column::new("I", SqlType::Int),
            Column::new("L", SqlType::BigInt),
            Column::new("D", SqlType::Double),
            Column::new("N", SqlType::Decimal { precision: 10, scale: 2 }),
            Column::new("S", SqlType::String),
            Column::new("T", SqlType::Timestamp),
            Column::new("A", SqlType::Array(Box::new(SqlType::Int))),
            Column::new(
                "M",
                SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Double)),
            ),
        ];
        let scalars: Vec<Column> = columns.iter().take(7).cloned().collect();
        let spec = |columns| CodecSpec::new(columns, true);
        vec![
            Format::JSON.get().codec(&spec(&columns)),
            Format::DELIMITED.get().codec(&spec(&scalars)),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    for c in codecs() {
        if let Ok(row) = c.decode(data) {
            let _ = c.encode(&row);
        }
    }
});
