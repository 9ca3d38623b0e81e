//! The compare view's two plots, drawn on the server as inline SVG (no script needed, and
//! the same on every browser): a parallel-coordinates plot over chosen params and one
//! metric, and a scatter plot of any two columns. The choice lives in the query string:
//! `axes=lr,optimizer&metric=accuracy&sx=params.lr&sy=metrics.accuracy` (`x` is the
//! charts' axis setting, see `charts.js`); without one, the
//! params that differ and the first metric are shown.
//!
//! A column whose values all read as numbers gets a linear axis; any other, one position
//! per distinct value, in order. A run without a value has no point on that axis (its line
//! breaks there). Runs keep the colours of the overlaid metric charts (`--run0`..`--run9`).

use std::collections::BTreeSet;

use cairn_db::tracking::runs::RunRecord;

use super::display;
use super::links;

/// Params on the parallel-coordinates plot when none are chosen.
const DEFAULT_AXES: usize = 6;
/// Most axes a plot gets, whatever the query asks.
const MAX_AXES: usize = 12;
/// Category labels drawn on one axis; more would overlap.
const MAX_CATEGORY_LABELS: usize = 12;
/// Colours in the palette (`--run0`..).
const COLOURS: usize = 10;

/// The plots' settings, from the query string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlotChoice {
    pub axes: Vec<String>,
    pub metric: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

impl PlotChoice {
    /// From decoded query pairs: `axes` as a comma list or repeated (checkboxes send that).
    pub fn from_pairs(pairs: &[(String, String)]) -> PlotChoice {
        let axes = pairs
            .iter()
            .filter(|(k, _)| k == "axes")
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        let value = |key: &str| links::last(pairs, key).filter(|v| !v.is_empty()).map(str::to_owned);
        PlotChoice { axes, metric: value("metric"), x: value("sx"), y: value("sy") }
    }

    /// The query pairs that keep this choice, for links out of the page.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("axes", self.axes.join(",")),
            ("metric", self.metric.clone().unwrap_or_default()),
            ("sx", self.x.clone().unwrap_or_default()),
            ("sy", self.y.clone().unwrap_or_default()),
        ]
    }
}

/// One column of the comparison: a param or a metric, one value per run.
struct Column {
    id: String,
    label: String,
    values: Vec<Option<String>>,
}

/// Where values go on an axis, as a fraction from the bottom (or left) end.
enum Scale {
    Linear { lo: f64, hi: f64 },
    Categories(Vec<String>),
}

impl Scale {
    fn of(values: &[Option<String>]) -> Scale {
        let present: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
        let numbers: Vec<f64> = present.iter().filter_map(|v| v.trim().parse::<f64>().ok()).collect();
        if !present.is_empty() && numbers.len() == present.len() && numbers.iter().all(|n| n.is_finite()) {
            let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            return Scale::Linear { lo, hi };
        }
        let distinct: BTreeSet<&str> = present.into_iter().collect();
        Scale::Categories(distinct.into_iter().map(str::to_owned).collect())
    }

    fn position(&self, value: &str) -> Option<f64> {
        match self {
            Scale::Linear { lo, hi } => {
                let v: f64 = value.trim().parse().ok()?;
                Some(if hi > lo { (v - lo) / (hi - lo) } else { 0.5 })
            }
            Scale::Categories(categories) => {
                let i = categories.iter().position(|c| c == value)?;
                Some(if categories.len() > 1 { i as f64 / (categories.len() - 1) as f64 } else { 0.5 })
            }
        }
    }

    /// Labelled positions along the axis.
    fn ticks(&self) -> Vec<(f64, String)> {
        match self {
            Scale::Linear { lo, hi } if hi > lo => {
                (0..=4).map(|i| (f64::from(i) / 4.0, display::metric(lo + (hi - lo) * f64::from(i) / 4.0))).collect()
            }
            Scale::Linear { lo, .. } => vec![(0.5, display::metric(*lo))],
            Scale::Categories(categories) => {
                let every = categories.len().div_ceil(MAX_CATEGORY_LABELS).max(1);
                categories
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % every == 0)
                    .filter_map(|(_, c)| Some((self.position(c)?, c.clone())))
                    .collect()
            }
        }
    }
}

/// A label at a point of the drawing.
pub struct Label {
    pub x: String,
    pub y: String,
    pub text: String,
}

pub struct PcAxis {
    pub x: String,
    pub label: String,
    pub ticks: Vec<Label>,
    /// `end` (labels left of the axis) or, on the last axis, `start` (right of it).
    pub tick_anchor: &'static str,
}

/// One run's line, or its point on the scatter plot.
pub struct RunMark {
    pub colour: usize,
    /// SVG path data (parallel coordinates) or the point's centre (scatter: `x`, `y`).
    pub path: String,
    pub x: String,
    pub y: String,
    /// What hovering shows.
    pub title: String,
}

pub struct ParallelPlot {
    pub width: u32,
    pub height: u32,
    pub top: String,
    pub bottom: String,
    pub axes: Vec<PcAxis>,
    pub lines: Vec<RunMark>,
    pub description: String,
}

pub struct ScatterPlot {
    pub width: u32,
    pub height: u32,
    pub left: String,
    pub right: String,
    pub top: String,
    pub bottom: String,
    pub x_label: Label,
    pub y_label: Label,
    pub x_ticks: Vec<Label>,
    pub y_ticks: Vec<Label>,
    pub points: Vec<RunMark>,
    pub missing: usize,
    pub description: String,
}

/// A choice offered by the plot form.
pub struct ChoiceOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// What the template needs: the form's options and the two drawings.
pub struct Plots {
    pub params: Vec<ChoiceOption>,
    pub metrics: Vec<ChoiceOption>,
    pub x_options: Vec<ChoiceOption>,
    pub y_options: Vec<ChoiceOption>,
    pub parallel: Option<ParallelPlot>,
    pub scatter: Option<ScatterPlot>,
    /// The choice in effect (defaults filled in), for links that keep it.
    pub choice: PlotChoice,
}

pub fn plots(records: &[RunRecord], names: &[String], choice: &PlotChoice) -> Plots {
    let param_keys: BTreeSet<&str> = records.iter().flat_map(|r| r.params.iter().map(|p| p.key.as_str())).collect();
    let metric_keys: BTreeSet<&str> = records.iter().flat_map(|r| r.metrics.iter().map(|m| m.key.as_str())).collect();
    let param = |key: &str| Column {
        id: format!("params.{key}"),
        label: key.to_owned(),
        values: records.iter().map(|r| r.params.iter().find(|p| p.key == key).map(|p| p.value.clone())).collect(),
    };
    let metric = |key: &str| Column {
        id: format!("metrics.{key}"),
        label: key.to_owned(),
        values: records
            .iter()
            .map(|r| r.metrics.iter().find(|m| m.key == key && m.value.is_finite()).map(|m| m.value.to_string()))
            .collect(),
    };
    let column = |id: &str| match id.split_once('.') {
        Some(("params", key)) if param_keys.contains(key) => Some(param(key)),
        Some(("metrics", key)) if metric_keys.contains(key) => Some(metric(key)),
        _ => None,
    };

    let differs = |key: &str| param(key).values.windows(2).any(|w| w[0] != w[1]);
    let mut axes: Vec<String> =
        choice.axes.iter().filter(|k| param_keys.contains(k.as_str())).take(MAX_AXES).cloned().collect();
    if axes.is_empty() {
        axes = param_keys.iter().filter(|k| differs(k)).take(DEFAULT_AXES).map(|k| (*k).to_owned()).collect();
    }
    let metric_key = choice
        .metric
        .clone()
        .filter(|m| metric_keys.contains(m.as_str()))
        .or_else(|| metric_keys.first().map(|k| (*k).to_owned()));
    let first_differing = param_keys.iter().find(|k| differs(k)).map(|k| format!("params.{k}"));
    let x = choice.x.clone().filter(|c| column(c).is_some()).or(first_differing);
    let y = choice
        .y
        .clone()
        .filter(|c| column(c).is_some())
        .or_else(|| metric_key.as_ref().map(|m| format!("metrics.{m}")));

    let mut pc_columns: Vec<Column> = axes.iter().map(|k| param(k)).collect();
    pc_columns.extend(metric_key.as_deref().map(metric));
    let every: Vec<String> = param_keys
        .iter()
        .map(|k| format!("params.{k}"))
        .chain(metric_keys.iter().map(|k| format!("metrics.{k}")))
        .collect();
    let options = |selected: Option<&String>| -> Vec<ChoiceOption> {
        every
            .iter()
            .map(|id| ChoiceOption { value: id.clone(), label: id.clone(), selected: Some(id) == selected })
            .collect()
    };
    Plots {
        params: param_keys
            .iter()
            .map(|k| ChoiceOption {
                value: (*k).to_owned(),
                label: (*k).to_owned(),
                selected: axes.iter().any(|a| a == k),
            })
            .collect(),
        metrics: metric_keys
            .iter()
            .map(|k| ChoiceOption {
                value: (*k).to_owned(),
                label: (*k).to_owned(),
                selected: Some(*k) == metric_key.as_deref(),
            })
            .collect(),
        x_options: options(x.as_ref()),
        y_options: options(y.as_ref()),
        parallel: (pc_columns.len() >= 2).then(|| parallel(&pc_columns, names)),
        scatter: match (x.as_deref().and_then(column), y.as_deref().and_then(column)) {
            (Some(x), Some(y)) => Some(scatter(&x, &y, names)),
            _ => None,
        },
        choice: PlotChoice { axes, metric: metric_key, x, y },
    }
}

fn coordinate(value: f64) -> String {
    format!("{value:.1}")
}

fn parallel(columns: &[Column], names: &[String]) -> ParallelPlot {
    const WIDTH: u32 = 960;
    const HEIGHT: u32 = 340;
    let (left, right, top, bottom) = (70.0, 70.0, 44.0, f64::from(HEIGHT) - 28.0);
    let scales: Vec<Scale> = columns.iter().map(|c| Scale::of(&c.values)).collect();
    let step = (f64::from(WIDTH) - left - right) / (columns.len() - 1).max(1) as f64;
    let x_of = |i: usize| left + step * i as f64;
    let y_of = |position: f64| bottom - position * (bottom - top);
    let axes = columns
        .iter()
        .zip(&scales)
        .enumerate()
        .map(|(i, (column, scale))| {
            let last = i + 1 == columns.len();
            let offset = if last { 6.0 } else { -6.0 };
            PcAxis {
                x: coordinate(x_of(i)),
                label: column.label.clone(),
                ticks: scale
                    .ticks()
                    .into_iter()
                    .map(|(p, text)| Label { x: coordinate(x_of(i) + offset), y: coordinate(y_of(p) + 4.0), text })
                    .collect(),
                tick_anchor: if last { "start" } else { "end" },
            }
        })
        .collect();
    let lines = names
        .iter()
        .enumerate()
        .map(|(run, name)| {
            let mut path = String::new();
            let mut pen_down = false;
            let mut title = name.clone();
            for (i, (column, scale)) in columns.iter().zip(&scales).enumerate() {
                let value = column.values[run].as_deref();
                title.push_str(&format!("\n{}: {}", column.id, value.unwrap_or("—")));
                match value.and_then(|v| scale.position(v)) {
                    Some(p) => {
                        let command = if pen_down { 'L' } else { 'M' };
                        path.push_str(&format!("{command}{} {} ", coordinate(x_of(i)), coordinate(y_of(p))));
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            RunMark {
                colour: run % COLOURS,
                path: path.trim_end().to_owned(),
                x: String::new(),
                y: String::new(),
                title,
            }
        })
        .collect();
    let labels: Vec<&str> = columns.iter().map(|c| c.id.as_str()).collect();
    ParallelPlot {
        width: WIDTH,
        height: HEIGHT,
        top: coordinate(top),
        bottom: coordinate(bottom),
        axes,
        lines,
        description: format!("One line per run across the axes {}.", labels.join(", ")),
    }
}

fn scatter(x: &Column, y: &Column, names: &[String]) -> ScatterPlot {
    const WIDTH: u32 = 640;
    const HEIGHT: u32 = 400;
    let (left, right, top, bottom) = (80.0, f64::from(WIDTH) - 24.0, 20.0, f64::from(HEIGHT) - 56.0);
    // Keep points off the frame: positions 0 and 1 land 4 % inside.
    let x_of = |p: f64| left + (0.04 + 0.92 * p) * (right - left);
    let y_of = |p: f64| bottom - (0.04 + 0.92 * p) * (bottom - top);
    let (x_scale, y_scale) = (Scale::of(&x.values), Scale::of(&y.values));
    let mut missing = 0;
    let points = names
        .iter()
        .enumerate()
        .filter_map(|(run, name)| {
            let (xv, yv) = (x.values[run].as_deref(), y.values[run].as_deref());
            let position = xv.and_then(|v| x_scale.position(v)).zip(yv.and_then(|v| y_scale.position(v)));
            let Some((px, py)) = position else {
                missing += 1;
                return None;
            };
            Some(RunMark {
                colour: run % COLOURS,
                path: String::new(),
                x: coordinate(x_of(px)),
                y: coordinate(y_of(py)),
                title: format!("{name}\n{}: {}\n{}: {}", x.id, xv.unwrap_or_default(), y.id, yv.unwrap_or_default()),
            })
        })
        .collect();
    ScatterPlot {
        width: WIDTH,
        height: HEIGHT,
        left: coordinate(left),
        right: coordinate(right),
        top: coordinate(top),
        bottom: coordinate(bottom),
        x_label: Label {
            x: coordinate((left + right) / 2.0),
            y: coordinate(f64::from(HEIGHT) - 12.0),
            text: x.id.clone(),
        },
        y_label: Label { x: coordinate(16.0), y: coordinate((top + bottom) / 2.0), text: y.id.clone() },
        x_ticks: x_scale
            .ticks()
            .into_iter()
            .map(|(p, text)| Label { x: coordinate(x_of(p)), y: coordinate(bottom + 18.0), text })
            .collect(),
        y_ticks: y_scale
            .ticks()
            .into_iter()
            .map(|(p, text)| Label { x: coordinate(left - 8.0), y: coordinate(y_of(p) + 4.0), text })
            .collect(),
        points,
        missing,
        description: format!("One point per run: {} across, {} up.", x.id, y.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn numbers_get_a_linear_axis_and_anything_else_categories() {
        let numeric = Scale::of(&values(&[Some("0.1"), Some("0.01"), None, Some("0.001")]));
        assert_eq!(numeric.position("0.1"), Some(1.0));
        assert_eq!(numeric.position("0.001"), Some(0.0));
        assert_eq!(numeric.ticks().len(), 5);
        let text = Scale::of(&values(&[Some("sgd"), Some("adam"), Some("sgd")]));
        assert_eq!(text.position("adam"), Some(0.0));
        assert_eq!(text.position("sgd"), Some(1.0));
        assert_eq!(text.position("rmsprop"), None);
        let single = Scale::of(&values(&[Some("64"), Some("64")]));
        assert_eq!(single.position("64"), Some(0.5));
        let mixed = Scale::of(&values(&[Some("1"), Some("NaN"), Some("auto")]));
        assert!(matches!(mixed, Scale::Categories(c) if c.len() == 3));
    }

    #[test]
    fn choices_round_trip_through_the_query() {
        let pairs: Vec<(String, String)> = [("axes", "lr,optimizer"), ("axes", "depth"), ("metric", "acc"), ("sx", "")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let choice = PlotChoice::from_pairs(&pairs);
        assert_eq!(choice.axes, ["lr", "optimizer", "depth"]);
        assert_eq!((choice.metric.as_deref(), choice.x.as_deref()), (Some("acc"), None));
        let back: Vec<(String, String)> = choice.pairs().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(PlotChoice::from_pairs(&back), choice);
    }
}
