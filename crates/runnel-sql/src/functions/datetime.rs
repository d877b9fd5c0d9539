use super::*;

pub(super) fn register(_r: &mut FunctionRegistry) {}
