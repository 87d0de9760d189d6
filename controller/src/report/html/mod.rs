//! `report.html`: a self-contained page of charts and tables, and the page
//! builders of a run ([`run_page`]), a sweep ([`sweep_page`]) and a plan
//! ([`plan_page`]).
//!
//! # The page builder
//!
//! A [`Page`] is a title, notes and [`Section`]s; a section holds text,
//! [`Table`]s and [`Chart`]s in order. [`Page::render`] returns one HTML
//! document with every asset inline: the vendored dygraphs library
//! (`controller/assets/dygraph.min.js`, MIT, from Debian's
//! `libjs-dygraphs` 2.2.1; its licence is embedded in the page), its CSS,
//! and Quarry's glue script, which reads each chart's data from a
//! `<script type="application/json" class="quarry-chart">` block and hands
//! it to dygraphs. The page fetches nothing: it opens offline, from a CI
//! artifact or an air-gapped laptop.
//!
//! Every chart is followed by its data as a table in a `<details>`
//! element (the fallback without JavaScript, and for screen readers), and
//! its series are drawn in the Okabe–Ito colour-blind-safe palette, with
//! reference lines (an SLO bound, a quota) dashed in black.
//!
//! ```
//! use quarry::report::html::{Axis, Chart, Page, Section, Series, Table};
//!
//! let mut chart = Chart::new("ttft", "TTFT p99 against load",
//!     Axis::linear("concurrency"), Axis::linear("ms"));
//! chart.series(Series::new("TTFT p99"));
//! chart.series(Series::reference("SLO bound"));
//! chart.row(1.0, [Some(120.0), Some(500.0)]);
//! chart.row(8.0, [Some(640.0), Some(500.0)]);
//! chart.annotate("TTFT p99", 1.0, "knee", "feasible_max = 1");
//!
//! let mut table = Table::new(["level", "verdict"]);
//! table.row(["1", "pass"]);
//!
//! let mut section = Section::new("Latency against load");
//! section.text("Successful requests, from send.");
//! section.chart(chart);
//! section.table(table);
//!
//! let mut page = Page::new("quarry sweep");
//! page.section(section);
//! let html = page.render();
//! assert!(html.contains("class=\"quarry-chart\""));
//! assert!(!html.contains("<script src") && !html.contains("<link"));
//! ```
//!
//! Values are plain `f64`s in the unit the axis names; a missing value is
//! `None` (a gap). A chart with more than [`MAX_CHART_ROWS`] rows should
//! be bucketed by its builder ([`Chart::bands`] draws each bucket's
//! minimum, mean and maximum) and say so in a note.

mod plan;
mod run;
mod sweep;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::report::RunFigures;
use crate::results::{ResultsDocument, ResultsError};

pub use plan::plan_page;
pub use run::{TimePoint, read_time_series, run_page};
pub use sweep::sweep_page;

/// The file name of the page in a run, sweep or plan directory.
pub const REPORT_HTML: &str = "report.html";

/// Charts keep at most this many rows; longer time series are bucketed
/// (minimum, mean and maximum per bucket).
pub const MAX_CHART_ROWS: usize = 1_440;

const DYGRAPHS_JS: &str = include_str!("../../../assets/dygraph.min.js");
const DYGRAPHS_CSS: &str = include_str!("../../../assets/dygraph.min.css");
const DYGRAPHS_LICENSE: &str = include_str!("../../../assets/dygraphs-LICENSE");
const GLUE_JS: &str = include_str!("../../../assets/report.js");

const PAGE_CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#111}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
td.pass{background:#e0f0ff}td.fail{background:#ffe6cc;font-weight:bold}
figure.chart{margin:1em 0}.plot{width:100%;height:320px}.legend{font-size:.85em;min-height:1.2em}
figcaption{font-weight:bold}.note{color:#444;font-size:.9em}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:.8em}
";

/// How an axis labels its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AxisFormat {
    /// Numbers as they are.
    Number,
    /// `1 / (1 - p)` shown as the percentile `p` (an HDR distribution's
    /// x axis: 2 is 50%, 100 is 99%).
    Percentile,
    /// Seconds shown as hours.
    Hours,
    /// Integer positions labelled by [`Axis::categories`].
    Category,
}

/// One axis of a chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Axis {
    /// The axis title, with its unit.
    pub label: String,
    /// Logarithmic scale.
    pub log: bool,
    /// How values are labelled.
    pub format: AxisFormat,
    /// Include zero in the range.
    pub zero: bool,
    /// Labels of the positions 0, 1, ... ([`AxisFormat::Category`]).
    pub categories: Vec<String>,
}

impl Axis {
    /// A linear axis.
    pub fn linear(label: impl Into<String>) -> Self {
        Axis {
            label: label.into(),
            log: false,
            format: AxisFormat::Number,
            zero: false,
            categories: Vec::new(),
        }
    }

    /// A linear axis whose range includes zero.
    pub fn from_zero(label: impl Into<String>) -> Self {
        Axis {
            zero: true,
            ..Axis::linear(label)
        }
    }

    /// A logarithmic axis.
    pub fn log(label: impl Into<String>) -> Self {
        Axis {
            log: true,
            ..Axis::linear(label)
        }
    }

    /// The x axis of a percentile distribution: values are `1 / (1 - p)`,
    /// on a log scale, labelled as percentiles.
    pub fn percentile() -> Self {
        Axis {
            label: "percentile".to_owned(),
            log: true,
            format: AxisFormat::Percentile,
            zero: false,
            categories: Vec::new(),
        }
    }

    /// A time axis in seconds, labelled in hours.
    pub fn hours(label: impl Into<String>) -> Self {
        Axis {
            format: AxisFormat::Hours,
            ..Axis::linear(label)
        }
    }

    /// Named positions 0, 1, ...
    pub fn categories(label: impl Into<String>, names: Vec<String>) -> Self {
        Axis {
            format: AxisFormat::Category,
            categories: names,
            ..Axis::linear(label)
        }
    }
}

/// One series of a chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Its legend label (unique within the chart).
    pub label: String,
    /// A reference line (a bound, a quota): dashed, black.
    pub reference: bool,
    /// Dashed, in its palette colour (one of several limits).
    pub dashed: bool,
    /// Drawn against the second y axis.
    pub y2: bool,
}

impl Series {
    /// A measured series.
    pub fn new(label: impl Into<String>) -> Self {
        Series {
            label: label.into(),
            reference: false,
            dashed: false,
            y2: false,
        }
    }

    /// A dashed series in its palette colour (one of several limits).
    pub fn dashed(label: impl Into<String>) -> Self {
        Series {
            dashed: true,
            ..Series::new(label)
        }
    }

    /// A reference line.
    pub fn reference(label: impl Into<String>) -> Self {
        Series {
            reference: true,
            ..Series::new(label)
        }
    }

    /// This series against the second y axis.
    pub fn on_y2(mut self) -> Self {
        self.y2 = true;
        self
    }
}

/// A point marked on a series, with a short label and a tooltip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotation {
    /// The series it sits on.
    pub series: String,
    /// Its x value (must be a row's x).
    pub x: f64,
    /// The label drawn (a few characters).
    pub short: String,
    /// The tooltip.
    pub text: String,
}

/// One value of a row: a point, or a bucket's `[min, mean, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A point.
    Point(f64),
    /// `[min, mean, max]` of a bucket ([`Chart::bands`]).
    Band([f64; 3]),
}

/// How a chart draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// Lines between points.
    Lines,
    /// Filled bars over category positions (see [`Chart::bar`]).
    Bars,
}

/// A chart: its axes, series and rows, drawn by dygraphs, with its data
/// table below it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    /// Unique within the page: `[a-z0-9-]`.
    pub id: String,
    /// The title.
    pub title: String,
    /// Lines or bars.
    pub kind: ChartKind,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// A second y axis, for series marked [`Series::on_y2`].
    pub y2: Option<Axis>,
    /// The series, in legend order.
    pub series: Vec<Series>,
    /// Rows: x, then one value per series (`None`: no value); in the
    /// page's JSON each row is one flat array `[x, v1, v2, ...]`, as
    /// dygraphs takes it.
    #[serde(serialize_with = "flat_rows")]
    pub rows: Vec<(f64, Vec<Option<Value>>)>,
    /// Values are `[min, mean, max]` bands.
    pub bands: bool,
    /// Draw a dot at each point.
    pub points: bool,
    /// Marked points.
    pub annotations: Vec<Annotation>,
    /// What the reader must know (the source, a bucketing).
    pub notes: Vec<String>,
    /// The data table below the chart; `None`: one is made from the rows.
    #[serde(skip)]
    pub table: Option<Table>,
}

impl Chart {
    /// A line chart with no series yet.
    pub fn new(id: impl Into<String>, title: impl Into<String>, x: Axis, y: Axis) -> Self {
        Chart {
            id: id.into(),
            title: title.into(),
            kind: ChartKind::Lines,
            x,
            y,
            y2: None,
            series: Vec::new(),
            rows: Vec::new(),
            bands: false,
            points: false,
            annotations: Vec::new(),
            notes: Vec::new(),
            table: None,
        }
    }

    /// Adds a series (before the rows).
    pub fn series(&mut self, s: Series) -> &mut Self {
        self.series.push(s);
        self
    }

    /// Adds a row of points, one value per series. Non-finite values are
    /// gaps.
    pub fn row(&mut self, x: f64, values: impl IntoIterator<Item = Option<f64>>) -> &mut Self {
        let values = values
            .into_iter()
            .map(|v| v.filter(|v| v.is_finite()).map(Value::Point))
            .collect();
        self.rows.push((x, values));
        self
    }

    /// Adds a row of `[min, mean, max]` bands and marks the chart as
    /// banded (every row must then be bands).
    pub fn band_row(&mut self, x: f64, values: impl IntoIterator<Item = Option<[f64; 3]>>) {
        self.bands = true;
        let values = values
            .into_iter()
            .map(|v| {
                v.filter(|b| b.iter().all(|v| v.is_finite()))
                    .map(Value::Band)
            })
            .collect();
        self.rows.push((x, values));
    }

    /// Marks `x` on `series`.
    pub fn annotate(
        &mut self,
        series: impl Into<String>,
        x: f64,
        short: impl Into<String>,
        text: impl Into<String>,
    ) -> &mut Self {
        self.annotations.push(Annotation {
            series: series.into(),
            x,
            short: short.into(),
            text: text.into(),
        });
        self
    }

    /// Adds a note shown under the title.
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.notes.push(text.into());
        self
    }

    /// Draws a dot at each point (for charts of few points, like a sweep's
    /// levels).
    pub fn with_points(mut self) -> Self {
        self.points = true;
        self
    }

    /// A second y axis.
    pub fn with_y2(mut self, axis: Axis) -> Self {
        self.y2 = Some(axis);
        self
    }

    /// A bar chart of one value per named category (`None`: no bar). The
    /// data table lists the categories and values as given.
    pub fn bar(
        id: impl Into<String>,
        title: impl Into<String>,
        category_label: &str,
        value: Axis,
        series: &str,
        bars: &[(String, Option<f64>)],
    ) -> Self {
        let names: Vec<String> = bars.iter().map(|(n, _)| n.clone()).collect();
        let mut chart = Chart::new(id, title, Axis::categories(category_label, names), value);
        chart.kind = ChartKind::Bars;
        chart.series(Series::new(series));
        let mut table = Table::new([category_label, series]);
        for (i, (name, v)) in bars.iter().enumerate() {
            // A step at the bar's left edge, back to 0 at its right one.
            chart.row(i as f64 - 0.4, [*v]);
            chart.row(i as f64 + 0.4, [v.map(|_| 0.0)]);
            table.row([name.clone(), v.map_or_else(|| "-".to_owned(), number)]);
        }
        chart.table = Some(table);
        chart
    }

    /// The data table: the given one, or the rows with the x label and the
    /// series labels as the header.
    fn data_table(&self) -> Table {
        if let Some(t) = &self.table {
            return t.clone();
        }
        let mut header = vec![self.x.label.clone()];
        for s in &self.series {
            if self.bands {
                header.push(format!("{} min", s.label));
                header.push(format!("{} mean", s.label));
                header.push(format!("{} max", s.label));
            } else {
                header.push(s.label.clone());
            }
        }
        let mut table = Table::new(header);
        for (x, values) in &self.rows {
            let mut cells = vec![match self.x.format {
                AxisFormat::Percentile => percentile_text(*x),
                _ => number(*x),
            }];
            for v in values {
                match (v, self.bands) {
                    (Some(Value::Band(b)), _) => cells.extend(b.iter().map(|v| number(*v))),
                    (Some(Value::Point(p)), _) => cells.push(number(*p)),
                    (None, true) => cells.extend(std::iter::repeat_n("-".to_owned(), 3)),
                    (None, false) => cells.push("-".to_owned()),
                }
            }
            table.row(cells);
        }
        table
    }

    fn render(&self, out: &mut String) {
        let id = escape(&self.id);
        let _ = write!(
            out,
            "<figure class=\"chart\" id=\"chart-{id}\"><figcaption>{}</figcaption>",
            escape(&self.title)
        );
        for n in &self.notes {
            let _ = write!(out, "<p class=\"note\">{}</p>", escape(n));
        }
        let _ = write!(
            out,
            "<div class=\"plot\" id=\"plot-{id}\" role=\"img\" aria-label=\"{}\"></div><div class=\"legend\" id=\"legend-{id}\"></div>",
            escape(&self.title)
        );
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        let _ = write!(
            out,
            "<script type=\"application/json\" class=\"quarry-chart\" id=\"data-{id}\">{}</script>",
            json_safe(&json)
        );
        let table = self.data_table();
        let _ = write!(
            out,
            "<details><summary>Data ({} rows)</summary>",
            table.rows.len()
        );
        table.render(out);
        out.push_str("</details></figure>\n");
    }
}

/// Rows as `[[x, v1, v2, ...], ...]`.
fn flat_rows<S: serde::Serializer>(
    rows: &[(f64, Vec<Option<Value>>)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq as _;
    let mut seq = serializer.serialize_seq(Some(rows.len()))?;
    for (x, values) in rows {
        let mut row = Vec::with_capacity(values.len() + 1);
        row.push(serde_json::json!(x));
        row.extend(values.iter().map(|v| serde_json::json!(v)));
        seq.serialize_element(&row)?;
    }
    seq.end()
}

/// A table cell: its text and how it is marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The text (escaped when rendered).
    pub text: String,
    /// `Some(true)`: a pass, `Some(false)`: a fail (marked in colour and
    /// bold); `None`: plain.
    pub verdict: Option<bool>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell {
            text,
            verdict: None,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::from(text.to_owned())
    }
}

impl Cell {
    /// A pass/fail cell: "pass" or "FAIL".
    pub fn verdict(passed: bool) -> Self {
        Cell {
            text: if passed { "pass" } else { "FAIL" }.to_owned(),
            verdict: Some(passed),
        }
    }
}

/// A table with a header row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Shown above it.
    pub caption: Option<String>,
    /// Column titles.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            caption: None,
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// With a caption.
    pub fn caption(mut self, text: impl Into<String>) -> Self {
        self.caption = Some(text.into());
        self
    }

    /// Adds a row.
    pub fn row<C: Into<Cell>>(&mut self, cells: impl IntoIterator<Item = C>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("<table>");
        if let Some(c) = &self.caption {
            let _ = write!(out, "<caption>{}</caption>", escape(c));
        }
        out.push_str("<thead><tr>");
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead><tbody>");
        for r in &self.rows {
            out.push_str("<tr>");
            for c in r {
                let class = match c.verdict {
                    Some(true) => " class=\"pass\"",
                    Some(false) => " class=\"fail\"",
                    None => "",
                };
                let _ = write!(out, "<td{class}>{}</td>", escape(&c.text));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>\n");
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Block {
    Text(String),
    Pre(String),
    Table(Table),
    Chart(Box<Chart>),
}

/// A headed part of a page: text, tables and charts in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    heading: String,
    blocks: Vec<Block>,
}

impl Section {
    /// An empty section.
    pub fn new(heading: impl Into<String>) -> Self {
        Section {
            heading: heading.into(),
            blocks: Vec::new(),
        }
    }

    /// A paragraph.
    pub fn text(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Text(text.into()));
        self
    }

    /// Preformatted text (a text report), folded away.
    pub fn preformatted(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Pre(text.into()));
        self
    }

    /// A table.
    pub fn table(&mut self, table: Table) -> &mut Self {
        self.blocks.push(Block::Table(table));
        self
    }

    /// A chart (with its data table).
    pub fn chart(&mut self, chart: Chart) -> &mut Self {
        self.blocks.push(Block::Chart(Box::new(chart)));
        self
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "<section><h2>{}</h2>", escape(&self.heading));
        for b in &self.blocks {
            match b {
                Block::Text(t) => {
                    let _ = writeln!(out, "<p>{}</p>", escape(t));
                }
                Block::Pre(t) => {
                    let _ = writeln!(
                        out,
                        "<details><summary>Text</summary><pre>{}</pre></details>",
                        escape(t)
                    );
                }
                Block::Table(t) => t.render(out),
                Block::Chart(c) => c.render(out),
            }
        }
        out.push_str("</section>\n");
    }
}

/// A whole report page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    title: String,
    notes: Vec<String>,
    sections: Vec<Section>,
}

impl Page {
    /// An empty page.
    pub fn new(title: impl Into<String>) -> Self {
        Page {
            title: title.into(),
            notes: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// A line under the title.
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.notes.push(text.into());
        self
    }

    /// Adds a section (an empty one is left out).
    pub fn section(&mut self, section: Section) -> &mut Self {
        if !section.is_empty() {
            self.sections.push(section);
        }
        self
    }

    /// The charts of the page, in order.
    pub fn charts(&self) -> impl Iterator<Item = &Chart> {
        self.sections.iter().flat_map(|s| {
            s.blocks.iter().filter_map(|b| match b {
                Block::Chart(c) => Some(c.as_ref()),
                _ => None,
            })
        })
    }

    /// The page as one self-contained HTML document.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(DYGRAPHS_JS.len() + 64 * 1024);
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        // Nothing is fetched: no external source, and the browser is told so.
        out.push_str(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">",
        );
        let _ = write!(out, "<title>{}</title>", escape(&self.title));
        let _ = write!(out, "<style>{}{}</style>", DYGRAPHS_CSS, PAGE_CSS);
        out.push_str("</head><body>\n");
        let _ = writeln!(out, "<h1>{}</h1>", escape(&self.title));
        for n in &self.notes {
            let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(n));
        }
        for s in &self.sections {
            s.render(&mut out);
        }
        let _ = writeln!(
            out,
            "<footer><details><summary>Charts drawn with dygraphs 2.2.1 (MIT), embedded</summary><pre>{}</pre></details></footer>",
            escape(DYGRAPHS_LICENSE)
        );
        let _ = writeln!(out, "<script>{}</script>", script_safe(DYGRAPHS_JS));
        let _ = writeln!(out, "<script>{}</script>", script_safe(GLUE_JS));
        out.push_str("</body></html>\n");
        out
    }
}

/// Text safe in HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Script text that cannot close its `<script>` element early: `</script`
/// and `<!--` broken by a backslash (a no-op inside a JavaScript string or
/// regular expression). Anything wider would change the library's regular
/// expressions (`/</g` is in dygraphs).
fn script_safe(text: &str) -> String {
    text.replace("</script", "<\\/script")
        .replace("</SCRIPT", "<\\/SCRIPT")
        .replace("<!--", "<\\!--")
}

/// JSON that cannot close its `<script>` element: every `</` as `<\/`
/// (the same string to a JSON parser).
fn json_safe(text: &str) -> String {
    text.replace("</", "<\\/")
}

/// A number as tables show it: up to 6 significant decimals, no trailing
/// zeros.
pub fn number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let digits = if v.abs() >= 100.0 {
        2
    } else if v.abs() >= 1.0 {
        3
    } else {
        6
    };
    let s = format!("{v:.digits$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// `1 / (1 - p)` as the percentile `p`.
fn percentile_text(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    format!("{}%", number((p * 1e4).round() / 1e4))
}

#[cfg(test)]
mod tests;

/// Writes `page` as `dir/report.html`.
pub fn write_page(dir: &Path, page: &Page) -> Result<PathBuf, ResultsError> {
    let path = dir.join(REPORT_HTML);
    std::fs::write(&path, page.render()).map_err(|source| ResultsError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Writes a run's `report.html` from its evaluated document, figures,
/// text report and `intervals.jsonl`.
pub fn write_run_page(
    dir: &Path,
    doc: &ResultsDocument,
    figures: &RunFigures,
    text: &str,
) -> Result<PathBuf, ResultsError> {
    let points = read_time_series(dir)?;
    write_page(dir, &run_page(doc, figures, text, &points))
}
