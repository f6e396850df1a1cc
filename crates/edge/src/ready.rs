//! The readiness answer (`GET /health/ready`): which dependencies answered, as a `200` document or
//! a `503 not_ready` problem naming the ones that did not. Only names and up/down: never an address,
//! a credential or an error text (those go to the log).

use problem::{Code, Problem};
use serde_json::{Map, Value, json};

/// What one dependency's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `database`, `redis` or `storage`.
    pub name: &'static str,
    /// `Err(cause)` when it did not answer as it should; the cause is for the log only.
    pub outcome: Result<(), String>,
}

/// `Ok({"status":"ready","checks":{name:"up",...}})` when every check passed, else the problem
/// naming every dependency that is down.
pub fn answer(checks: &[Check]) -> Result<Value, Problem> {
    let down: Vec<&str> = checks
        .iter()
        .filter(|c| c.outcome.is_err())
        .map(|c| c.name)
        .collect();
    if down.is_empty() {
        let mut m = Map::new();
        for c in checks {
            m.insert(c.name.to_owned(), "up".into());
        }
        return Ok(json!({"status": "ready", "checks": m}));
    }
    Err(Problem::new(Code::NotReady).detail(format!("not ready: {} unreachable", down.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &'static str, up: bool) -> Check {
        Check {
            name,
            outcome: if up {
                Ok(())
            } else {
                Err("redis open: connection refused at 10.0.0.1 with password hunter2".into())
            },
        }
    }

    #[test]
    fn ready_when_all_answer() {
        let v = answer(&[
            check("database", true),
            check("redis", true),
            check("storage", true),
        ])
        .unwrap();
        assert_eq!(
            v,
            json!({"status": "ready", "checks": {"database": "up", "redis": "up", "storage": "up"}})
        );
    }

    #[test]
    fn names_what_is_down_and_nothing_else() {
        let p = answer(&[
            check("database", true),
            check("redis", false),
            check("storage", false),
        ])
        .unwrap_err();
        assert_eq!((p.status(), p.code()), (503, Code::NotReady));
        assert_eq!(p.detail_text(), "not ready: redis, storage unreachable");
        // The cause (addresses, credentials) stays in the log.
        assert!(!p.detail_text().contains("10.0.0.1") && !p.detail_text().contains("hunter2"));
    }
}
