//! Reading text columns into domain values: each value is parsed once, when its row is read, and
//! a value the domain refuses is a corrupt row ([`StoreError::Corrupt`]) naming its table and
//! column.

use std::fmt::Display;

use tokio_postgres::Row;

use crate::StoreError;

/// Column `name` of a row of `table`, read through `parse`.
pub(crate) fn parsed<T, E: Display>(
    row: &Row,
    table: &str,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    let raw: &str = row.try_get(name).map_err(|e| corrupt(table, name, e))?;
    parse(raw).map_err(|e| corrupt(table, name, format!("{raw:?}: {e}")))
}

/// [`parsed`] for a column that may be NULL.
pub(crate) fn parsed_opt<T, E: Display>(
    row: &Row,
    table: &str,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, StoreError> {
    let raw: Option<&str> = row.try_get(name).map_err(|e| corrupt(table, name, e))?;
    raw.map(|raw| parse(raw).map_err(|e| corrupt(table, name, format!("{raw:?}: {e}"))))
        .transpose()
}

/// [`parsed`] for a text array column, element by element.
pub(crate) fn parsed_vec<T, E: Display>(
    row: &Row,
    table: &str,
    name: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, StoreError> {
    let raw: Vec<&str> = row.try_get(name).map_err(|e| corrupt(table, name, e))?;
    raw.into_iter()
        .map(|raw| parse(raw).map_err(|e| corrupt(table, name, format!("{raw:?}: {e}"))))
        .collect()
}

fn corrupt(table: &str, name: &str, detail: impl Display) -> StoreError {
    StoreError::Corrupt(format!("{table} column {name} {detail}"))
}
