use super::*;
pub struct TableFn;
pub(super) fn register(_r: &mut FunctionRegistry) {}
