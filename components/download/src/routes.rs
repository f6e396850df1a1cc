//! One module per route (see the table in the crate docs).

pub(crate) mod file;
pub(crate) mod issue_url;
pub(crate) mod ready;
pub(crate) mod revoke_urls;
