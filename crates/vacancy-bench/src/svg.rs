//! The latency percentile plot, written by hand as SVG: one curve per scenario phase, latency
//! (log scale) against percentile (log scale of `1 / (1 - q)`, so 90 %, 99 %, 99.9 % … are
//! evenly spaced and the tail is visible).

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Points `[percentile, latency ms]` of a histogram's percentile curve, from the minimum to the
/// deepest percentile its sample count supports (no invented tail), which shows the maximum.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    // x = log10(1 / (1 - q)); with n samples, q beyond 1 - 1/n is just the maximum.
    let max_x = (h.len() as f64).log10().clamp(0.0, 6.0);
    let steps = (max_x * 20.0).ceil().max(1.0) as usize;
    let mut points: Vec<[f64; 2]> = (0..=steps)
        .map(|i| {
            let x = max_x * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            [q * 100.0, h.value_at_quantile(q) as f64 / 1000.0]
        })
        .collect();
    // The deepest point is the maximum itself.
    if let Some(last) = points.last_mut() {
        last[1] = h.max() as f64 / 1000.0;
    }
    points
}

/// One curve of the plot.
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub points: Vec<[f64; 2]>,
    /// Drawn dashed (used for open-loop phases).
    pub dashed: bool,
    /// Curves of one group (one scenario) share a colour.
    pub group: usize,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 250.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// The x axis ends at 99.999 %.
const MAX_NINES: f64 = 5.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

fn x_of_percentile(p: f64) -> f64 {
    let q = (p / 100.0).clamp(0.0, 1.0);
    let nines = if q >= 1.0 {
        MAX_NINES
    } else {
        (-(1.0 - q).log10()).clamp(0.0, MAX_NINES)
    };
    LEFT + (WIDTH - LEFT - RIGHT) * nines / MAX_NINES
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The plot of `curves`, titled `title`.
pub fn percentile_plot(title: &str, curves: &[Curve]) -> String {
    let latencies = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p[1]))
        .filter(|v| *v > 0.0);
    let (lo, hi) = latencies.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo_exp, hi_exp) = if lo.is_finite() && hi > 0.0 {
        let lo_exp = lo.log10().floor() as i32;
        (lo_exp, (hi.log10().ceil() as i32).max(lo_exp + 1))
    } else {
        (-1, 1)
    };
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_of = |ms: f64| {
        let v = ms.max(10f64.powi(lo_exp)).log10();
        TOP + plot_h * (1.0 - (v - f64::from(lo_exp)) / f64::from(hi_exp - lo_exp))
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        escape(title)
    );
    // Horizontal grid: 1-2-5 steps per decade, labelled at 1.
    for exp in lo_exp..=hi_exp {
        for mult in [1.0, 2.0, 5.0] {
            let v = mult * 10f64.powi(exp);
            if exp == hi_exp && mult > 1.0 {
                break;
            }
            let y = y_of(v);
            let stroke = if mult == 1.0 { "#bbb" } else { "#eee" };
            let _ = writeln!(
                svg,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{stroke}"/>"#,
                WIDTH - RIGHT
            );
            if mult == 1.0 {
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    LEFT - 6.0,
                    y + 4.0,
                    trim_number(v)
                );
            }
        }
    }
    // Vertical grid at 0 %, 90 %, 99 %, …
    for nines in 0..=MAX_NINES as i32 {
        let p = 100.0 * (1.0 - 10f64.powi(-nines));
        let x = x_of_percentile(p);
        let label = if nines == 0 {
            "0%".to_owned()
        } else {
            format!("{}%", trim_number(p))
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            HEIGHT - BOTTOM
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            HEIGHT - BOTTOM + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency (ms, log scale)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{plot_h:.1}" fill="none" stroke="#444"/>"##,
        WIDTH - LEFT - RIGHT
    );
    for (i, curve) in curves.iter().enumerate() {
        let color = COLORS[curve.group % COLORS.len()];
        let points: Vec<String> = curve
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x_of_percentile(p[0]), y_of(p[1])))
            .collect();
        let dash = if curve.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
            points.join(" ")
        );
        let y = TOP + 10.0 + 20.0 * i as f64;
        let x = WIDTH - RIGHT + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="2"{dash}/>"#,
            x + 24.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 30.0,
            y + 4.0,
            escape(&curve.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// `0.1`, `1`, `10`, `99.9`: a short label without float noise.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::new_histogram;

    #[test]
    fn curve_rises_and_stops_at_what_the_samples_support() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 10).expect("in range");
        }
        let curve = percentile_curve(&h);
        assert!(curve.windows(2).all(|w| w[0][1] <= w[1][1]));
        assert!(curve.windows(2).all(|w| w[0][0] <= w[1][0]));
        // 1,000 samples support three nines: the curve ends at 99.9 %, with the maximum.
        let deepest = curve.last().copied().unwrap_or_default();
        assert!((deepest[0] - 99.9).abs() < 1e-9, "{deepest:?}");
        assert_eq!(deepest[1], h.max() as f64 / 1000.0);
        assert!((deepest[1] - 10.0).abs() < 0.02);
        assert!(percentile_curve(&new_histogram()).is_empty());
    }

    #[test]
    fn plot_has_a_line_and_a_legend_entry_per_curve() {
        let curves = vec![
            Curve {
                label: "check <closed>".into(),
                points: vec![[0.0, 0.2], [99.0, 1.5], [100.0, 9.0]],
                dashed: false,
                group: 0,
            },
            Curve {
                label: "check open".into(),
                points: vec![[0.0, 0.1], [100.0, 2.0]],
                dashed: true,
                group: 0,
            },
        ];
        let svg = percentile_plot("latency", &curves);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("check &lt;closed&gt;"));
        assert!(svg.contains("99.9%"));
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
    }
}
