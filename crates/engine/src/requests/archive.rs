//! The portability archive (Art. 20), streamed: the vault's `data.json`
//! and `data.csv`, then each dataset's export part by part, as
//! `datasets/<dataset>/part-<n>.json` and `.csv`. The archive is written as
//! it is read, one part (about a megabyte) at a time, so a person with a
//! million rows in a shop database does not bring the export into memory.

use super::register::{Asker, open_checked};
use super::stored;
use super::systems::part_format;
use super::work::{TAR_END, csv_cell, tar_entry};
use crate::{App, AppError};
use custodian_vault::store::requests::RequestRecord;
use std::borrow::Cow;
use std::collections::VecDeque;
use time::OffsetDateTime;
use uuid::Uuid;

/// The largest piece handed out at once. The HTTP layer queues a few
/// pieces per connection before it waits for the client, so a piece the
/// size of a whole part would let a slow reader hold many parts here.
pub const CHUNK: usize = 64 << 10;

/// An archive being written: call [`Archive::next_chunk`] until it says
/// there is no more.
pub struct Archive {
    app: App,
    record: RequestRecord,
    /// What is read and not yet sent, from `at` on.
    pending: Vec<u8>,
    at: usize,
    /// The parts still to write: (dataset, part number).
    parts: VecDeque<(String, u32)>,
    /// Rows written so far per dataset, to number the CSV's rows.
    rows: u64,
    last_dataset: Option<String>,
    done: bool,
}

/// Opens the archive of request `id`: the same checks and audit as any
/// report, then the parts are read as the archive is written.
pub async fn archive(
    app: &App,
    asker: Asker<'_>,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<Archive, AppError> {
    let (r, mut vault) = open_checked(app, asker, id, "archive", now).await?;
    let parts: VecDeque<(String, u32)> = r
        .meta
        .outcome
        .iter()
        .flat_map(|o| o.systems.iter())
        .flat_map(|s| (0..s.parts).map(|n| (s.dataset.clone(), n)))
        .collect();
    // The vault's archive ends with the end blocks; they move to the end.
    let body = vault.len().checked_sub(TAR_END);
    let ends_well = body
        .and_then(|b| vault.get(b..))
        .is_some_and(|end| end.iter().all(|b| *b == 0));
    match body {
        Some(b) if ends_well => vault.truncate(b),
        _ => {
            return Err(AppError::Corrupt(format!(
                "request_reports row {id}, format archive: no end of archive"
            )));
        }
    }
    Ok(Archive {
        app: app.clone(),
        record: r.record,
        pending: vault,
        at: 0,
        parts,
        rows: 0,
        last_dataset: None,
        done: false,
    })
}

/// A dataset id as a file name: safe characters only, short enough for
/// the tar header's name field with the rest of the path.
fn file_name(dataset: &str) -> String {
    dataset
        .chars()
        .map(|c| {
            // No dot: `..` would climb out of the folder on extraction.
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect()
}

/// A segment of a stored part, read without copying its text where it
/// has no escapes: a part is about a megabyte, and only one is in hand.
#[derive(serde::Deserialize)]
pub struct Segment<'a> {
    #[serde(borrow)]
    table: Cow<'a, str>,
    #[serde(borrow)]
    columns: Vec<Column<'a>>,
    #[serde(borrow)]
    rows: Vec<Vec<Option<Cow<'a, str>>>>,
}

#[derive(serde::Deserialize)]
struct Column<'a> {
    #[serde(borrow)]
    field: Cow<'a, str>,
    #[serde(borrow)]
    category: Cow<'a, str>,
}

/// One part's segments (`[{table, columns: [{field, category}], rows}]`) as
/// CSV rows of `dataset,table,row,field,category,value` appended to `out`,
/// one per value; `row` counts on from `first`. Returns the rows seen.
pub fn part_csv(dataset: &str, part: &[Segment<'_>], first: u64, out: &mut String) -> u64 {
    let mut n = first;
    for segment in part {
        for row in &segment.rows {
            n += 1;
            let row_number = n.to_string();
            for (column, value) in segment.columns.iter().zip(row) {
                let Some(value) = value else { continue };
                let cells = [
                    dataset,
                    &segment.table,
                    &row_number,
                    &column.field,
                    &column.category,
                    value,
                ];
                out.push_str(&cells.map(csv_cell).join(","));
                out.push('\n');
            }
        }
    }
    n - first
}

impl Archive {
    /// The next piece of the archive (at most [`CHUNK`] bytes), or None
    /// once it is whole.
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, AppError>> {
        loop {
            if let Some(piece) = self.pending.get(self.at..) {
                if !piece.is_empty() {
                    let piece = piece.get(..CHUNK).unwrap_or(piece).to_vec();
                    self.at += piece.len();
                    return Some(Ok(piece));
                }
            }
            if self.done {
                return None;
            }
            self.at = 0;
            self.pending = match self.parts.pop_front() {
                Some((dataset, n)) => match self.part(&dataset, n).await {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        self.done = true;
                        self.pending.clear();
                        return Some(Err(e));
                    }
                },
                None => {
                    self.done = true;
                    vec![0u8; TAR_END]
                }
            };
        }
    }

    async fn part(&mut self, dataset: &str, n: u32) -> Result<Vec<u8>, AppError> {
        let id = self.record.id;
        let format = part_format(dataset, n);
        let corrupt = || AppError::Corrupt(format!("request_reports row {id}, format {format}"));
        let sealed = self
            .app
            .store
            .report(id, &format)
            .await?
            .ok_or_else(corrupt)?;
        let bytes = stored::open_report(&self.app, &self.record, &format, &sealed)?;
        drop(sealed);
        if self.last_dataset.as_deref() != Some(dataset) {
            self.last_dataset = Some(dataset.to_string());
            self.rows = 0;
        }
        let mut csv = String::from("dataset,table,row,field,category,value\n");
        {
            let part: Vec<Segment<'_>> = serde_json::from_slice(&bytes).map_err(|_| corrupt())?;
            self.rows += part_csv(dataset, &part, self.rows, &mut csv);
        }
        let base = format!("datasets/{}/part-{n}", file_name(dataset));
        let mut out = tar_entry(&format!("{base}.json"), &bytes);
        drop(bytes);
        out.extend(tar_entry(&format!("{base}.csv"), csv.as_bytes()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_part_becomes_one_csv_row_per_value_numbered_on() {
        let text = json!([{
            "table": "customers",
            "columns": [{"field": "email", "category": "email"}, {"field": "name", "category": "name"}],
            "rows": [["a@x.org", null], ["b@x.org", "=B \"q\""]],
        }])
        .to_string();
        let part: Vec<super::Segment<'_>> = serde_json::from_str(&text).unwrap();
        let mut csv = String::new();
        let rows = super::part_csv("shop", &part, 3, &mut csv);
        assert_eq!(rows, 2);
        assert_eq!(
            csv,
            "shop,customers,4,email,email,a@x.org\nshop,customers,5,email,email,b@x.org\nshop,customers,5,name,name,\"'=B \"\"q\"\"\"\n"
        );
    }

    #[test]
    fn dataset_ids_become_safe_file_names() {
        assert_eq!(super::file_name("shop/../x y"), "shop____x_y");
        assert_eq!(super::file_name(".."), "__");
        assert_eq!(super::file_name(&"a".repeat(99)).len(), 48);
    }
}
