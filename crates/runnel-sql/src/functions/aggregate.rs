use super::*;
pub struct AggFn;
pub(super) fn register(_r: &mut FunctionRegistry) {}
