//! One JSON object per line on stdout: `{"ts":<epoch ms>,"level","msg",...fields}`. Callers pass ids,
//! sizes, statuses and reasons; never a secret, a URL with credentials or a signature header.

use serde_json::{Map, Value};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The line for an event (exposed for tests).
pub fn line(level: &str, msg: &str, fields: Value) -> String {
    let mut obj = Map::new();
    obj.insert("ts".into(), now_ms().into());
    obj.insert("level".into(), level.into());
    obj.insert("msg".into(), msg.into());
    if let Value::Object(extra) = fields {
        for (k, v) in extra {
            obj.entry(k).or_insert(v);
        }
    }
    Value::Object(obj).to_string()
}

fn emit(level: &str, msg: &str, fields: Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(level, msg, fields));
}

pub fn info(msg: &str, fields: Value) {
    emit("info", msg, fields)
}

pub fn warn(msg: &str, fields: Value) {
    emit("warn", msg, fields)
}

pub fn error(msg: &str, fields: Value) {
    emit("error", msg, fields)
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_json_object_per_line() {
        let l = super::line(
            "info",
            "job.done",
            serde_json::json!({"job": "x", "msg": "ignored", "n": 1}),
        );
        assert!(!l.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(
            (
                v["level"].as_str(),
                v["msg"].as_str(),
                v["job"].as_str(),
                v["n"].as_i64()
            ),
            (Some("info"), Some("job.done"), Some("x"), Some(1))
        );
        assert!(v["ts"].as_i64().unwrap() > 1_600_000_000_000);
    }
}
