//! Writing many rows at once: a large batch goes through `COPY ... FROM STDIN (FORMAT
//! binary)`, a small one through multi-row `INSERT` statements.
//!
//! `COPY` streams rows in PostgreSQL's binary format with no statement per row and no text
//! parsing: it is what makes an import of a million accounts or a job of half a million grants
//! a few seconds of transfer rather than that many round trips. Below [`COPY_ROWS`] rows its
//! fixed cost (a round trip to start it, another to end it) buys nothing, and a few multi-row
//! inserts do the same. Either way the rows land in the caller's transaction. Nothing here
//! decides what a row holds; the callers do.

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::transaction::{Db, Tx};
use tailor_store::StoreError;

/// Rows from which a batch is copied rather than inserted.
pub(crate) const COPY_ROWS: usize = 1_000;

/// Rows in one multi-row insert (PostgreSQL takes at most 65,535 parameters a statement).
const ROWS_PER_INSERT: usize = 256;

/// A row of one table, as written by [`insert`].
pub(crate) trait BulkRow: Sync {
    /// The table and its columns, as `COPY` and `INSERT` name them: `table (a, b, c)`.
    const TARGET: &'static str;
    /// The columns' types, in order (`COPY`'s binary format must match them exactly).
    const TYPES: &'static [Type];
    /// The row's values, in column order.
    fn values(&self) -> Vec<&(dyn ToSql + Sync)>;
}

/// Writes `rows` into `R`'s table: by `COPY` for a large batch, else by multi-row inserts.
pub(crate) async fn insert<R: BulkRow>(tx: &Tx<'_>, rows: &[R]) -> Result<(), StoreError> {
    if rows.len() >= COPY_ROWS {
        copy(tx, rows).await
    } else {
        insert_values(tx, rows).await
    }
}

/// Streams `rows` with one binary `COPY`.
pub(crate) async fn copy<R: BulkRow>(tx: &Tx<'_>, rows: &[R]) -> Result<(), StoreError> {
    let sql = format!("COPY {} FROM STDIN (FORMAT binary)", R::TARGET);
    let sink = tx.copy_in(&sql).await.db()?;
    let writer = BinaryCopyInWriter::new(sink, R::TYPES);
    let mut writer = std::pin::pin!(writer);
    for row in rows {
        writer.as_mut().write(&row.values()).await.db()?;
    }
    writer.as_mut().finish().await.db()?;
    Ok(())
}

async fn insert_values<R: BulkRow>(tx: &Tx<'_>, rows: &[R]) -> Result<(), StoreError> {
    let columns = R::TYPES.len();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO {} VALUES {}",
            R::TARGET,
            groups(columns, chunk.len())
        );
        let values: Vec<&(dyn ToSql + Sync)> = chunk.iter().flat_map(BulkRow::values).collect();
        tx.execute(sql.as_str(), &values).await.db()?;
    }
    Ok(())
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` parameters.
fn groups(columns: usize, rows: usize) -> String {
    (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=columns)
                .map(|column| format!("${}", row * columns + column))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_number_parameters_row_by_row() {
        assert_eq!(groups(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(groups(3, 1), "($1, $2, $3)");
    }
}
