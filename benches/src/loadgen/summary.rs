//! Medians of several runs: reads reports written with `--json` and prints, per mode and
//! figure, the median and every run's value, so a benchmark table can be filled from
//! three runs without another tool.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use super::Error;

/// The medians of the reports in `files` (each a report or an array of reports), as a
/// Markdown table.
///
/// # Errors
/// When a file is unreadable or not a report.
pub fn medians(files: &[PathBuf]) -> Result<String, Error> {
    let mut figures: BTreeMap<(String, usize, String), (String, Vec<f64>)> = BTreeMap::new();
    let mut failed = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a report: {e}", file.display()))?;
        let reports = match value {
            Value::Array(reports) => reports,
            report => vec![report],
        };
        for report in reports {
            let mode = report["mode"].as_str().ok_or("a report without a mode")?.to_owned();
            for (order, figure) in report["figures"].as_array().into_iter().flatten().enumerate() {
                let name = figure["name"].as_str().unwrap_or_default().to_owned();
                let unit = figure["unit"].as_str().unwrap_or_default().to_owned();
                let entry =
                    figures.entry((mode.clone(), order, name)).or_insert((unit, Vec::new()));
                entry.1.extend(figure["value"].as_f64());
            }
            for check in report["checks"].as_array().into_iter().flatten() {
                if check["passed"] != true {
                    failed.push(format!("{} ({}): {}", mode, file.display(), check["name"]));
                }
            }
        }
    }
    let mut out = String::from("| mode | figure | median | runs |\n|---|---|---|---|\n");
    for ((mode, _, name), (unit, values)) in &figures {
        let runs: Vec<String> = values.iter().map(|v| format_number(*v)).collect();
        let _ = writeln!(
            out,
            "| {mode} | {name} | {} {unit} | {} |",
            format_number(median(values)),
            runs.join(" / ")
        );
    }
    for failure in failed {
        let _ = writeln!(out, "\nFAILED CHECK: {failure}");
    }
    Ok(out)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn format_number(value: f64) -> String {
    if value.abs() >= 100.0 { format!("{value:.0}") } else { format!("{value:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_runs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
