//! A report served as it is read. The vault's report is small and opened
//! whole; each dataset's export is stored in sealed parts (`systems.rs`)
//! and may be any length, so the parts are opened one at a time, as the
//! reader takes the chunks: whatever the person's rows, the server holds
//! about one part. Everything that can refuse the reader (who may see the
//! report, whether it exists, its audit entry) is settled before the
//! stream is made; what fails after that (a part that cannot be opened)
//! ends the stream with an error.

use super::stored::{self, SystemOutcome};
use super::systems::part_format;
use crate::error::Internal;
use crate::{App, AppError};
use custodian_policy::render::dataset_rows;
use custodian_vault::store::requests::RequestRecord;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::VecDeque;

/// A report, chunk by chunk: call [`ReportStream::next_chunk`] until it
/// gives `None`.
pub struct ReportStream {
    app: App,
    record: RequestRecord,
    steps: VecDeque<Step>,
    writer: Writer,
}

enum Step {
    Bytes(Vec<u8>),
    StartSystem(SystemOutcome),
    Part { dataset: String, n: u32 },
    EndSystem,
}

impl ReportStream {
    /// The report `vault` (as stored, opened) with each dataset's parts
    /// after it: JSON under `systems`, HTML as a section per dataset. Other
    /// formats, and reports of requests that reached no dataset, are the
    /// vault's report as it is.
    pub(super) fn new(
        app: &App,
        record: RequestRecord,
        format: &str,
        vault: Vec<u8>,
        systems: &[SystemOutcome],
    ) -> Result<ReportStream, AppError> {
        let (writer, steps) = plan(format, vault, systems).map_err(|()| {
            AppError::Corrupt(format!(
                "request_reports row {}, format {format}",
                record.id
            ))
        })?;
        Ok(ReportStream {
            app: app.clone(),
            record,
            steps,
            writer,
        })
    }

    /// The next chunk of the report, or `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, AppError> {
        while let Some(step) = self.steps.pop_front() {
            let chunk = match &step {
                Step::Part { dataset, n } => {
                    let format = part_format(dataset, *n);
                    let corrupt = || {
                        AppError::Corrupt(format!(
                            "request_reports row {}, format {format}",
                            self.record.id
                        ))
                    };
                    let sealed = self
                        .app
                        .store
                        .report(self.record.id, &format)
                        .await?
                        .ok_or_else(corrupt)?;
                    let bytes = stored::open_report(&self.app, &self.record, &format, &sealed)?;
                    self.writer
                        .write(step, Some(&bytes))
                        .map_err(|()| corrupt())?
                }
                _ => self
                    .writer
                    .write(step, None)
                    .map_err(|()| AppError::Internal(Internal::WriteFailed))?,
            };
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
        }
        Ok(None)
    }
}

/// The writer and the steps of a report: the vault's report, and for
/// each dataset its heading, its parts and its end.
fn plan(
    format: &str,
    vault: Vec<u8>,
    systems: &[SystemOutcome],
) -> Result<(Writer, VecDeque<Step>), ()> {
    let writer = match format {
        "json" if !systems.is_empty() => Writer::Json(Json::default()),
        "html" if !systems.is_empty() => Writer::Html(dataset_rows::Tables::default()),
        _ => Writer::Raw,
    };
    let mut steps = VecDeque::new();
    let Some((head, tail)) = writer.around(&vault)? else {
        steps.push_back(Step::Bytes(vault));
        return Ok((writer, steps));
    };
    steps.push_back(Step::Bytes(head));
    for s in systems {
        steps.push_back(Step::StartSystem(s.clone()));
        steps.extend((0..s.parts).map(|n| Step::Part {
            dataset: s.dataset.clone(),
            n,
        }));
        steps.push_back(Step::EndSystem);
    }
    steps.push_back(Step::Bytes(tail));
    Ok((writer, steps))
}

/// How the datasets' parts are written into a report: pure, so that the
/// assembled report can be checked without a store.
enum Writer {
    Raw,
    Json(Json),
    Html(dataset_rows::Tables),
}

#[derive(Default)]
struct Json {
    systems: usize,
    /// Segments written in the current system so far.
    segments: usize,
}

/// One segment of a stored part: a table's columns and some of its rows.
#[derive(Deserialize)]
struct Segment {
    table: String,
    columns: Vec<Column>,
    rows: Vec<Vec<Option<String>>>,
}

#[derive(Deserialize)]
struct Column {
    field: String,
    category: String,
}

impl Writer {
    /// What comes before the datasets and what after, from the vault's
    /// report; `None` for a report served as it is.
    #[allow(clippy::type_complexity)]
    fn around(&self, vault: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>, ()> {
        match self {
            Writer::Raw => Ok(None),
            Writer::Json(_) => {
                // The vault's object, with `systems` as its last member.
                let object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(vault).map_err(drop)?;
                let text = serde_json::to_string_pretty(&object).map_err(drop)?;
                let open = text.strip_suffix('}').ok_or(())?.trim_end();
                let comma = if object.is_empty() { "" } else { "," };
                let head = format!("{open}{comma}\n  \"systems\": [");
                Ok(Some((head.into_bytes(), b"\n  ]\n}".to_vec())))
            }
            Writer::Html(_) => {
                // The datasets' section ends the page's main content.
                let page = std::str::from_utf8(vault).map_err(drop)?;
                let end = page.rfind("</main>").ok_or(())?;
                let (before, after) = (page.get(..end).ok_or(())?, page.get(end..).ok_or(())?);
                let head = format!("{before}{}", dataset_rows::section_heading());
                Ok(Some((head.into_bytes(), after.as_bytes().to_vec())))
            }
        }
    }

    /// The bytes of one step; `part` is the opened part of a `Part` step.
    fn write(&mut self, step: Step, part: Option<&[u8]>) -> Result<Vec<u8>, ()> {
        match (step, part) {
            (Step::Bytes(bytes), _) => Ok(bytes),
            (Step::StartSystem(s), _) => self.start_system(&s),
            (Step::Part { .. }, Some(bytes)) => self.part(bytes),
            (Step::Part { .. }, None) => Err(()),
            (Step::EndSystem, _) => Ok(self.end_system()),
        }
    }

    fn start_system(&mut self, s: &SystemOutcome) -> Result<Vec<u8>, ()> {
        match self {
            Writer::Raw => Ok(Vec::new()),
            Writer::Json(j) => {
                let about =
                    serde_json::json!({"dataset": s.dataset, "system": s.system, "rows": s.rows})
                        .to_string();
                let open = about.strip_suffix('}').ok_or(())?;
                let comma = if j.systems == 0 { "" } else { "," };
                j.systems += 1;
                j.segments = 0;
                Ok(format!("{comma}\n    {open},\"tables\":[").into_bytes())
            }
            Writer::Html(_) => {
                Ok(dataset_rows::dataset_heading(&s.dataset, &s.system, s.rows).into_bytes())
            }
        }
    }

    /// A part (a JSON array of segments), written; `Err` if it is not one.
    fn part(&mut self, bytes: &[u8]) -> Result<Vec<u8>, ()> {
        match self {
            Writer::Raw => Ok(Vec::new()),
            Writer::Json(j) => {
                // Checked whole without being held as values, then copied.
                let segments: Vec<IgnoredAny> = serde_json::from_slice(bytes).map_err(drop)?;
                let text = std::str::from_utf8(bytes).map_err(drop)?.trim();
                let inner = text
                    .strip_prefix('[')
                    .and_then(|t| t.strip_suffix(']'))
                    .ok_or(())?
                    .trim();
                if segments.is_empty() {
                    return Ok(Vec::new());
                }
                let comma = if j.segments == 0 { "" } else { "," };
                j.segments += segments.len();
                Ok(format!("{comma}\n      {inner}").into_bytes())
            }
            Writer::Html(tables) => {
                let segments: Vec<Segment> = serde_json::from_slice(bytes).map_err(drop)?;
                let mut out = String::with_capacity(bytes.len() * 2);
                for s in &segments {
                    let columns: Vec<(String, String)> = s
                        .columns
                        .iter()
                        .map(|c| (c.field.clone(), c.category.clone()))
                        .collect();
                    tables.segment(
                        &s.table,
                        &columns,
                        s.rows.iter().map(Vec::as_slice),
                        &mut out,
                    );
                }
                Ok(out.into_bytes())
            }
        }
    }

    fn end_system(&mut self) -> Vec<u8> {
        match self {
            Writer::Raw => Vec::new(),
            Writer::Json(_) => b"]}".to_vec(),
            Writer::Html(tables) => {
                let mut out = String::new();
                tables.close(&mut out);
                out.into_bytes()
            }
        }
    }
}

#[cfg(test)]
#[path = "report_stream_tests.rs"]
mod tests;
