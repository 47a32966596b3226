//! Commissioners' reports: aggregate figures about referrals and wellbeing, never a record.
//!
//! # Public API (stable: the `/reports` page and the HTTP endpoints build on it)
//!
//! - [`ReportRequest`]: what is asked: a [`Period`] (`from`..=`to`, whole days, UTC) and a
//!   [`Dimension`] to group by (`month`, `practice`, `organisation`, `need-category`);
//!   [`ReportRequest::from_query`] reads the query string's `from`, `to`, `by` (and `instrument`).
//! - [`Scope`]: which referrals a commissioner may see ([`Scope::of`] its `[[commissioners]]`
//!   entry; [`Scope::everything`] for the operator's own views).
//! - [`referrals_report`]`(store, config, scope, request)` and
//!   [`wellbeing_report`]`(store, config, scope, request, instrument)`: compute a [`Table`] from
//!   the store, with disclosure control applied (`config` gives the organisations' names).
//!   `Table` is the one shape of every report: `columns`, `rows` (one per group, then the
//!   `all` row), each cell an `Option<Figure>` (`None`: suppressed, or not applicable such as a
//!   mean over nobody), and `suppressed` listing the hidden cells. [`Table::to_json`] and [`Table::to_csv`] render
//!   it as the API does; [`Table::value`] reads one cell. [`referral_columns`] lists the
//!   referrals table's columns; [`measures`] an instrument's measures, [`threshold`] each
//!   measure's meaningful-change threshold with its source.
//! - [`ReportError`]: a bad parameter (the caller's mistake: 400) or a store failure.
//! - [`measure`]: the same figures as FHIR: [`measure::indicators`] (one per report column),
//!   [`measure::all_measures`] (the `Measure` resources), [`measure::measure_reports`]
//!   (`MeasureReport`s of type `summary`, stratified by every dimension).
//!
//! # How the figures are counted
//!
//! Reports are by cohort: a referral belongs to the period in which the gateway received it, and
//! its later steps (accepted, contacted, completed, …) count with it whenever they happen. A
//! step counts once per referral, at the first time the gateway recorded it (the Task version
//! that first carried it). `disclosure` decides which cells may be shown.

pub mod disclosure;
pub mod measure;
mod referrals;
mod table;
mod wellbeing;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};

use crate::config::{CommissionerConfig, Config};
use crate::domain::{NeedCategory, OdsCode, VcsId};
use crate::store::{ReportKeys, StoreError};
use crate::translate::instruments::Instrument;

pub use referrals::{referral_columns, referrals_report, DECLINED_BY, DECLINED_NOT_CODED};
pub use table::{Column, Figure, Row, SuppressedCell, Table, TOTAL_GROUP};
pub use wellbeing::{measures, threshold, wellbeing_report, Threshold};

/// The longest period one report may cover: ten years of days.
pub const MAX_DAYS: u64 = 3660;

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A query parameter is missing or wrong: `name` says which.
    #[error("{name}: {reason}")]
    BadParameter { name: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn bad(name: &'static str, reason: impl Into<String>) -> ReportError {
    ReportError::BadParameter {
        name,
        reason: reason.into(),
    }
}

/// How a report's figures are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The calendar month (UTC) in which the referral was received.
    Month,
    /// The referring GP practice (ODS code).
    Practice,
    /// The VCS organisation the referral went to.
    Organisation,
    /// The need category of the referral's first categorised need.
    NeedCategory,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Month,
        Dimension::Practice,
        Dimension::Organisation,
        Dimension::NeedCategory,
    ];

    /// The name in `by=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Month => "month",
            Dimension::Practice => "practice",
            Dimension::Organisation => "organisation",
            Dimension::NeedCategory => "need-category",
        }
    }

    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// What a person calls it.
    pub fn label(self) -> &'static str {
        match self {
            Dimension::Month => "Month received",
            Dimension::Practice => "GP practice",
            Dimension::Organisation => "Organisation",
            Dimension::NeedCategory => "Need category",
        }
    }
}

/// Whole days from `from` to `to`, both included (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    from: NaiveDate,
    to: NaiveDate,
}

impl Period {
    /// A period of at least one day and at most [`MAX_DAYS`].
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Period, ReportError> {
        if to < from {
            return Err(bad("to", "must not be before from"));
        }
        if from
            .checked_add_days(Days::new(MAX_DAYS))
            .is_some_and(|last| to >= last)
        {
            return Err(bad(
                "to",
                format!("a report covers at most {MAX_DAYS} days"),
            ));
        }
        Ok(Period { from, to })
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    pub fn to(&self) -> NaiveDate {
        self.to
    }

    /// The first instant in the period and the first instant after it.
    pub fn bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.from.and_time(chrono::NaiveTime::MIN).and_utc();
        let end = self
            .to
            .checked_add_days(Days::new(1))
            .unwrap_or(self.to)
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
        (start, end)
    }

    /// The months the period touches, as `YYYY-MM`, in order.
    pub fn months(&self) -> Vec<String> {
        let mut months = Vec::new();
        let mut month = NaiveDate::from_ymd_opt(self.from.year(), self.from.month(), 1);
        while let Some(first) = month.filter(|m| *m <= self.to) {
            months.push(first.format("%Y-%m").to_string());
            month = first.checked_add_months(chrono::Months::new(1));
        }
        months
    }
}

/// What a report is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    pub period: Period,
    pub by: Dimension,
}

impl ReportRequest {
    /// Reads `from`, `to` (`YYYY-MM-DD`) and `by` from query pairs; `instrument` too when
    /// `wellbeing` (its value is then returned). Unknown parameters are refused, so a typo
    /// does not silently give another report.
    pub fn from_query(
        pairs: &[(String, String)],
        wellbeing: bool,
    ) -> Result<(ReportRequest, Option<Instrument>), ReportError> {
        let mut from = None;
        let mut to = None;
        let mut by = None;
        let mut instrument = None;
        for (name, value) in pairs {
            match name.as_str() {
                "from" => from = Some(date("from", value)?),
                "to" => to = Some(date("to", value)?),
                "by" => {
                    by = Some(Dimension::parse(value).ok_or_else(|| {
                        bad("by", "one of month, practice, organisation, need-category")
                    })?)
                }
                "instrument" if wellbeing => {
                    instrument = Some(
                        Instrument::parse(value)
                            .ok_or_else(|| bad("instrument", "one of wemwbs, swemwbs, ons4"))?,
                    )
                }
                _ => return Err(bad("query", format!("unknown parameter {name:?}"))),
            }
        }
        let from = from.ok_or_else(|| bad("from", "required (YYYY-MM-DD)"))?;
        let to = to.ok_or_else(|| bad("to", "required (YYYY-MM-DD)"))?;
        let by = by.ok_or_else(|| {
            bad(
                "by",
                "required: month, practice, organisation or need-category",
            )
        })?;
        if wellbeing && instrument.is_none() {
            return Err(bad("instrument", "required: wemwbs, swemwbs or ons4"));
        }
        Ok((
            ReportRequest {
                period: Period::new(from, to)?,
                by,
            },
            instrument,
        ))
    }
}

fn date(name: &'static str, value: &str) -> Result<NaiveDate, ReportError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|_| value.len() == 10)
        .ok_or_else(|| bad(name, format!("{value:?} is not a date written YYYY-MM-DD")))
}

/// Which referrals a reader may see: those from the listed practices and to the listed
/// organisations (`None`: every one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub practices: Option<Vec<OdsCode>>,
    pub organisations: Option<Vec<VcsId>>,
}

impl Scope {
    /// Everything (the operator's views).
    pub fn everything() -> Scope {
        Scope::default()
    }

    /// A commissioner's configured scope.
    pub fn of(commissioner: &CommissionerConfig) -> Scope {
        Scope {
            practices: commissioner.practices.clone(),
            organisations: commissioner.organisations.clone(),
        }
    }

    /// Whether a referral with these keys is in scope. A referral whose practice is unknown is
    /// outside every list of practices.
    pub fn admits(&self, keys: &ReportKeys) -> bool {
        let practice_ok = self.practices.as_ref().is_none_or(|list| {
            keys.practice
                .as_ref()
                .is_some_and(|practice| list.contains(practice))
        });
        let organisation_ok = self
            .organisations
            .as_ref()
            .is_none_or(|list| list.contains(&keys.organisation));
        practice_ok && organisation_ok
    }
}

/// The group key of "no value" (a referral without a practice code, or without a categorised
/// need).
pub const UNKNOWN_GROUP: &str = "unknown";

/// The groups a table has, in order, with their labels: every month of the period; the
/// practices in scope (or seen); the organisations in scope; every need category.
fn groups(
    config: &Config,
    scope: &Scope,
    request: &ReportRequest,
    seen: &[&ReportKeys],
) -> Vec<(String, String)> {
    match request.by {
        Dimension::Month => request
            .period
            .months()
            .into_iter()
            .map(|m| {
                let label = NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d")
                    .map(|d| d.format("%B %Y").to_string())
                    .unwrap_or_else(|_| m.clone());
                (m, label)
            })
            .collect(),
        Dimension::Practice => {
            let mut practices: Vec<Option<OdsCode>> = match &scope.practices {
                Some(list) => list.iter().cloned().map(Some).collect(),
                None => seen.iter().map(|k| k.practice.clone()).collect(),
            };
            practices.sort();
            practices.dedup();
            practices
                .into_iter()
                .map(|p| match p {
                    Some(code) => (code.to_string(), code.to_string()),
                    None => (UNKNOWN_GROUP.to_string(), "Practice not given".to_string()),
                })
                .collect()
        }
        Dimension::Organisation => config
            .vcs
            .iter()
            .filter(|v| {
                scope
                    .organisations
                    .as_ref()
                    .is_none_or(|list| list.contains(&v.id))
            })
            .map(|v| (v.id.to_string(), v.name.clone()))
            .collect(),
        Dimension::NeedCategory => NeedCategory::ALL
            .into_iter()
            .map(|c| (c.code().to_string(), need_label(c).to_string()))
            .chain(std::iter::once((
                UNKNOWN_GROUP.to_string(),
                "No categorised need".to_string(),
            )))
            .collect(),
    }
}

fn need_label(category: NeedCategory) -> &'static str {
    match category {
        NeedCategory::SocialConnection => "Social connection",
        NeedCategory::MentalWellbeing => "Mental wellbeing",
        NeedCategory::PhysicalActivity => "Physical activity",
        NeedCategory::MoneyAndDebt => "Money and debt",
        NeedCategory::Housing => "Housing",
        NeedCategory::WorkAndLearning => "Work and learning",
        NeedCategory::Carers => "Carers",
        NeedCategory::Food => "Food",
        NeedCategory::Safety => "Safety",
        NeedCategory::PracticalSupport => "Practical support",
    }
}

/// The group a referral falls in.
fn group_of(by: Dimension, keys: &ReportKeys) -> String {
    match by {
        Dimension::Month => keys.received_at.format("%Y-%m").to_string(),
        Dimension::Practice => keys
            .practice
            .as_ref()
            .map_or_else(|| UNKNOWN_GROUP.to_string(), ToString::to_string),
        Dimension::Organisation => keys.organisation.to_string(),
        Dimension::NeedCategory => keys
            .need
            .map_or_else(|| UNKNOWN_GROUP.to_string(), |c| c.code().to_string()),
    }
}
