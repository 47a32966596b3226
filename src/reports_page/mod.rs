//! The reports page for commissioners (`/reports`): the commissioners' tables as HTML tables,
//! each with a chart drawn on the server and a CSV download, under a form (GET) choosing the
//! period, the grouping and the questionnaire. No HTTP here (`api::reports_page` serves it).

pub mod chart;

use maud::{html, Markup};

use crate::inbox::{layout_in, Service, SignedIn};
use crate::reports::{Dimension, Figure, Row, Table, DECLINED_BY, TOTAL_GROUP};
use crate::translate::instruments::Instrument;

/// Where the page is served (under the inbox's cookie path).
pub const PAGE_PATH: &str = "/reports";

/// What a hidden cell shows, explained in each table's caption.
pub const HIDDEN: &str = "[c]";

/// The form's values, as asked (or the defaults), to fill the form and build the links.
pub struct Asked {
    pub from: String,
    pub to: String,
    pub by: Dimension,
    pub instrument: Instrument,
}

impl Asked {
    /// The query string of these values (`instrument` included when `wellbeing`).
    pub fn query(&self, wellbeing: bool) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("from", &self.from)
            .append_pair("to", &self.to)
            .append_pair("by", self.by.as_str());
        if wellbeing {
            query.append_pair("instrument", self.instrument.as_str());
        }
        query.finish()
    }
}

/// Everything the page shows.
pub struct ReportsView<'a> {
    pub commissioner: &'a str,
    pub asked: &'a Asked,
    /// The referrals table as asked, the same by month for the chart, the wellbeing table, and
    /// each questionnaire's `all` row for the change chart; `None` when the request was refused.
    pub tables: Option<Tables>,
    /// Why the form's values were refused.
    pub error: Option<String>,
}

pub struct Tables {
    pub referrals: Table,
    pub by_month: Table,
    pub wellbeing: Table,
    pub changes: Vec<chart::Interval>,
}

fn figure(value: Option<Figure>, hidden: bool) -> String {
    match value {
        Some(Figure::Count(n)) => n.to_string(),
        Some(Figure::Number(x)) => format!("{x:.1}"),
        None if hidden => HIDDEN.to_string(),
        None => "–".to_string(),
    }
}

/// A report as an HTML table: a caption (with what `[c]` means), a header row, one row per
/// group, the `all` row last.
fn table(table: &Table, caption: &str) -> Markup {
    let hidden = |group: &str, column: &str| {
        table
            .suppressed
            .iter()
            .any(|s| s.group == group && s.column == column)
    };
    html! {
        div.table-scroll tabindex="0" role="region" aria-label=(caption) {
            table.table.report-table {
                caption {
                    (caption)
                    span.caption-note {
                        " " (HIDDEN) " marks a figure hidden so that no one can be identified: a count from 1 to 4, or a figure from which one could be worked out. – means there is nothing to show."
                    }
                }
                thead {
                    tr {
                        th scope="col" { (table.by.label()) }
                        @for column in &table.columns { th scope="col" { (column.label) } }
                    }
                }
                tbody {
                    @for row in &table.rows {
                        tr.total-row[row.group == TOTAL_GROUP] {
                            th scope="row" { (row.label) }
                            @for (column, value) in table.columns.iter().zip(&row.values) {
                                td { (figure(*value, hidden(&row.group, &column.key))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The same table with only the columns whose key `keep` admits (the page shows the decline
/// reasons as a table of their own, so that neither is too wide to read).
fn columns(table: &Table, keep: impl Fn(&str) -> bool) -> Table {
    let kept: Vec<usize> = (0..table.columns.len())
        .filter(|&c| keep(&table.columns[c].key))
        .collect();
    Table {
        columns: kept.iter().map(|&c| table.columns[c].clone()).collect(),
        rows: table
            .rows
            .iter()
            .map(|row| Row {
                values: kept
                    .iter()
                    .map(|&c| row.values.get(c).copied().flatten())
                    .collect(),
                ..row.clone()
            })
            .collect(),
        suppressed: table
            .suppressed
            .iter()
            .filter(|cell| keep(&cell.column))
            .cloned()
            .collect(),
        ..table.clone()
    }
}

/// The statuses the monthly chart shows, from the referrals table's columns.
const CHART_COLUMNS: [&str; 6] = [
    "received",
    "accepted",
    "declined",
    "contacted",
    "completed",
    "cancelled",
];

/// The monthly chart of referrals by status, from a table by month.
fn monthly_chart(by_month: &Table) -> Markup {
    let months: Vec<_> = by_month
        .rows
        .iter()
        .filter(|r| r.group != TOTAL_GROUP)
        .collect();
    let series = CHART_COLUMNS
        .iter()
        .filter_map(|key| {
            let c = by_month.columns.iter().position(|c| c.key == *key)?;
            Some(chart::Series {
                label: by_month.columns[c].label.clone(),
                values: months
                    .iter()
                    .map(|r| match r.values.get(c).copied().flatten() {
                        Some(Figure::Count(n)) => Some(n),
                        _ => None,
                    })
                    .collect(),
            })
        })
        .collect();
    let chart = chart::GroupedBars {
        title: "Referrals by month received and what became of them".into(),
        description: "Bars per month: referrals received, accepted, declined, contacted, \
                      completed and cancelled (a referral counts in each step it reached). \
                      Hidden figures are not drawn. The table below gives every figure."
            .into(),
        categories: months
            .iter()
            .map(|r| {
                r.label
                    .split(' ')
                    .next()
                    .unwrap_or(&r.label)
                    .chars()
                    .take(3)
                    .collect()
            })
            .collect(),
        series,
    };
    chart::grouped_bars(&chart, "monthly-chart")
}

fn change_chart(changes: &[chart::Interval]) -> Markup {
    if changes.is_empty() {
        return html! {
            p { "No questionnaire has enough people with a baseline and a follow-up to show a change." }
        };
    }
    let summary: Vec<String> = changes
        .iter()
        .map(|c| {
            format!(
                "{} {:+.1} (95% CI {:.1} to {:.1})",
                c.label, c.mean, c.low, c.high
            )
        })
        .collect();
    chart::intervals(
        "Mean change in wellbeing from baseline to follow-up, with 95% confidence intervals",
        &format!("Mean change per measure: {}.", summary.join("; ")),
        changes,
        "change-chart",
    )
}

fn form(asked: &Asked) -> Markup {
    html! {
        form.report-form method="get" action=(PAGE_PATH) {
            div.form-group {
                label.label for="from" { "From (first day)" }
                input.input #from name="from" type="date" value=(asked.from) required;
            }
            div.form-group {
                label.label for="to" { "To (last day)" }
                input.input #to name="to" type="date" value=(asked.to) required;
            }
            div.form-group {
                label.label for="by" { "Group referrals and wellbeing by" }
                select.select #by name="by" {
                    @for d in Dimension::ALL {
                        option value=(d.as_str()) selected[d == asked.by] { (d.label()) }
                    }
                }
            }
            div.form-group {
                label.label for="instrument" { "Wellbeing questionnaire" }
                select.select #instrument name="instrument" {
                    @for i in Instrument::ALL {
                        option value=(i.as_str()) selected[i == asked.instrument] { (i.label()) }
                    }
                }
            }
            button.button type="submit" { "Show the reports" }
        }
    }
}

/// The page.
/// The commissioners' reports: their name and home in the header.
pub const REPORTS: Service = Service {
    name: "Commissioner reports",
    home: PAGE_PATH,
    sections: &[],
};

/// The page; `signed_in` is `None` when it was asked for with the commissioner's token (no
/// session to sign out of).
pub fn reports_page(view: &ReportsView<'_>, signed_in: Option<&SignedIn<'_>>) -> Markup {
    let asked = view.asked;
    let content = html! {
        h1.heading-l { "Reports" }
        p.body { "Referrals and wellbeing for " (view.commissioner) ": counts and averages only, never a person's record." }
        @if let Some(error) = &view.error {
            div.error-summary role="alert" tabindex="-1" {
                h2.error-summary-title { "There is a problem" }
                p { (error) }
            }
        }
        (form(asked))
        @if let Some(tables) = &view.tables {
            section aria-labelledby="referrals-heading" {
                h2.heading-m #referrals-heading { "Referrals" }
                figure.chart-figure {
                    (monthly_chart(&tables.by_month))
                    figcaption { "Referrals by month received, from " (asked.from) " to " (asked.to) ". The same figures by month are in the table below when grouped by month." }
                }
                (table(&columns(&tables.referrals, |key| !key.starts_with(DECLINED_BY)),
                    &format!("Referrals by {}", asked.by.label().to_lowercase())))
                (table(&columns(&tables.referrals, |key| key == "declined" || key.starts_with(DECLINED_BY)),
                    &format!("Declined referrals by reason, by {}", asked.by.label().to_lowercase())))
                p { a href={ (PAGE_PATH) "/referrals.csv?" (asked.query(false)) } download { "Download the referrals table (CSV)" } }
            }
            section aria-labelledby="wellbeing-heading" {
                h2.heading-m #wellbeing-heading { "Wellbeing" }
                figure.chart-figure {
                    (change_chart(&tables.changes))
                    figcaption { "Mean change from baseline to follow-up for every questionnaire, all groups together. A dot right of the line at 0 is an improvement (for ONS4 anxiety, left is)." }
                }
                (table(&tables.wellbeing, &format!("{} by {}", asked.instrument.label(), asked.by.label().to_lowercase())))
                p { a href={ (PAGE_PATH) "/wellbeing.csv?" (asked.query(true)) } download { "Download the wellbeing table (CSV)" } }
            }
        }
    };
    layout_in(&REPORTS, "", "Reports", signed_in, content)
}
