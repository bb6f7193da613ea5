//! The admin usage charts: GPU-hours per day as stacked bars, one colour per user or GPU type,
//! drawn on the server as SVG with plotters. Text is left to the browser (no font is embedded or
//! measured), and a `<desc>` states each series' total, so the numbers are there for screen
//! readers (and tests) too.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use gpudev_store::usage::DailyUsage;
use plotters::prelude::*;

/// Series drawn at most; the rest are summed into one ("others").
pub const MAX_SERIES: usize = 8;

/// Chart size in pixels.
const SIZE: (u32, u32) = (760, 380);

/// What the bars are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// One colour per user.
    User,
    /// One colour per GPU type.
    GpuType,
}

impl SplitBy {
    fn key(self, u: &DailyUsage) -> &str {
        match self {
            SplitBy::User => &u.username,
            SplitBy::GpuType => &u.gpu_type,
        }
    }

    fn title(self) -> &'static str {
        match self {
            SplitBy::User => "GPU-hours per day by user",
            SplitBy::GpuType => "GPU-hours per day by GPU type",
        }
    }
}

/// One coloured series: its name and GPU-hours on each day of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The user or GPU type (or `others`).
    pub name: String,
    /// GPU-hours on each day, in the order of the chart's days.
    pub per_day: Vec<f64>,
}

impl Series {
    fn total(&self) -> f64 {
        self.per_day.iter().sum()
    }
}

/// The series of `rows` split by `by` over `days`: the largest totals first, at most
/// [`MAX_SERIES`] (the smallest beyond that summed as `others`).
pub fn series(rows: &[DailyUsage], days: &[NaiveDate], by: SplitBy) -> Vec<Series> {
    let mut by_name: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for row in rows {
        if let Some(i) = days.iter().position(|d| *d == row.day) {
            by_name
                .entry(by.key(row))
                .or_insert_with(|| vec![0.0; days.len()])[i] += row.gpu_hours;
        }
    }
    let mut all: Vec<Series> = by_name
        .into_iter()
        .map(|(name, per_day)| Series {
            name: name.to_owned(),
            per_day,
        })
        .collect();
    all.sort_by(|a, b| b.total().total_cmp(&a.total()));
    if all.len() > MAX_SERIES {
        let rest = all.split_off(MAX_SERIES - 1);
        let mut others = vec![0.0; days.len()];
        for s in rest {
            for (o, h) in others.iter_mut().zip(s.per_day) {
                *o += h;
            }
        }
        all.push(Series {
            name: "others".into(),
            per_day: others,
        });
    }
    all
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the usage chart: {0}")]
pub struct ChartError(String);

fn drawing<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError(format!("{e:?}"))
}

/// Escapes text for an SVG element's content.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Draws `series` over `days` as stacked bars, split `by` users or GPU types.
pub fn draw(days: &[NaiveDate], series: &[Series], by: SplitBy) -> Result<String, ChartError> {
    let n = days.len().max(1);
    let top = (0..days.len())
        .map(|d| series.iter().map(|s| s.per_day[d]).sum::<f64>())
        .fold(0.0_f64, f64::max);
    let y_max = if top > 0.0 { top * 1.15 } else { 1.0 };
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 0.01 || i < 0.0 {
            return String::new();
        }
        days.get(i as usize)
            .map(|d| d.format("%m-%d").to_string())
            .unwrap_or_default()
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(by.title(), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5_f64..(n as f64 - 0.5), 0.0_f64..y_max)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_max_light_lines(1)
            .x_labels(n.min(15))
            .x_label_formatter(&label)
            .y_desc("GPU-hours")
            .draw()
            .map_err(drawing)?;
        let mut base = vec![0.0; days.len()];
        for (i, s) in series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let bars: Vec<Rectangle<(f64, f64)>> = s
                .per_day
                .iter()
                .enumerate()
                .filter(|(_, h)| **h > 0.0)
                .map(|(d, h)| {
                    let x = d as f64;
                    Rectangle::new(
                        [(x - 0.38, base[d]), (x + 0.38, base[d] + h)],
                        colour.filled(),
                    )
                })
                .collect();
            for (b, h) in base.iter_mut().zip(&s.per_day) {
                *b += h;
            }
            chart
                .draw_series(bars)
                .map_err(drawing)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(with_description(svg, days, series, by))
}

/// `svg` with a `<desc>` naming the chart's days and each series' total.
fn with_description(svg: String, days: &[NaiveDate], series: &[Series], by: SplitBy) -> String {
    let span = match (days.first(), days.last()) {
        (Some(a), Some(b)) => format!("{a} to {b} (UTC)"),
        _ => String::new(),
    };
    let totals: Vec<String> = series
        .iter()
        .map(|s| format!("{}: {:.1} GPU-hours", s.name, s.total()))
        .collect();
    let totals = if totals.is_empty() {
        "no usage".to_owned()
    } else {
        totals.join("; ")
    };
    let desc = format!(
        "<title>{}</title><desc>{}, {}. {}.</desc>",
        by.title(),
        by.title(),
        escape(&span),
        escape(&totals)
    );
    match svg
        .find("<svg")
        .and_then(|at| svg[at..].find('>').map(|end| at + end + 1))
    {
        Some(end) => format!("{}{desc}{}", &svg[..end], &svg[end..]),
        None => svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(d: u32, user: &str, gpu: &str, hours: f64) -> DailyUsage {
        DailyUsage {
            day: NaiveDate::from_ymd_opt(2026, 3, d).unwrap_or_default(),
            username: user.into(),
            gpu_type: gpu.into(),
            gpu_hours: hours,
        }
    }

    fn days(n: u32) -> Vec<NaiveDate> {
        (1..=n)
            .filter_map(|d| NaiveDate::from_ymd_opt(2026, 3, d))
            .collect()
    }

    #[test]
    fn series_are_summed_per_key_and_day_largest_first() {
        let rows = [
            row(1, "bob", "t4", 1.0),
            row(2, "alice", "h100", 6.0),
            row(2, "alice", "t4", 2.0),
            row(9, "carol", "t4", 5.0),
        ];
        let by_user = series(&rows, &days(3), SplitBy::User);
        assert_eq!(
            by_user,
            vec![
                Series {
                    name: "alice".into(),
                    per_day: vec![0.0, 8.0, 0.0]
                },
                Series {
                    name: "bob".into(),
                    per_day: vec![1.0, 0.0, 0.0]
                },
            ],
            "a day outside the chart is not drawn"
        );
        let by_type = series(&rows, &days(3), SplitBy::GpuType);
        assert_eq!(by_type[0].name, "h100");
        assert_eq!(by_type[1].per_day, vec![1.0, 2.0, 0.0]);
    }

    #[test]
    fn beyond_the_largest_series_the_rest_are_others() {
        let rows: Vec<DailyUsage> = (0..12)
            .map(|i| row(1, &format!("user{i:02}"), "t4", f64::from(i + 1)))
            .collect();
        let s = series(&rows, &days(1), SplitBy::User);
        assert_eq!(s.len(), MAX_SERIES);
        assert_eq!(s[0].name, "user11");
        let others = s.last().map(|o| (o.name.clone(), o.per_day[0]));
        // users 00..=04 hold 1 + 2 + 3 + 4 + 5 hours.
        assert_eq!(others, Some(("others".into(), 15.0)));
    }

    #[test]
    fn the_svg_names_its_series_and_totals() {
        let rows = [row(1, "alice", "h100", 2.0), row(2, "alice", "h100", 6.0)];
        let d = days(2);
        let svg = draw(&d, &series(&rows, &d, SplitBy::User), SplitBy::User).unwrap_or_default();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<desc>GPU-hours per day by user, 2026-03-01 to 2026-03-02 (UTC). alice: 8.0 GPU-hours.</desc>"), "{svg}");
        assert!(svg.contains("\nalice\n</text>"), "the legend: {svg}");
        assert!(svg.contains("\n03-02\n</text>"), "day labels: {svg}");
        let empty = draw(&d, &[], SplitBy::GpuType).unwrap_or_default();
        assert!(empty.contains("no usage"), "{empty}");
    }
}
