//! The portability archive (Art. 20), streamed: the vault's `data.json`
//! and `data.csv`, then each dataset's export part by part, as
//! `datasets/<dataset>/part-<n>.json` and `.csv`. The archive is written as
//! it is read, one part (about a megabyte) at a time, so a person with a
//! million rows in a shop database does not bring the export into memory.

use super::register::{Asker, report};
use super::stored::{self, Request};
use super::systems::part_format;
use super::work::{TAR_END, csv_cell, tar_entry};
use crate::{App, AppError};
use custodian_vault::store::requests::RequestRecord;
use std::collections::VecDeque;
use time::OffsetDateTime;
use uuid::Uuid;

/// An archive being written: call [`Archive::next_chunk`] until it says
/// there is no more.
pub struct Archive {
    app: App,
    record: RequestRecord,
    head: Option<Vec<u8>>,
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
    let mut vault = report(app, asker, id, "archive", now).await?;
    let record = app
        .store
        .request(id)
        .await?
        .ok_or_else(|| AppError::NotFound("no request with this id".into()))?;
    let r = Request::from_record(record)?;
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
        head: Some(vault),
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

/// One part's segments (`[{table, columns: [{field, category}], rows}]`) as
/// CSV rows of `dataset,table,row,field,category,value`, one per value;
/// `row` counts on from `first`. Returns the text and the rows seen.
pub fn part_csv(dataset: &str, part: &[serde_json::Value], first: u64) -> (String, u64) {
    let mut out = String::new();
    let mut n = first;
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for segment in part {
        let table = text(segment, "table");
        let columns: Vec<(String, String)> = segment
            .get("columns")
            .and_then(serde_json::Value::as_array)
            .map(|c| {
                c.iter()
                    .map(|c| (text(c, "field"), text(c, "category")))
                    .collect()
            })
            .unwrap_or_default();
        let rows = segment.get("rows").and_then(serde_json::Value::as_array);
        for row in rows.into_iter().flatten() {
            n += 1;
            let values = row.as_array().map(Vec::as_slice).unwrap_or_default();
            for ((field, category), value) in columns.iter().zip(values) {
                let Some(value) = value.as_str() else {
                    continue;
                };
                let row_number = n.to_string();
                let cells = [dataset, &table, &row_number, field, category, value];
                out.push_str(&cells.map(csv_cell).join(","));
                out.push('\n');
            }
        }
    }
    (out, n - first)
}

impl Archive {
    /// The next piece of the archive, or None once it is whole.
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, AppError>> {
        if let Some(head) = self.head.take() {
            return Some(Ok(head));
        }
        if self.done {
            return None;
        }
        let Some((dataset, n)) = self.parts.pop_front() else {
            self.done = true;
            return Some(Ok(vec![0u8; TAR_END]));
        };
        Some(self.part(&dataset, n).await)
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
        let part: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|_| corrupt())?;
        if self.last_dataset.as_deref() != Some(dataset) {
            self.last_dataset = Some(dataset.to_string());
            self.rows = 0;
        }
        let (csv, rows) = part_csv(dataset, &part, self.rows);
        self.rows += rows;
        let mut csv_file = String::from("dataset,table,row,field,category,value\n");
        csv_file.push_str(&csv);
        let base = format!("datasets/{}/part-{n}", file_name(dataset));
        let mut out = tar_entry(&format!("{base}.json"), &bytes);
        out.extend(tar_entry(&format!("{base}.csv"), csv_file.as_bytes()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_part_becomes_one_csv_row_per_value_numbered_on() {
        let part = vec![json!({
            "table": "customers",
            "columns": [{"field": "email", "category": "email"}, {"field": "name", "category": "name"}],
            "rows": [["a@x.org", null], ["b@x.org", "=B"]],
        })];
        let (csv, rows) = super::part_csv("shop", &part, 3);
        assert_eq!(rows, 2);
        assert_eq!(
            csv,
            "shop,customers,4,email,email,a@x.org\nshop,customers,5,email,email,b@x.org\nshop,customers,5,name,name,'=B\n"
        );
    }

    #[test]
    fn dataset_ids_become_safe_file_names() {
        assert_eq!(super::file_name("shop/../x y"), "shop____x_y");
        assert_eq!(super::file_name(".."), "__");
        assert_eq!(super::file_name(&"a".repeat(99)).len(), 48);
    }
}
