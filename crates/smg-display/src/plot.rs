//! Plots for notebooks, drawn with plotters into an RGB buffer and encoded to PNG with `image`
//! (no system fonts needed: DejaVu Sans ships inside this crate). Each builder shows itself
//! inline when it ends a cell, and `.render()` gives a [`Figure`] to save.

use crate::display::Figure;
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;
use smg_audio::MelConfig;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Error while drawing or encoding a plot.
#[derive(Debug, thiserror::Error)]
#[error("plot failed: {0}")]
pub struct PlotError(pub String);

fn perr(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

/// Registers the shipped font under "sans-serif" once per process (every plot calls it first).
pub fn ensure_font() {
    static FONT_ONCE: Once = Once::new();
    FONT_ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).unwrap_or_else(|_| panic!("shipped font is invalid"));
    });
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn render(w: u32, h: u32, draw: impl FnOnce(&Area) -> Result<(), PlotError>) -> Result<Figure, PlotError> {
    ensure_font();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        draw(&root)?;
        root.present().map_err(perr)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| perr("buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(perr)?;
    Ok(Figure { png, width: w, height: h })
}

/// Magma-like perceptual colour map on [0, 1].
pub fn magma(v: f32) -> RGBColor {
    const STOPS: [(f32, [u8; 3]); 7] = [
        (0.0, [0, 0, 4]),
        (0.17, [28, 16, 68]),
        (0.33, [79, 18, 123]),
        (0.5, [129, 37, 129]),
        (0.67, [181, 54, 122]),
        (0.83, [251, 136, 97]),
        (1.0, [252, 253, 191]),
    ];
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
    let i = STOPS.iter().position(|s| s.0 >= v).unwrap_or(6).max(1);
    let (a, b) = (STOPS[i - 1], STOPS[i]);
    let f = (v - a.0) / (b.0 - a.0);
    let mix = |k: usize| (a.1[k] as f32 + f * (b.1[k] as f32 - a.1[k] as f32)).round() as u8;
    RGBColor(mix(0), mix(1), mix(2))
}

fn finite_range(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 0.5, lo + 0.5)
    } else {
        (0.0, 1.0)
    }
}

/// Spectrogram heatmap: time (s) across, frequency (Hz at mel-band centres) up, colour bar.
#[derive(Debug, Clone)]
pub struct Spectrogram {
    data: Array2<f32>,
    title: String,
    mel: MelConfig,
    range: Option<(f32, f32)>,
    size: (u32, u32),
    unit: String,
}

/// Starts a spectrogram plot of an (n_mels, frames) array in the paper's mel convention.
pub fn spectrogram(mel: &Array2<f32>) -> Spectrogram {
    Spectrogram {
        data: mel.clone(),
        title: "log-mel spectrogram".into(),
        mel: MelConfig::hifigan(),
        range: None,
        size: (900, 320),
        unit: "ln mel".into(),
    }
}

impl Spectrogram {
    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = t.into();
        self
    }
    /// Fixed colour range (e.g. the same for original and reconstruction).
    pub fn range(mut self, lo: f32, hi: f32) -> Self {
        self.range = Some((lo, hi));
        self
    }
    pub fn size(mut self, w: u32, h: u32) -> Self {
        self.size = (w, h);
        self
    }
    /// Mel convention for the axes (sample rate, hop, band edges).
    pub fn config(mut self, cfg: MelConfig) -> Self {
        self.mel = cfg;
        self
    }
    /// Label of the colour bar (default "ln mel").
    pub fn unit(mut self, u: impl Into<String>) -> Self {
        self.unit = u.into();
        self
    }

    pub fn render(&self) -> Result<Figure, PlotError> {
        let (n_bands, frames) = self.data.dim();
        if n_bands == 0 || frames == 0 {
            return Err(perr("empty spectrogram"));
        }
        let (lo, hi) = self.range.unwrap_or_else(|| finite_range(self.data.iter().copied()));
        let secs = frames as f64 * self.mel.hop_length as f64 / self.mel.sample_rate as f64;
        let centres =
            if n_bands == self.mel.n_mels { smg_audio::mel::mel_band_centres(&self.mel) } else { (0..n_bands).map(|b| b as f64).collect() };
        let y_desc = if n_bands == self.mel.n_mels { "frequency (Hz)" } else { "band" };
        let (w, h) = self.size;
        render(w, h, |root| {
            let (main, bar) = root.split_horizontally(w.saturating_sub(90));
            let mut chart = ChartBuilder::on(&main)
                .caption(&self.title, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..secs, 0f64..n_bands as f64)
                .map_err(perr)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("time (s)")
                .y_desc(y_desc)
                .y_label_formatter(&|b| {
                    let i = (*b as usize).min(n_bands - 1);
                    format!("{:.0}", centres[i])
                })
                .draw()
                .map_err(perr)?;
            let area = chart.plotting_area();
            let (xr, yr) = area.get_pixel_range();
            let (pw, ph) = ((xr.end - xr.start) as usize, (yr.end - yr.start) as usize);
            let plain = area.strip_coord_spec();
            for px in 0..pw {
                let t = (px * frames / pw.max(1)).min(frames - 1);
                for py in 0..ph {
                    let b = ((ph - 1 - py) * n_bands / ph.max(1)).min(n_bands - 1);
                    let v = (self.data[[b, t]] - lo) / (hi - lo);
                    plain.draw_pixel((px as i32, py as i32), &magma(v)).map_err(perr)?;
                }
            }
            draw_colorbar(&bar, lo, hi, &self.unit)
        })
    }

    pub fn evcxr_display(&self) {
        self.render().expect("spectrogram plot").evcxr_display();
    }
}

fn draw_colorbar(area: &Area, lo: f32, hi: f32, unit: &str) -> Result<(), PlotError> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(34)
        .margin_bottom(44)
        .margin_right(8)
        .y_label_area_size(45)
        .caption(unit, ("sans-serif", 12))
        .build_cartesian_2d(0f32..1f32, lo..hi)
        .map_err(perr)?;
    chart.configure_mesh().disable_mesh().disable_x_axis().y_labels(5).y_label_style(("sans-serif", 12)).draw().map_err(perr)?;
    let steps = 64;
    chart
        .draw_series((0..steps).map(|i| {
            let a = lo + (hi - lo) * i as f32 / steps as f32;
            let b = lo + (hi - lo) * (i + 1) as f32 / steps as f32;
            Rectangle::new([(0.0, a), (1.0, b)], magma((i as f32 + 0.5) / steps as f32).filled())
        }))
        .map_err(perr)?;
    Ok(())
}

/// Waveform plot: min/max envelope per pixel column, time in seconds.
#[derive(Debug, Clone)]
pub struct Waveform {
    samples: Vec<f32>,
    sample_rate: u32,
    title: String,
    size: (u32, u32),
}

/// Starts a waveform plot of mono samples.
pub fn waveform(samples: &[f32], sample_rate: u32) -> Waveform {
    Waveform { samples: samples.to_vec(), sample_rate, title: "waveform".into(), size: (900, 220) }
}

impl Waveform {
    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = t.into();
        self
    }
    pub fn size(mut self, w: u32, h: u32) -> Self {
        self.size = (w, h);
        self
    }

    pub fn render(&self) -> Result<Figure, PlotError> {
        let n = self.samples.len();
        if n == 0 || self.sample_rate == 0 {
            return Err(perr("empty waveform"));
        }
        let secs = n as f64 / self.sample_rate as f64;
        let peak = self.samples.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-3) as f64 * 1.05;
        let (w, h) = self.size;
        render(w, h, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..secs, -peak..peak)
                .map_err(perr)?;
            chart.configure_mesh().light_line_style(WHITE).x_desc("time (s)").y_desc("amplitude").draw().map_err(perr)?;
            let cols = (w as usize).max(1);
            let color = RGBColor(31, 119, 180);
            let segs = (0..cols).filter_map(|c| {
                let a = c * n / cols;
                let b = ((c + 1) * n / cols).max(a + 1).min(n);
                if a >= n {
                    return None;
                }
                let (mn, mx) = self.samples[a..b].iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
                let t = a as f64 / self.sample_rate as f64;
                Some(PathElement::new(vec![(t, mn as f64), (t, mx as f64)], color))
            });
            chart.draw_series(segs).map_err(perr)?;
            Ok(())
        })
    }

    pub fn evcxr_display(&self) {
        self.render().expect("waveform plot").evcxr_display();
    }
}

/// Token-grid plot: rows = mel bands (row 0 at the bottom), columns = time; each code gets a
/// stable colour, masked cells are drawn dark grey with a cross.
#[derive(Debug, Clone)]
pub struct TokenGrid {
    tokens: Array2<u32>,
    mask: Option<Array2<bool>>,
    title: String,
    size: (u32, u32),
    show_ids: bool,
}

/// Starts a token-grid plot of an (H, W) grid of codebook indices.
pub fn token_grid(tokens: &Array2<u32>) -> TokenGrid {
    TokenGrid { tokens: tokens.clone(), mask: None, title: "token grid".into(), size: (900, 240), show_ids: false }
}

/// Stable, well-spread colour of a codebook index.
pub fn token_color(id: u32) -> RGBColor {
    let hue = (id as f64 * 0.618_033_988_75).fract();
    let light = 0.45 + 0.2 * ((id / 7) % 2) as f64;
    let HSLColor(h, s, l) = HSLColor(hue, 0.6, light);
    // plotters converts HSL to RGB through `to_backend_color`.
    let c = HSLColor(h, s, l).to_backend_color();
    RGBColor(c.rgb.0, c.rgb.1, c.rgb.2)
}

impl TokenGrid {
    /// Marks masked cells (same shape as the grid).
    pub fn mask(mut self, mask: &Array2<bool>) -> Self {
        self.mask = Some(mask.clone());
        self
    }
    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = t.into();
        self
    }
    pub fn size(mut self, w: u32, h: u32) -> Self {
        self.size = (w, h);
        self
    }
    /// Writes each code's index in its cell.
    pub fn show_ids(mut self, yes: bool) -> Self {
        self.show_ids = yes;
        self
    }

    pub fn render(&self) -> Result<Figure, PlotError> {
        let (rows, cols) = self.tokens.dim();
        if rows == 0 || cols == 0 {
            return Err(perr("empty token grid"));
        }
        if let Some(m) = &self.mask {
            if m.dim() != (rows, cols) {
                return Err(perr(format!("mask shape {:?} differs from grid {:?}", m.dim(), (rows, cols))));
            }
        }
        let (w, h) = self.size;
        render(w, h, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..cols as f64, 0f64..rows as f64)
                .map_err(perr)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("time (token column)")
                .y_desc("mel row")
                .y_labels(rows.min(10))
                .y_label_formatter(&|v| format!("{}", *v as usize))
                .draw()
                .map_err(perr)?;
            let grey = RGBColor(60, 60, 60);
            let mut cells = Vec::with_capacity(rows * cols);
            let mut crosses = Vec::new();
            for r in 0..rows {
                for c in 0..cols {
                    let masked = self.mask.as_ref().is_some_and(|m| m[[r, c]]);
                    let (x0, y0, x1, y1) = (c as f64, r as f64, c as f64 + 1.0, r as f64 + 1.0);
                    let color = if masked { grey } else { token_color(self.tokens[[r, c]]) };
                    cells.push(Rectangle::new([(x0, y0), (x1, y1)], color.filled()));
                    if masked {
                        crosses.push(PathElement::new(vec![(x0, y0), (x1, y1)], WHITE));
                        crosses.push(PathElement::new(vec![(x0, y1), (x1, y0)], WHITE));
                    }
                }
            }
            chart.draw_series(cells).map_err(perr)?;
            chart.draw_series(crosses).map_err(perr)?;
            if self.show_ids {
                let font = ("sans-serif", 9).into_font().color(&WHITE);
                let labels = (0..rows)
                    .flat_map(|r| (0..cols).map(move |c| (r, c)))
                    .map(|(r, c)| Text::new(format!("{}", self.tokens[[r, c]]), (c as f64 + 0.05, r as f64 + 0.7), font.clone()));
                chart.draw_series(labels).map_err(perr)?;
            }
            Ok(())
        })
    }

    pub fn evcxr_display(&self) {
        self.render().expect("token grid plot").evcxr_display();
    }
}

/// Line plot of one or more named series (loss curves, sweeps), optional log-scale y.
#[derive(Debug, Clone)]
pub struct LinePlot {
    series: Vec<(String, Vec<(f64, f64)>)>,
    title: String,
    x_label: String,
    y_label: String,
    log_y: bool,
    size: (u32, u32),
}

/// Starts an empty line plot.
pub fn line_plot(title: impl Into<String>) -> LinePlot {
    LinePlot { series: Vec::new(), title: title.into(), x_label: "x".into(), y_label: "y".into(), log_y: false, size: (720, 360) }
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

impl LinePlot {
    /// Adds a named series of (x, y) points.
    pub fn series(mut self, name: impl Into<String>, points: &[(f64, f64)]) -> Self {
        self.series.push((name.into(), points.to_vec()));
        self
    }
    pub fn labels(mut self, x: impl Into<String>, y: impl Into<String>) -> Self {
        self.x_label = x.into();
        self.y_label = y.into();
        self
    }
    /// Logarithmic y axis (non-positive values are dropped).
    pub fn log_y(mut self, yes: bool) -> Self {
        self.log_y = yes;
        self
    }
    pub fn size(mut self, w: u32, h: u32) -> Self {
        self.size = (w, h);
        self
    }

    pub fn render(&self) -> Result<Figure, PlotError> {
        let tf = |y: f64| if self.log_y { y.log10() } else { y };
        let pts: Vec<(String, Vec<(f64, f64)>)> = self
            .series
            .iter()
            .map(|(n, p)| {
                let p = p
                    .iter()
                    .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
                    .map(|(x, y)| (*x, tf(*y)))
                    .collect();
                (n.clone(), p)
            })
            .collect();
        let all = pts.iter().flat_map(|(_, p)| p.iter());
        let (x0, x1) = finite_range(all.clone().map(|p| p.0 as f32));
        let (y0, y1) = finite_range(all.map(|p| p.1 as f32));
        let pad = (y1 - y0) as f64 * 0.05;
        let (w, h) = self.size;
        let log_y = self.log_y;
        render(w, h, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(65)
                .build_cartesian_2d(x0 as f64..x1 as f64, y0 as f64 - pad..y1 as f64 + pad)
                .map_err(perr)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .y_label_formatter(&|v| if log_y { format!("{:.3}", 10f64.powf(*v)) } else { format!("{v:.3}") })
                .draw()
                .map_err(perr)?;
            for (i, (name, p)) in pts.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
                    .map_err(perr)?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            }
            if pts.len() > 1 || pts.first().is_some_and(|(n, _)| !n.is_empty()) {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 13))
                    .draw()
                    .map_err(perr)?;
            }
            Ok(())
        })
    }

    pub fn evcxr_display(&self) {
        self.render().expect("line plot").evcxr_display();
    }
}

/// Horizontal bar chart of labelled values (category counts, histograms).
#[derive(Debug, Clone)]
pub struct BarChart {
    bars: Vec<(String, f64)>,
    title: String,
    x_label: String,
    size: Option<(u32, u32)>,
}

/// Starts a bar chart of `(label, value)` pairs, drawn top to bottom in the given order.
pub fn bar_chart(title: impl Into<String>, bars: &[(String, f64)]) -> BarChart {
    BarChart { bars: bars.to_vec(), title: title.into(), x_label: "count".into(), size: None }
}

/// Histogram of `values` with `bins` equal-width bins, as a bar chart.
pub fn histogram(title: impl Into<String>, values: &[f64], bins: usize) -> BarChart {
    let (lo, hi) = finite_range(values.iter().map(|v| *v as f32));
    let (lo, hi) = (lo as f64, hi as f64);
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0f64; bins];
    for v in values.iter().filter(|v| v.is_finite()) {
        let b = (((v - lo) / width) as usize).min(bins - 1);
        counts[b] += 1.0;
    }
    let bars = counts
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{:.2}–{:.2}", lo + i as f64 * width, lo + (i + 1) as f64 * width), *c))
        .collect::<Vec<_>>();
    bar_chart(title, &bars)
}

impl BarChart {
    pub fn x_label(mut self, l: impl Into<String>) -> Self {
        self.x_label = l.into();
        self
    }
    pub fn size(mut self, w: u32, h: u32) -> Self {
        self.size = Some((w, h));
        self
    }

    pub fn render(&self) -> Result<Figure, PlotError> {
        let n = self.bars.len();
        if n == 0 {
            return Err(perr("no bars"));
        }
        let max = self.bars.iter().map(|b| b.1).fold(0f64, f64::max).max(1e-9) * 1.08;
        let label_px = self.bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(4) as u32 * 7 + 16;
        let (w, h) = self.size.unwrap_or((760, 70 + 20 * n as u32));
        render(w, h, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(label_px)
                .build_cartesian_2d(0f64..max, 0f64..n as f64)
                .map_err(perr)?;
            let labels: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .x_desc(&self.x_label)
                .y_labels(n * 2 + 1)
                .y_label_formatter(&|v| {
                    let f = *v - v.floor();
                    let i = n as i64 - 1 - v.floor() as i64;
                    if (f - 0.5).abs() < 0.26 && i >= 0 && (i as usize) < n {
                        labels[i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .draw()
                .map_err(perr)?;
            chart
                .draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
                    let y = (n - 1 - i) as f64;
                    Rectangle::new([(0.0, y + 0.15), (*v, y + 0.85)], PALETTE[0].filled())
                }))
                .map_err(perr)?;
            chart
                .draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
                    let y = (n - 1 - i) as f64;
                    Text::new(format!("{v}"), (*v + max * 0.005, y + 0.75), ("sans-serif", 11).into_font())
                }))
                .map_err(perr)?;
            Ok(())
        })
    }

    pub fn evcxr_display(&self) {
        self.render().expect("bar chart").evcxr_display();
    }
}

/// Heatmap of a labelled square or rectangular matrix (e.g. tag co-occurrence).
#[derive(Debug, Clone)]
pub struct Heatmap {
    values: Array2<f32>,
    rows: Vec<String>,
    cols: Vec<String>,
    title: String,
    size: Option<(u32, u32)>,
}

/// Starts a heatmap: `values[[r, c]]` with row and column labels.
pub fn heatmap(title: impl Into<String>, values: &Array2<f32>, rows: &[String], cols: &[String]) -> Heatmap {
    Heatmap { values: values.clone(), rows: rows.to_vec(), cols: cols.to_vec(), title: title.into(), size: None }
}

impl Heatmap {
    pub fn size(mut self, w: u32, h: u32) -> Self {
        self.size = Some((w, h));
        self
    }

    pub fn render(&self) -> Result<Figure, PlotError> {
        let (nr, nc) = self.values.dim();
        if nr == 0 || nc == 0 || self.rows.len() != nr || self.cols.len() != nc {
            return Err(perr(format!("heatmap {}x{} with {} row and {} column labels", nr, nc, self.rows.len(), self.cols.len())));
        }
        let (lo, hi) = finite_range(self.values.iter().copied());
        let label_px = self.rows.iter().map(|r| r.chars().count()).max().unwrap_or(4) as u32 * 7 + 16;
        let col_px = 40;
        let (w, h) = self.size.unwrap_or((label_px + 26 * nc as u32 + 120, col_px + 26 * nr as u32 + 60));
        render(w, h, |root| {
            let (main, bar) = root.split_horizontally(w.saturating_sub(90));
            let mut chart = ChartBuilder::on(&main)
                .caption(&self.title, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(col_px)
                .y_label_area_size(label_px)
                .build_cartesian_2d(0f64..nc as f64, 0f64..nr as f64)
                .map_err(perr)?;
            let (rows, cols) = (&self.rows, &self.cols);
            let pick = |v: f64, n: usize, labels: &Vec<String>, flip: bool| {
                let f = v - v.floor();
                let i = v.floor() as i64;
                let i = if flip { n as i64 - 1 - i } else { i };
                if (f - 0.5).abs() < 0.26 && i >= 0 && (i as usize) < n {
                    labels[i as usize].clone()
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(nc * 2 + 1)
                .y_labels(nr * 2 + 1)
                .x_label_formatter(&|v| pick(*v, nc, cols, false))
                .y_label_formatter(&|v| pick(*v, nr, rows, true))
                .draw()
                .map_err(perr)?;
            let cells = (0..nr).flat_map(|r| (0..nc).map(move |c| (r, c))).map(|(r, c)| {
                let y = (nr - 1 - r) as f64;
                let v = (self.values[[r, c]] - lo) / (hi - lo);
                Rectangle::new([(c as f64, y), (c as f64 + 1.0, y + 1.0)], magma(v).filled())
            });
            chart.draw_series(cells).map_err(perr)?;
            draw_colorbar(&bar, lo, hi, "")
        })
    }

    pub fn evcxr_display(&self) {
        self.render().expect("heatmap").evcxr_display();
    }
}
