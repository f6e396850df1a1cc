//! tokio-postgres as a [`Conn`] (feature `native`): the scan worker and the database tests run the
//! same statements as the components.

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Error};

use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::value::{Cell, Param, Row};

impl Conn for Client {
    async fn query(
        &self,
        context: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>> {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = Client::query(self, sql, &refs)
            .await
            .map_err(|e| error(context, &e))?;
        rows.iter().map(|r| row(context, r)).collect()
    }

    async fn execute(&self, context: &'static str, sql: &str, params: Vec<Param>) -> Result<u64> {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        Client::execute(self, sql, &refs)
            .await
            .map_err(|e| error(context, &e))
    }

    async fn control(&self, sql: &'static str) -> Result<()> {
        self.batch_execute(sql).await.map_err(|e| error(sql, &e))
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        fn typed<T: ToSql>(
            v: &T,
            ty: &Type,
            out: &mut BytesMut,
        ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            if !T::accepts(ty) {
                return Err(format!(
                    "a {} parameter for a {ty} placeholder",
                    std::any::type_name::<T>()
                )
                .into());
            }
            v.to_sql(ty, out)
        }
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Bool(b) => typed(b, ty, out),
            Param::Int32(n) => typed(n, ty, out),
            Param::Int64(n) => typed(n, ty, out),
            Param::Text(s) => typed(s, ty, out),
            Param::Uuid(u) => typed(u, ty, out),
            Param::Jsonb(v) => typed(v, ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`: the variant's own type decides.
        true
    }

    to_sql_checked!();
}

fn row(context: &'static str, r: &tokio_postgres::Row) -> Result<Row> {
    let mut cells = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let bad = |e: Error| StoreError::decode(context, format!("column {i}: {e}"));
        let ty = col.type_();
        let cell = if *ty == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)
                .map_err(bad)?
                .map(Cell::Bool)
        } else if *ty == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)
                .map_err(bad)?
                .map(|n| Cell::Int(n.into()))
        } else if *ty == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)
                .map_err(bad)?
                .map(|n| Cell::Int(n.into()))
        } else if *ty == Type::INT8 {
            r.try_get::<_, Option<i64>>(i).map_err(bad)?.map(Cell::Int)
        } else if *ty == Type::UUID {
            r.try_get::<_, Option<uuid::Uuid>>(i)
                .map_err(bad)?
                .map(Cell::Uuid)
        } else if *ty == Type::JSON || *ty == Type::JSONB {
            r.try_get::<_, Option<serde_json::Value>>(i)
                .map_err(bad)?
                .map(Cell::Json)
        } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(ty) {
            r.try_get::<_, Option<String>>(i)
                .map_err(bad)?
                .map(Cell::Text)
        } else {
            // Statements cast anything else (`inet`, enums, timestamps) to text or an integer.
            return Err(StoreError::decode(
                context,
                format!("column {i}: unsupported type {ty}"),
            ));
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row::new(cells))
}

fn error(context: &'static str, e: &Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        return StoreError::Refused {
            context,
            sqlstate: Some(db.code().code().to_owned()),
            message: db.message().to_owned(),
        };
    }
    if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
        return StoreError::Unavailable {
            context,
            message: e.to_string(),
        };
    }
    StoreError::Refused {
        context,
        sqlstate: None,
        message: e.to_string(),
    }
}
