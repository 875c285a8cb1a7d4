//! The latency chart of `quire bench --plot FILE`: p50, p99 and p99.9 of
//! each workload run and operation kind, log scale, as a PNG.
//!
//! Text is drawn with a TrueType font found on the machine (DejaVu Sans or
//! Liberation Sans, as Debian's fonts-dejavu-core / fonts-liberation
//! install them).

use super::BenchReport;
use plotters::prelude::*;
use std::path::Path;

/// Where fonts are looked for, in order.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// No usable font.
    #[error("no TrueType font found for the chart (tried {0}); install fonts-dejavu-core")]
    NoFont(String),
    /// Drawing or encoding failed.
    #[error("cannot draw the chart: {0}")]
    Draw(String),
}

fn register_font() -> Result<(), PlotError> {
    for path in FONT_CANDIDATES {
        if let Ok(bytes) = std::fs::read(path) {
            // Plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(PlotError::NoFont(FONT_CANDIDATES.join(", ")))
}

/// One target's bars: a label and (p50, p99, p99.9) per group.
type Panel = (String, Vec<(String, [u64; 3])>);

/// Draws every run of `reports` into the PNG at `path`: one panel per
/// target, three bars (p50, p99, p99.9) per workload run and operation.
pub fn draw(reports: &[BenchReport], path: &Path) -> Result<(), PlotError> {
    register_font()?;
    let draw_err = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
    let panels: Vec<Panel> = reports
        .iter()
        .map(|r| {
            let groups = r
                .runs
                .iter()
                .flat_map(|run| {
                    run.kinds.iter().map(move |k| {
                        let pace = run.pace.replace("open@", "open ");
                        (
                            format!("{} {pace} {}", run.workload, k.kind),
                            [k.p50_us.max(1), k.p99_us.max(1), k.p999_us.max(1)],
                        )
                    })
                })
                .collect();
            (r.target.clone(), groups)
        })
        .filter(|(_, g): &Panel| !g.is_empty())
        .collect();
    if panels.is_empty() {
        return Err(PlotError::Draw("nothing was measured".into()));
    }
    let widest = panels.iter().map(|(_, g)| g.len()).max().unwrap_or(1) as u32;
    let width = (widest * 120 + 120).clamp(800, 4000);
    let root = BitMapBackend::new(path, (width, 420 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    for ((target, groups), area) in panels.iter().zip(root.split_evenly((panels.len(), 1))) {
        let top = groups
            .iter()
            .flat_map(|(_, v)| v.iter())
            .copied()
            .max()
            .unwrap_or(1) as f64
            * 12.0;
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("{target}: latency (µs, log scale)"),
                ("sans-serif", 22),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..groups.len() as f64, (10f64..top).log_scale())
            .map_err(|e| draw_err(&e))?;
        let labels: Vec<String> = groups.iter().map(|(l, _)| l.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_style(("sans-serif", 12))
            .y_desc("µs")
            .draw()
            .map_err(|e| draw_err(&e))?;
        const COLOURS: [RGBColor; 3] = [
            RGBColor(70, 130, 180),
            RGBColor(230, 150, 30),
            RGBColor(200, 50, 50),
        ];
        let names = ["p50", "p99", "p99.9"];
        for (series, &colour) in COLOURS.iter().enumerate() {
            let bars = groups.iter().enumerate().map(move |(i, (_, v))| {
                let x0 = i as f64 + 0.12 + series as f64 * 0.26;
                Rectangle::new([(x0, 10.0), (x0 + 0.24, v[series] as f64)], colour.filled())
            });
            chart
                .draw_series(bars)
                .map_err(|e| draw_err(&e))?
                .label(names[series])
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| draw_err(&e))?;
    }
    root.present().map_err(|e| draw_err(&e))?;
    Ok(())
}
