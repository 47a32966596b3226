//! Charts drawn on the server as SVG, for the reports page: monthly counts as grouped bars and
//! mean changes with their 95% confidence intervals. Each chart is an image with a title, a
//! description and a one-line text alternative; the table beside it is its accessible
//! equivalent, so the chart adds nothing only a sighted reader can get.
//!
//! Written here rather than with a plotting crate: what it draws is a few rectangles, lines and
//! labels, and the well-kept crates that draw SVG charts lay text out with font libraries
//! (plotters' `ttf`, charts-rs) and give the SVG no title, description or role. maud escapes
//! every label.

use maud::{html, Markup};

/// The viewBox width; the SVG scales to its container (`width: 100%`), so it fits 320 px.
const WIDTH: f64 = 480.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;

/// Fill colours of series, in order: each at least 3:1 against white (WCAG 1.4.11).
const COLOURS: [&str; 9] = [
    "#005eb8", "#007f3b", "#d5281b", "#330072", "#7c2855", "#ae2573", "#00403d", "#8a4b00",
    "#425563",
];

/// One series: its label and a count per category (`None`: hidden by disclosure control,
/// drawn as nothing; the description and the table say so).
pub struct Series {
    pub label: String,
    pub values: Vec<Option<u64>>,
}

/// Grouped bars: per category (a month), one bar per series side by side. Grouped, not
/// stacked: a referral counts in several steps (accepted, then contacted, then completed).
pub struct GroupedBars {
    pub title: String,
    pub description: String,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
}

/// An estimate with its 95% confidence interval.
pub struct Interval {
    pub label: String,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// A "nice" upper bound for an axis from 0 to at least `max`, and its step.
fn axis(max: f64) -> (f64, f64) {
    let max = max.max(1.0);
    let magnitude = 10f64.powf(max.log10().floor());
    let step = [0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| max / step <= 5.0)
        .unwrap_or(magnitude);
    ((max / step).ceil() * step, step)
}

fn ticks(top: f64, step: f64) -> Vec<f64> {
    let count = (top / step).round() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// A number as an axis shows it: whole numbers without decimals.
fn label(value: f64) -> String {
    // -0 reads as 0.
    let value = if value == 0.0 { 0.0 } else { value };
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Grouped bars with a legend; a bar's tooltip says its category, series and count.
pub fn grouped_bars(chart: &GroupedBars, id: &str) -> Markup {
    let plot_height = 200.0;
    let max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied().flatten())
        .max()
        .unwrap_or(0);
    let (top, step) = axis(max as f64);
    let y = |v: f64| TOP + plot_height - v / top * plot_height;
    let slot = (WIDTH - LEFT - RIGHT) / chart.categories.len().max(1) as f64;
    let bar = slot * 0.84 / chart.series.len().max(1) as f64;
    let slot_x = |c: usize| LEFT + c as f64 * slot + slot * 0.08;
    // Each shown, non-zero count: its x, its top, its colour and its tooltip.
    let mut bars = vec![];
    for (c, category) in chart.categories.iter().enumerate() {
        for (s, series) in chart.series.iter().enumerate() {
            if let Some(value) = series.values.get(c).copied().flatten().filter(|v| *v > 0) {
                let tip = format!("{category}, {}: {value}", series.label);
                let x = slot_x(c) + s as f64 * bar;
                bars.push((x, value as f64, COLOURS[s % COLOURS.len()], tip));
            }
        }
    }
    let legend_top = TOP + plot_height + 30.0;
    let legend_rows = chart.series.len().div_ceil(3);
    let height = legend_top + legend_rows as f64 * 18.0 + 4.0;
    html! {
        svg.chart role="img" aria-labelledby={ (id) "-title " (id) "-desc" }
            viewBox={ "0 0 " (WIDTH) " " (height) } xmlns="http://www.w3.org/2000/svg" {
            title id={ (id) "-title" } { (chart.title) }
            desc id={ (id) "-desc" } { (chart.description) }
            @for tick in ticks(top, step) {
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(tick)) y2=(y(tick)) class="grid" {}
                text x=(LEFT - 6.0) y=(y(tick) + 4.0) text-anchor="end" { (label(tick)) }
            }
            @for (x, value, colour, tip) in &bars {
                rect x=(x) y=(y(*value)) width=(bar) height=(y(0.0) - y(*value)) fill=(colour) {
                    title { (tip) }
                }
            }
            @for (c, category) in chart.categories.iter().enumerate() {
                text x=(slot_x(c) + slot * 0.42) y=(TOP + plot_height + 16.0) text-anchor="middle" { (category) }
            }
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(0.0)) y2=(y(0.0)) class="axis" {}
            @for (s, series) in chart.series.iter().enumerate() {
                @let (row, column) = (s / 3, s % 3);
                @let lx = LEFT + column as f64 * 140.0;
                @let ly = legend_top + row as f64 * 18.0;
                rect x=(lx) y=(ly - 10.0) width="12" height="12" fill=(COLOURS[s % COLOURS.len()]) {}
                text x=(lx + 17.0) y=(ly) { (series.label) }
            }
        }
    }
}

/// Mean changes with their 95% confidence intervals, one row each, around a line at zero.
pub fn intervals(title: &str, description: &str, items: &[Interval], id: &str) -> Markup {
    let row = 34.0;
    let label_width = 90.0;
    let height = TOP + items.len().max(1) as f64 * row + 24.0;
    let reach = items
        .iter()
        .flat_map(|i| [i.low.abs(), i.high.abs(), i.mean.abs()])
        .fold(1.0_f64, f64::max);
    let (bound, step) = axis(reach);
    let left = LEFT + label_width;
    let x = |v: f64| left + (v + bound) / (2.0 * bound) * (WIDTH - left - RIGHT);
    let axis_y = TOP + items.len().max(1) as f64 * row;
    let negative: Vec<f64> = ticks(bound, step).into_iter().map(|t| -t).collect();
    html! {
        svg.chart role="img" aria-labelledby={ (id) "-title " (id) "-desc" }
            viewBox={ "0 0 " (WIDTH) " " (height) } xmlns="http://www.w3.org/2000/svg" {
            title id={ (id) "-title" } { (title) }
            desc id={ (id) "-desc" } { (description) }
            @for tick in negative.iter().rev().chain(ticks(bound, step).iter().skip(1)) {
                line x1=(x(*tick)) x2=(x(*tick)) y1=(TOP) y2=(axis_y) class="grid" {}
                text x=(x(*tick)) y=(axis_y + 16.0) text-anchor="middle" { (label(*tick)) }
            }
            line x1=(x(0.0)) x2=(x(0.0)) y1=(TOP) y2=(axis_y) class="axis" {}
            @for (i, item) in items.iter().enumerate() {
                @let cy = TOP + i as f64 * row + row / 2.0;
                text x=(LEFT) y=(cy + 4.0) { (item.label) }
                line x1=(x(item.low)) x2=(x(item.high)) y1=(cy) y2=(cy) class="interval" {}
                line x1=(x(item.low)) x2=(x(item.low)) y1=(cy - 6.0) y2=(cy + 6.0) class="interval" {}
                line x1=(x(item.high)) x2=(x(item.high)) y1=(cy - 6.0) y2=(cy + 6.0) class="interval" {}
                circle cx=(x(item.mean)) cy=(cy) r="5" fill=(COLOURS[0]) {
                    title {
                        (item.label) ": mean change " (format!("{:+.1}", item.mean))
                        " (95% CI " (format!("{:.1}", item.low)) " to " (format!("{:.1}", item.high)) ")"
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(markup: &Markup) -> String {
        let text = markup.clone().into_string();
        roxmltree::Document::parse(&text).expect("well-formed SVG");
        text
    }

    #[test]
    fn axes_are_round_and_cover_the_data() {
        for (max, top, step) in [
            (7.0, 8.0, 2.0),
            (20.0, 20.0, 5.0),
            (63.0, 80.0, 20.0),
            (120.0, 125.0, 25.0),
        ] {
            assert_eq!(axis(max), (top, step), "{max}");
        }
        for max in [1.0, 3.3, 9.9, 47.0, 999.0, 12345.0] {
            let (top, step) = axis(max);
            assert!(
                top >= max && top / step <= 5.0 + 1e-9,
                "{max}: {top} {step}"
            );
        }
    }

    #[test]
    fn grouped_bars_are_an_image_with_a_title_and_description() {
        let chart = GroupedBars {
            title: "Referrals by month and status".into(),
            description: "Completed: 10 in July <hidden>".into(),
            categories: vec!["Jul".into(), "Aug".into()],
            series: vec![
                Series {
                    label: "completed".into(),
                    values: vec![Some(10), Some(20)],
                },
                Series {
                    label: "declined".into(),
                    values: vec![None, Some(5)],
                },
            ],
        };
        let svg = parse(&grouped_bars(&chart, "monthly"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(r#"aria-labelledby="monthly-title monthly-desc""#));
        assert!(svg.contains("<title id=\"monthly-title\">Referrals by month and status</title>"));
        // Labels are escaped; a hidden cell draws nothing.
        assert!(svg.contains("&lt;hidden&gt;"));
        assert_eq!(svg.matches("<rect").count(), 3 + 2, "3 bars, 2 legend keys");
        assert!(svg.contains("Aug, declined: 5"));
        assert!(!svg.contains("Jul, declined"));
        // The tallest bar (20) is on an axis to 20, ticks every 5.
        assert!(svg.contains(">20</text>") && svg.contains(">15</text>"));
        assert!(!svg.contains(">25</text>"));
    }

    #[test]
    fn intervals_show_the_mean_and_its_interval() {
        let items = [
            Interval {
                label: "WEMWBS".into(),
                mean: 3.2,
                low: 1.1,
                high: 5.3,
            },
            Interval {
                label: "SWEMWBS".into(),
                mean: -0.4,
                low: -2.0,
                high: 1.2,
            },
        ];
        let svg = parse(&intervals("Change", "Mean change", &items, "change"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("WEMWBS: mean change +3.2 (95% CI 1.1 to 5.3)"));
        assert!(svg.contains("SWEMWBS: mean change -0.4 (95% CI -2.0 to 1.2)"));
        // Symmetric around zero: to 6 either side from 5.3, ticks every 2, zero unsigned.
        for tick in [">-6<", ">-4<", ">0<", ">4<", ">6<"] {
            assert!(svg.contains(tick), "{tick}");
        }
        assert!(!svg.contains(">-0<"));
    }
}
