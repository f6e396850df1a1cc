//! Fixture middleware `alpha`; the behaviour is shared with its sibling (see ../../mw_common.rs).
const NAME: &str = "alpha";
include!("../../mw_common.rs");
