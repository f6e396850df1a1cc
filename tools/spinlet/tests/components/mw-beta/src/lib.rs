//! Fixture middleware `beta`; the behaviour is shared with its sibling (see ../../mw_common.rs).
const NAME: &str = "beta";
include!("../../mw_common.rs");
