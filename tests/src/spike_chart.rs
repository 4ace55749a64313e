//! The picture of a spike that `make soak` draws: accepted/s, queue depth, written/s and
//! end-to-end lag against the seconds of the run, four panels on one time axis, as SVG.
//!
//! SVG only: the backend writes `<text>` elements and the viewer lays them out, so no font
//! files or system libraries are needed to draw it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::emf::EmfRecord;

/// One second of a run, as the chart plots it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    /// Seconds since the first write.
    pub second: f64,
    pub accepted_per_s: f64,
    /// Summed over the run's queues.
    pub visible: u64,
    pub in_flight: u64,
    pub written_per_s: f64,
    /// End-to-end lag in that second (ms), when the pollers reported any.
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
}

/// Shown in the lag panel when no point has a lag.
pub const NO_LAG_NOTE: &str = "no lag data (pollers emitted no EMF)";

/// Second of the run (from `start_ms`, Unix ms) each record falls in; records from before
/// the start count in second 0.
fn second_of(record: &EmfRecord, start_ms: u64) -> u64 {
    record.timestamp_ms.saturating_sub(start_ms) / 1000
}

/// `Written` summed over the pollers' documents, per second of the run.
pub fn written_by_second(records: &[EmfRecord], start_ms: u64) -> BTreeMap<u64, f64> {
    let mut seconds = BTreeMap::new();
    for record in records {
        if let Some(written) = record.written {
            *seconds.entry(second_of(record, start_ms)).or_insert(0.0) += written;
        }
    }
    seconds
}

/// (p50, p99, max) of the end-to-end lag values of every poller's documents, per second of the
/// run. A document's values may be quantiles of what it saw, so the p50 of the pooled values
/// weighs each poller's interval alike: close to the true median when pollers are similarly
/// busy. The max is exact (the quantiles include each interval's top slice).
pub fn lag_by_second(records: &[EmfRecord], start_ms: u64) -> BTreeMap<u64, (f64, f64, f64)> {
    let mut pooled: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for record in records.iter().filter(|r| !r.lag_ms.is_empty()) {
        pooled
            .entry(second_of(record, start_ms))
            .or_default()
            .extend(&record.lag_ms);
    }
    pooled
        .into_iter()
        .map(|(second, mut values)| {
            values.sort_by(f64::total_cmp);
            let p50 = values[(values.len() - 1) / 2];
            let p99 = values[(values.len() - 1) * 99 / 100];
            let max = values[values.len() - 1];
            (second, (p50, p99, max))
        })
        .collect()
}

/// Draws `points` under `title` to an SVG file at `path` (its directory is created).
pub fn render(title: &str, points: &[ChartPoint], path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    draw(title, points, path).with_context(|| format!("draw {}", path.display()))
}

type Panel<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
/// A line to draw: its legend label, its (second, value) points and its colour.
type Line<'a> = (&'a str, &'a [(f64, f64)], RGBColor);

fn draw(title: &str, points: &[ChartPoint], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 24))?;
    let panels = root.split_evenly((4, 1));
    let end = points.iter().map(|p| p.second).fold(1.0, f64::max);

    let accepted: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.second, p.accepted_per_s))
        .collect();
    panel(
        &panels[0],
        "accepted/s (2xx answers)",
        end,
        "writes/s",
        &[("accepted/s", &accepted, BLUE)],
    )?;

    let depth: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.second, (p.visible + p.in_flight) as f64))
        .collect();
    let in_flight: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.second, p.in_flight as f64))
        .collect();
    panel(
        &panels[1],
        "queue depth (visible + in flight, all queues)",
        end,
        "messages",
        &[
            ("visible + in flight", &depth, RED),
            ("in flight", &in_flight, MAGENTA),
        ],
    )?;

    let written: Vec<(f64, f64)> = points.iter().map(|p| (p.second, p.written_per_s)).collect();
    panel(
        &panels[2],
        "written/s",
        end,
        "writes/s",
        &[("written/s", &written, RGBColor(0, 140, 0))],
    )?;

    let p50: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.second, p.lag_p50_ms?)))
        .collect();
    let p99: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.second, p.lag_p99_ms?)))
        .collect();
    let max: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.second, p.lag_max_ms?)))
        .collect();
    panel(
        &panels[3],
        "end-to-end lag (received by ingest to written), per second",
        end,
        "ms",
        &[
            ("lag p50", &p50, BLACK),
            ("lag p99", &p99, RGBColor(230, 120, 0)),
            ("lag max", &max, CYAN),
        ],
    )?;
    if p50.is_empty() && max.is_empty() {
        let (width, height) = panels[3].dim_in_pixel();
        let style = TextStyle::from(("sans-serif", 18).into_font())
            .color(&BLACK)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ));
        panels[3].draw(&Text::new(
            NO_LAG_NOTE,
            (width as i32 / 2, height as i32 / 2),
            style,
        ))?;
    }
    root.present()?;
    Ok(())
}

/// One panel: `series` as lines against the run's seconds (0 to `end`), with a legend.
fn panel(
    area: &Panel<'_>,
    caption: &str,
    end: f64,
    unit: &str,
    series: &[Line<'_>],
) -> anyhow::Result<()> {
    let top = series
        .iter()
        .flat_map(|(_, values, _)| values.iter().map(|v| v.1))
        .fold(0.0, f64::max);
    // Headroom over the peak; an empty or all-zero series still gets a drawable axis.
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 19))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("t (s)")
        .y_desc(unit)
        .x_labels(12)
        .y_labels(6)
        .x_label_formatter(&|x| format!("{x:.0}"))
        // Whole numbers, unless the axis is too short for them to differ.
        .y_label_formatter(&|y| {
            if top >= 10.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        // Bold lines only: the light ones are most of the file and little of the reading.
        .max_light_lines(1)
        .draw()?;
    for (label, values, color) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                values.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(second: f64, lag: Option<f64>) -> ChartPoint {
        ChartPoint {
            second,
            accepted_per_s: 80.0 + second,
            visible: 40,
            in_flight: 120,
            written_per_s: 78.0,
            lag_p50_ms: lag,
            lag_p99_ms: lag.map(|l| l * 2.0),
            lag_max_ms: lag.map(|l| l * 3.0),
        }
    }

    fn rendered(name: &str, points: &[ChartPoint]) -> String {
        let dir = std::env::temp_dir().join(format!("spike-chart-{}", std::process::id()));
        let path = dir.join(name);
        render("soak: 3 writes, 1 client, 1 shard", points, &path).expect("rendered");
        let svg = std::fs::read_to_string(&path).expect("the SVG file");
        let _ = std::fs::remove_file(&path);
        svg
    }

    #[test]
    fn the_chart_is_an_svg_with_the_title_and_all_four_series() {
        let svg = rendered(
            "with-lag.svg",
            &[point(1.0, Some(30.0)), point(2.0, Some(45.0))],
        );
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in [
            "soak: 3 writes, 1 client, 1 shard",
            "accepted/s",
            "queue depth",
            "written/s",
            "end-to-end lag",
            "lag p50",
            "lag p99",
            "lag max",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        assert!(!svg.contains(NO_LAG_NOTE), "the note with lag data");
    }

    #[test]
    fn without_lag_data_the_lag_panel_says_so() {
        let svg = rendered("no-lag.svg", &[point(1.0, None), point(2.0, None)]);
        assert!(svg.contains(NO_LAG_NOTE), "no note in the lag panel");
    }

    fn record(timestamp_ms: u64, written: Option<f64>, lag_ms: &[f64]) -> EmfRecord {
        EmfRecord {
            timestamp_ms,
            written,
            lag_ms: lag_ms.to_vec(),
        }
    }

    #[test]
    fn pollers_documents_are_pooled_by_second_of_the_run() {
        let start = 1_000_000;
        let records = [
            record(start + 900, Some(10.0), &[5.0, 7.0]),
            record(start + 1_100, Some(20.0), &[10.0, 30.0]),
            record(start + 1_900, Some(5.0), &[20.0]),
            record(start + 2_000, None, &[]),
        ];
        assert_eq!(
            written_by_second(&records, start),
            BTreeMap::from([(0, 10.0), (1, 25.0)])
        );
        assert_eq!(
            lag_by_second(&records, start),
            BTreeMap::from([(0, (5.0, 5.0, 7.0)), (1, (20.0, 20.0, 30.0))])
        );
    }
}
