//! Keyset paging from a query string: `limit` (1..=max, a default when absent) and `before`, the
//! opaque cursor a previous page answered (`nextBefore`), parsed into the listing's own cursor type.
//! Other parameters are ignored, as most APIs do; a bad `limit` or cursor is `400 bad_request`.

use std::str::FromStr;

use problem::Problem;

use crate::ApiError;

/// One page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging<K> {
    /// How many rows at most.
    pub limit: u32,
    /// Start strictly after this position; `None` for the first page.
    pub before: Option<K>,
}

impl<K: FromStr> Paging<K> {
    /// Reads `limit` (default `default_limit`, at most `max_limit`) and `before` from `query`;
    /// when a parameter is repeated, the last one counts.
    pub fn from_query(
        query: Option<&str>,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<Self, ApiError> {
        let mut paging = Self {
            limit: default_limit,
            before: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "limit" => {
                    paging.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=max_limit).contains(n))
                        .ok_or_else(|| {
                            ApiError::new(Problem::bad_request(format!(
                                "limit must be 1..={max_limit}."
                            )))
                        })?;
                }
                "before" => {
                    paging.before = Some(v.parse().map_err(|_| {
                        ApiError::new(Problem::bad_request("before must be a nextBefore cursor."))
                    })?);
                }
                _ => {}
            }
        }
        Ok(paging)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: Option<&str>) -> Result<Paging<u64>, ApiError> {
        Paging::from_query(q, 50, 200)
    }

    #[test]
    fn defaults_bounds_and_cursor() {
        assert_eq!(
            parse(None).unwrap(),
            Paging {
                limit: 50,
                before: None
            }
        );
        assert_eq!(
            parse(Some("")).unwrap(),
            Paging {
                limit: 50,
                before: None
            }
        );
        assert_eq!(
            parse(Some("limit=2&before=17&x=y&flag")).unwrap(),
            Paging {
                limit: 2,
                before: Some(17)
            }
        );
        assert_eq!(parse(Some("limit=200")).unwrap().limit, 200);
        assert_eq!(
            parse(Some("limit=1&limit=3")).unwrap().limit,
            3,
            "the last one counts"
        );
    }

    #[test]
    fn a_bad_limit_or_cursor_is_400() {
        for bad in [
            "limit=0",
            "limit=201",
            "limit=x",
            "limit=",
            "limit=-1",
            "before=abc",
            "before=",
        ] {
            let e = parse(Some(bad)).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
            assert_eq!(e.problem().code(), problem::Code::BadRequest, "{bad}");
        }
    }
}
