//! The values that cross between the store and a backend: statement parameters ([`Param`]) and result
//! cells ([`Cell`], [`Row`]). Each backend converts its own types to and from these, so the
//! statements and their row decoding are written once for both hosts.

use serde_json::Value;
use uuid::Uuid;

use crate::error::{Result, StoreError};

/// A statement parameter. The variant must match the type Postgres infers for the placeholder
/// (`int8` for [`Param::Int64`], `text` for [`Param::Text`], ...): tokio-postgres checks it, Spin's
/// host converts the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// SQL `NULL` (any type).
    Null,
    /// `boolean`.
    Bool(bool),
    /// `int4`.
    Int32(i32),
    /// `int8`.
    Int64(i64),
    /// `text` / `varchar`.
    Text(String),
    /// `uuid`.
    Uuid(Uuid),
    /// `jsonb`.
    Jsonb(Value),
}

impl Param {
    /// `text`, or `NULL` for `None`.
    pub fn opt_text(v: Option<&str>) -> Self {
        v.map_or(Self::Null, |s| Self::Text(s.to_owned()))
    }

    /// `uuid`, or `NULL` for `None`.
    pub fn opt_uuid(v: Option<Uuid>) -> Self {
        v.map_or(Self::Null, Self::Uuid)
    }
}

impl From<Uuid> for Param {
    fn from(u: Uuid) -> Self {
        Self::Uuid(u)
    }
}

impl From<&auth_core::TenantId> for Param {
    fn from(t: &auth_core::TenantId) -> Self {
        Self::Uuid(*t.as_uuid())
    }
}

impl From<&auth_core::UserId> for Param {
    fn from(u: &auth_core::UserId) -> Self {
        Self::Uuid(*u.as_uuid())
    }
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for Param {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<i64> for Param {
    fn from(n: i64) -> Self {
        Self::Int64(n)
    }
}

impl From<i32> for Param {
    fn from(n: i32) -> Self {
        Self::Int32(n)
    }
}

impl From<bool> for Param {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// One result cell, as the backend delivered it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL `NULL`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// `text`, `varchar`, `name`, enums cast to text.
    Text(String),
    /// `uuid`.
    Uuid(Uuid),
    /// `json` / `jsonb`.
    Json(Value),
    /// `inet`, `bytea` and anything else the statements select only as text.
    Other(String),
}

/// One result row; columns by position (each statement fixes its column order).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    cells: Vec<Cell>,
}

impl Row {
    /// A row of these cells.
    pub fn new(cells: Vec<Cell>) -> Self {
        Self { cells }
    }

    fn cell(&self, i: usize) -> Result<&Cell> {
        self.cells
            .get(i)
            .ok_or_else(|| StoreError::decode("row", format!("no column {i}")))
    }

    fn wrong(i: usize, want: &str, got: &Cell) -> StoreError {
        StoreError::decode("row", format!("column {i}: want {want}, got {got:?}"))
    }

    /// A `uuid` column (never `NULL`).
    pub fn uuid(&self, i: usize) -> Result<Uuid> {
        self.opt_uuid(i)?
            .ok_or_else(|| Self::wrong(i, "uuid", &Cell::Null))
    }

    /// A nullable `uuid` column.
    pub fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Uuid(u) => Ok(Some(*u)),
            Cell::Text(s) => Uuid::try_parse(s)
                .map(Some)
                .map_err(|_| Self::wrong(i, "uuid", &Cell::Text(s.clone()))),
            other => Err(Self::wrong(i, "uuid", other)),
        }
    }

    /// A text column (never `NULL`); a `uuid` reads as its hyphenated form.
    pub fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| Self::wrong(i, "text", &Cell::Null))
    }

    /// A nullable text column.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(s) | Cell::Other(s) => Ok(Some(s.clone())),
            Cell::Uuid(u) => Ok(Some(u.hyphenated().to_string())),
            other => Err(Self::wrong(i, "text", other)),
        }
    }

    /// An integer column (never `NULL`).
    pub fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| Self::wrong(i, "integer", &Cell::Null))
    }

    /// A nullable integer column.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            other => Err(Self::wrong(i, "integer", other)),
        }
    }

    /// A `boolean` column (never `NULL`).
    pub fn bool(&self, i: usize) -> Result<bool> {
        match self.cell(i)? {
            Cell::Bool(b) => Ok(*b),
            other => Err(Self::wrong(i, "boolean", other)),
        }
    }

    /// A nullable `json`/`jsonb` column.
    pub fn opt_json(&self, i: usize) -> Result<Option<Value>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Json(v) => Ok(Some(v.clone())),
            Cell::Text(s) => serde_json::from_str(s)
                .map(Some)
                .map_err(|_| Self::wrong(i, "json", &Cell::Text(s.clone()))),
            other => Err(Self::wrong(i, "json", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_decode_by_position_and_refuse_the_wrong_type() {
        let id = Uuid::from_u128(7);
        let row = Row::new(vec![
            Cell::Uuid(id),
            Cell::Text(id.hyphenated().to_string()),
            Cell::Null,
            Cell::Int(42),
            Cell::Bool(true),
            Cell::Json(serde_json::json!({"a": 1})),
        ]);
        assert_eq!(row.uuid(0).unwrap(), id);
        assert_eq!(row.uuid(1).unwrap(), id);
        assert_eq!(row.text(0).unwrap(), id.hyphenated().to_string());
        assert_eq!(row.opt_text(2).unwrap(), None);
        assert_eq!(row.opt_int(2).unwrap(), None);
        assert_eq!(row.int(3).unwrap(), 42);
        assert!(row.bool(4).unwrap());
        assert_eq!(row.opt_json(5).unwrap().unwrap()["a"], 1);

        assert!(row.int(2).is_err(), "NULL is not an integer");
        assert!(row.text(3).is_err(), "an integer is not text");
        assert!(row.bool(2).is_err());
        assert!(row.uuid(6).is_err(), "no such column");
        let e = row.uuid(3).unwrap_err();
        assert!(matches!(e, StoreError::Decode { .. }));
    }

    #[test]
    fn a_malformed_uuid_text_is_a_decode_error() {
        let row = Row::new(vec![Cell::Text("not-a-uuid".into())]);
        assert!(row.uuid(0).is_err());
    }
}
