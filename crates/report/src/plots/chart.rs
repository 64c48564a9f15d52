//! The frame every figure draws into: its title, the chart with its axes and fonts, the
//! legend box and the panel that says what is missing.

use std::ops::Range;

use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters_backend::BackendCoord;

use super::scale::{log_ticks, ticks, wrap};
use super::style::{FONT, GREY};
use crate::error::PlotError;
use crate::results::Obs;

/// What drawing a figure's parts returns.
pub(super) type Drawn<T> = std::result::Result<T, PlotError>;

/// The parts of a figure: a drawing area in pixels.
pub(super) type Area<DB> = DrawingArea<DB, Shift>;

/// A log axis with its tick marks where the figure puts them.
pub(super) type LogAxis = WithKeyPoints<LogCoord<f64>>;

/// A log axis over `range`, ticked at `ticks`.
pub(super) fn log_axis(range: &Range<f64>, ticks: Vec<f64>) -> LogAxis {
    range.clone().log_scale().with_key_points(ticks)
}

/// A log axis over `range` with 1-2-5 ticks per decade ([`log_ticks`]).
pub(super) fn decade_axis(range: &Range<f64>) -> LogAxis {
    log_axis(range, log_ticks(range.start, range.end))
}

/// A log loss axis over `range` with round ticks ([`ticks`]).
pub(super) fn loss_axis(range: &Range<f64>) -> LogAxis {
    log_axis(range, ticks(range.start, range.end))
}

/// A chart with two `f64` axes, as the figures draw them.
pub(super) type Chart<'a, DB, X, Y> = ChartContext<'a, DB, Cartesian2d<X, Y>>;

/// A tick-label formatter.
pub(super) type Labels<'f> = &'f dyn Fn(&f64) -> String;

/// The axes of one chart: what each says, its tick labels and the sizes around it. The
/// figures' panels share one set of sizes ([`Axes::panel`]); a figure that is one chart
/// has larger text ([`Axes::single`]).
pub(super) struct Axes<'f> {
    caption: Option<(String, u32)>,
    margin: u32,
    x_area: u32,
    y_area: u32,
    label_font: u32,
    desc_font: u32,
    x_desc: String,
    y_desc: String,
    x_labels: Option<Labels<'f>>,
    y_labels: Option<Labels<'f>>,
}

impl<'f> Axes<'f> {
    /// A panel of a grid: 10 px margin, 48 px under the x axis, 62 px left of the y axis,
    /// tick labels at 14 px and axis descriptions at 15 px.
    pub(super) fn panel(x_desc: impl Into<String>, y_desc: impl Into<String>) -> Self {
        Axes {
            caption: None,
            margin: 10,
            x_area: 48,
            y_area: 62,
            label_font: 14,
            desc_font: 15,
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            x_labels: None,
            y_labels: None,
        }
    }

    /// A figure that is one chart: 12 px margin, 50 px under the x axis, `y_area` px left
    /// of the y axis, tick labels at 16 px and axis descriptions at 17 px.
    pub(super) fn single(
        x_desc: impl Into<String>,
        y_desc: impl Into<String>,
        y_area: u32,
    ) -> Self {
        Axes {
            margin: 12,
            x_area: 50,
            y_area,
            label_font: 16,
            desc_font: 17,
            ..Axes::panel(x_desc, y_desc)
        }
    }

    /// A caption above the chart at `size` px.
    pub(super) fn caption(mut self, text: impl Into<String>, size: u32) -> Self {
        self.caption = Some((text.into(), size));
        self
    }

    /// The margin around the chart.
    pub(super) fn margin(mut self, margin: u32) -> Self {
        self.margin = margin;
        self
    }

    /// The width of the y label area.
    pub(super) fn y_area(mut self, y_area: u32) -> Self {
        self.y_area = y_area;
        self
    }

    /// Tick labels of the x axis (plotters' own when not set).
    pub(super) fn x_labels(mut self, labels: Labels<'f>) -> Self {
        self.x_labels = Some(labels);
        self
    }

    /// Tick labels of the y axis (plotters' own when not set).
    pub(super) fn y_labels(mut self, labels: Labels<'f>) -> Self {
        self.y_labels = Some(labels);
        self
    }

    /// Builds the chart on `area` over `x` and `y` and draws its axes (no grid lines).
    pub(super) fn draw<'a, DB, X, Y>(
        &self,
        area: &'a DrawingArea<DB, Shift>,
        x: X,
        y: Y,
    ) -> Drawn<Chart<'a, DB, X::CoordDescType, Y::CoordDescType>>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut builder = ChartBuilder::on(area);
        if let Some((text, size)) = &self.caption {
            builder.caption(text, (FONT, *size));
        }
        let mut chart = builder
            .margin(self.margin)
            .x_label_area_size(self.x_area)
            .y_label_area_size(self.y_area)
            .build_cartesian_2d(x, y)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str());
        if let Some(labels) = self.x_labels {
            mesh.x_label_formatter(labels);
        }
        if let Some(labels) = self.y_labels {
            mesh.y_label_formatter(labels);
        }
        mesh.label_style((FONT, self.label_font))
            .axis_desc_style((FONT, self.desc_font))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        Ok(chart)
    }
}

/// The legend box of `chart` at `position`, its labels at `size` px.
pub(super) fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    size: u32,
) -> Drawn<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font((FONT, size))
        .draw()?;
    Ok(())
}

/// The runs of one curve as filled dots of `radius` px (loss against tokens), with their
/// legend entry.
pub(super) fn run_dots<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB, LogAxis, LogAxis>,
    runs: &[&Obs],
    radius: u32,
    color: RGBColor,
    label: String,
) -> Drawn<()> {
    chart
        .draw_series(
            runs.iter()
                .map(|o| Circle::new((o.tokens, o.loss), radius, color.filled())),
        )?
        .label(label)
        .legend(line_key(color, 3));
    Ok(())
}

/// A legend entry's key: a short line in `color`, `width` px wide.
pub(super) fn line_key(
    color: RGBColor,
    width: u32,
) -> impl Fn(BackendCoord) -> PathElement<BackendCoord> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
}

/// Draws `text` as the figure's title at the largest size from 26 px down to 16 px whose
/// measured width fits the image with a margin; a title too long even then goes on two
/// lines, broken at the space nearest its middle. Returns the area below the title.
pub(super) fn titled_to_fit<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
) -> Drawn<DrawingArea<DB, Shift>> {
    let (w, _) = root.dim_in_pixel();
    let room = w.saturating_sub(40);
    let fits = |t: &str, size: i32| -> Drawn<bool> {
        let style: TextStyle = (FONT, size).into();
        Ok(root.estimate_text_size(t, &style)?.0 <= room)
    };
    for size in [26, 24, 22, 20, 18, 16] {
        if fits(text, size)? {
            return Ok(root.titled(text, (FONT, size))?);
        }
    }
    let mid = text.chars().count() / 2;
    let cut = text
        .char_indices()
        .filter(|(_, c)| *c == ' ')
        .map(|(i, _)| i)
        .min_by_key(|&i| (text[..i].chars().count() as i64 - mid as i64).abs())
        .unwrap_or(text.len());
    let (a, b) = text.split_at(cut);
    let lines = [a.trim(), b.trim()];
    let mut size = 20;
    while size > 12 && !(fits(lines[0], size)? && fits(lines[1], size)?) {
        size -= 1;
    }
    let line_h = size + 6;
    let (top, rest) = root.split_vertically(2 * line_h as u32 + 14);
    let style = TextStyle::from((FONT, size)).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Top,
    ));
    for (i, line) in lines.iter().enumerate() {
        top.draw_text(line, &style, (w as i32 / 2, 6 + i as i32 * line_h))?;
    }
    Ok(rest)
}

/// A panel that says what is missing.
pub(super) fn message<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    head: &str,
    lines: &[String],
) -> Drawn<()> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Rectangle::new(
        [(8, 8), (w as i32 - 8, h as i32 - 8)],
        GREY.stroke_width(1),
    ))?;
    let width = (w as usize / 10).max(20);
    let mut y = 30;
    for (i, line) in std::iter::once(head.to_string())
        .chain(lines.iter().cloned())
        .enumerate()
    {
        for l in wrap(&line, width) {
            let style = (FONT, if i == 0 { 20 } else { 16 })
                .into_font()
                .color(if i == 0 { &RED } else { &BLACK });
            area.draw(&Text::new(l, (20, y), style))?;
            y += if i == 0 { 28 } else { 22 };
        }
        y += 4;
    }
    Ok(())
}

/// A red note at `at` in `area`, at 14 px: what a panel lacks.
pub(super) fn note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: String,
    at: (i32, i32),
) -> Drawn<()> {
    area.draw(&Text::new(text, at, (FONT, 14).into_font().color(&RED)))?;
    Ok(())
}
