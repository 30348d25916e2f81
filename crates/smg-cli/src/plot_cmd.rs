//! `smg plot metrics`: training curves from a metrics.jsonl log as a PNG.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// A (possibly nested, dot-separated) numeric field of a JSON object; a numeric part indexes
/// an array (`val.1.accuracy`).
fn field(v: &serde_json::Value, key: &str) -> Option<f64> {
    key.split('.')
        .try_fold(v, |v, k| if let (Some(a), Ok(i)) = (v.as_array(), k.parse::<usize>()) { a.get(i) } else { v.get(k) })
        .and_then(|v| v.as_f64())
}

/// Plots `y` fields (each a series; nulls skipped) against `x` and saves the PNG; `--log-y`
/// for losses. Returns the number of points drawn.
pub fn metrics(log: &Path, x: &str, ys: &[String], title: &str, log_y: bool, out: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(log).with_context(|| format!("{}: cannot read", log.display()))?;
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}: line {} is not JSON", log.display(), i + 1)))
        .collect::<Result<_>>()?;
    let mut plot = smg_display::plot::line_plot(title).labels(x, if ys.len() == 1 { ys[0].as_str() } else { "value" }).log_y(log_y);
    let mut n = 0;
    for y in ys {
        let pts: Vec<(f64, f64)> = rows.iter().filter_map(|r| Some((field(r, x)?, field(r, y)?))).collect();
        if pts.is_empty() {
            bail!("{}: no numeric values of '{y}' against '{x}'", log.display());
        }
        n += pts.len();
        plot = plot.series(y.as_str(), &pts);
    }
    plot.render()?.save(out)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_nest_through_objects_and_arrays() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"step": 3, "val": [{"accuracy": 0.5}, {"accuracy": 0.25}], "m": {"x": 1}}"#).unwrap();
        assert_eq!(super::field(&v, "val.1.accuracy"), Some(0.25));
        assert_eq!(super::field(&v, "m.x"), Some(1.0));
        assert_eq!(super::field(&v, "val.7.accuracy"), None);
        assert_eq!(super::field(&v, "step"), Some(3.0));
    }
}
