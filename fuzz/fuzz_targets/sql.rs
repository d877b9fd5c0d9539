//! Statement text through the ksqlDB-dialect lexer and parser: a parse
//! error with a position inside the text for what is not SQL, never a panic
//! or a runaway (deep nesting included).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count() as u32;
    match runnel_sql::parser::parse(text) {
        Ok(statements) => {
            // Each statement parses on its own too (the REST API splits
            // a request into statements and reports each by position).
            for s in statements {
                if let Err(e) = runnel_sql::parser::parse_one(&s.text) {
                    panic!("statement {:?} parsed in a script, not alone: {e}", s.text);
                }
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}: {e}", e.line);
            assert!(e.col >= 1, "column {}: {e}", e.col);
        }
    }
    if let Err(e) = runnel_sql::parser::parse_expr(text) {
        assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}: {e}", e.line);
    }
});
