//! The one shape of every report: columns, one row per group and the `all` row, each cell a
//! figure or `None`, and the list of cells hidden by disclosure control. A report is drafted
//! with every figure, then [`Draft::protect`] hides what may not be shown.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::disclosure::{protect, Line, SHOWN_FROM};
use super::{Dimension, Period};
use crate::translate::instruments::Instrument;

/// The group key of the row of all groups together (always the last row).
pub const TOTAL_GROUP: &str = "all";

/// A shown figure: a count, or a derived number (a mean, a median, a share).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Figure {
    Count(u64),
    Number(f64),
}

/// A column of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The key in JSON, the heading in CSV (`received`, `wemwbs-total.mean_change`).
    pub key: String,
    /// What a person reads.
    pub label: String,
}

/// One group's figures, in column order; `None` is suppressed (listed in `Table::suppressed`)
/// or not applicable (a mean over nobody).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub group: String,
    pub label: String,
    pub values: Vec<Option<Figure>>,
}

/// A cell hidden by disclosure control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuppressedCell {
    pub group: String,
    pub column: String,
}

/// A report, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `referrals` or `wellbeing`.
    pub report: &'static str,
    pub period: Period,
    pub by: Dimension,
    pub instrument: Option<Instrument>,
    pub columns: Vec<Column>,
    /// One row per group, then the [`TOTAL_GROUP`] row.
    pub rows: Vec<Row>,
    pub suppressed: Vec<SuppressedCell>,
}

impl Table {
    /// The figure of `group` in `column`, if shown.
    pub fn value(&self, group: &str, column: &str) -> Option<Figure> {
        let c = self.columns.iter().position(|c| c.key == column)?;
        let row = self.rows.iter().find(|r| r.group == group)?;
        row.values.get(c).copied().flatten()
    }

    /// The JSON the API answers with.
    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let values: Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(&row.values)
                    .map(|(column, value)| (column.key.clone(), json!(value)))
                    .collect();
                json!({"group": row.group, "label": row.label, "values": values})
            })
            .collect();
        let mut body = json!({
            "report": self.report,
            "from": self.period.from().to_string(),
            "to": self.period.to().to_string(),
            "by": self.by.as_str(),
            "columns": self.columns,
            "rows": rows,
            "suppressed": self.suppressed,
        });
        if let Some(instrument) = self.instrument {
            body["instrument"] = json!(instrument.as_str());
        }
        body
    }

    /// The CSV the API answers with `Accept: text/csv`: a heading row (`group`, `label`, then
    /// the column keys), then one row per group; a suppressed or inapplicable cell is empty.
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut heading = vec!["group".to_string(), "label".to_string()];
        heading.extend(self.columns.iter().map(|c| c.key.clone()));
        writer.write_record(&heading)?;
        for row in &self.rows {
            let mut record = vec![row.group.clone(), row.label.clone()];
            record.extend(row.values.iter().map(|v| match v {
                Some(Figure::Count(n)) => n.to_string(),
                Some(Figure::Number(x)) => x.to_string(),
                None => String::new(),
            }));
            writer.write_record(&record)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// How a column's cells are protected.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A count: its groups add up to its `all` cell. With `part_of`, the count is a part of
    /// that column's count in the same row (a decline reason of the declined count): the parts
    /// of a column add up to it.
    Count { part_of: Option<usize> },
    /// A number derived from the people counted in the `basis` columns (a mean over them, a
    /// share of them): hidden when any basis cell is hidden or counts 1 to 4.
    Derived { basis: Vec<usize> },
}

/// A cell before protection: a count, or a derived number (`None`: not applicable).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum DraftCell {
    Count(u64),
    Number(Option<f64>),
}

/// A report with every figure, before disclosure control.
pub(crate) struct Draft {
    pub columns: Vec<(Column, Kind)>,
    /// Rows of groups then the `all` row, each with one cell per column.
    pub rows: Vec<(String, String, Vec<DraftCell>)>,
}

fn count_of(cell: DraftCell) -> u64 {
    match cell {
        DraftCell::Count(n) => n,
        DraftCell::Number(_) => 0,
    }
}

impl Draft {
    /// Applies primary and secondary suppression to the counts (`disclosure::protect`), then
    /// hides every derived figure whose basis is hidden or under 5.
    pub fn protect(
        self,
        report: &'static str,
        period: Period,
        by: Dimension,
        instrument: Option<Instrument>,
    ) -> Table {
        let width = self.columns.len();
        let height = self.rows.len();
        let index = |row: usize, col: usize| row * width + col;
        let values: Vec<u64> = self
            .rows
            .iter()
            .flat_map(|(_, _, cells)| cells.iter().map(|&c| count_of(c)))
            .collect();
        let total_row = height.saturating_sub(1);
        let mut lines = Vec::new();
        for (col, (_, kind)) in self.columns.iter().enumerate() {
            if let Kind::Count { part_of } = kind {
                lines.push(Line {
                    members: (0..total_row).map(|row| index(row, col)).collect(),
                    total: index(total_row, col),
                });
                if let Some(parent) = part_of {
                    // Each row's parts of `parent`, added once per parent, by its first part.
                    let parts: Vec<usize> = self
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, k))| matches!(k, Kind::Count { part_of: Some(p) } if p == parent))
                        .map(|(c, _)| c)
                        .collect();
                    if parts.first() == Some(&col) {
                        for row in 0..height {
                            lines.push(Line {
                                members: parts.iter().map(|&c| index(row, c)).collect(),
                                total: index(row, *parent),
                            });
                        }
                    }
                }
            }
        }
        // Only count cells take part; a derived cell has value 0 and no line.
        let hidden = protect(&values, &lines);
        let mut suppressed = Vec::new();
        let mut rows = Vec::with_capacity(height);
        for (r, (group, label, cells)) in self.rows.into_iter().enumerate() {
            let mut shown = Vec::with_capacity(width);
            for (c, cell) in cells.iter().enumerate() {
                let (column, kind) = &self.columns[c];
                let hide = match kind {
                    Kind::Count { .. } => hidden[index(r, c)].is_some(),
                    Kind::Derived { basis } => {
                        matches!(cell, DraftCell::Number(Some(_)))
                            && basis.iter().any(|&b| {
                                let n = values[index(r, b)];
                                hidden[index(r, b)].is_some() || (1..SHOWN_FROM).contains(&n)
                            })
                    }
                };
                if hide {
                    suppressed.push(SuppressedCell {
                        group: group.clone(),
                        column: column.key.clone(),
                    });
                    shown.push(None);
                } else {
                    shown.push(match *cell {
                        DraftCell::Count(n) => Some(Figure::Count(n)),
                        DraftCell::Number(x) => x.map(Figure::Number),
                    });
                }
            }
            rows.push(Row {
                group,
                label,
                values: shown,
            });
        }
        Table {
            report,
            period,
            by,
            instrument,
            columns: self.columns.into_iter().map(|(c, _)| c).collect(),
            rows,
            suppressed,
        }
    }
}

/// Rounds a derived figure for publication (two decimal places).
pub(crate) fn rounded(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
