//! A log-log scatter of estimated against exact counts, as a small hand-written SVG.
//!
//! Millions of keys would make a file nobody can open, so points are deduplicated by the pixel they fall on: the
//! picture is the same, the file stays at a few thousand circles.

use std::collections::BTreeMap;
use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 560.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

/// What to draw.
pub struct Scatter<'a> {
    pub title: &'a str,
    /// `(exact, estimate)` per key; zeros are drawn at 1.
    pub pairs: &'a [(u64, u64)],
    /// The rule's threshold (a finding is strictly above it).
    pub above: u64,
    pub x_label: &'a str,
    pub y_label: &'a str,
}

/// The SVG text of `s`.
pub fn svg(s: &Scatter) -> String {
    let max = s
        .pairs
        .iter()
        .map(|&(a, b)| a.max(b))
        .max()
        .unwrap_or(10)
        .max(s.above.saturating_mul(2))
        .max(10);
    let decades = (max as f64).log10().ceil().max(1.0);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |v: f64| LEFT + v.max(1.0).log10() / decades * pw;
    let y = |v: f64| TOP + ph - v.max(1.0).log10() / decades * ph;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        escape(s.title)
    );
    // Decade grid and labels.
    for d in 0..=decades as u32 {
        let v = 10f64.powi(d as i32);
        let (gx, gy) = (x(v), y(v));
        let _ = writeln!(
            o,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#ddd"/>"##,
            TOP + ph,
            LEFT + pw
        );
        let label = decade_label(d);
        let _ = writeln!(
            o,
            r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">{label}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            TOP + ph + 16.0,
            LEFT - 6.0,
            gy + 4.0
        );
    }
    let _ = writeln!(
        o,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let top = 10f64.powf(decades);
    // y = x, where a perfect counter puts every key.
    let _ = writeln!(
        o,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="4 3"/>"##,
        x(1.0),
        y(1.0),
        x(top),
        y(top)
    );
    // The threshold on both axes: findings are right of / above the red lines.
    if s.above > 0 {
        let t = s.above as f64;
        let _ = writeln!(
            o,
            r##"<line x1="{:.1}" y1="{TOP}" x2="{:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="6 4"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="6 4"/>"##,
            x(t),
            x(t),
            TOP + ph,
            y(t),
            LEFT + pw,
            y(t)
        );
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" fill="#c00">threshold {}</text>"##,
            x(t) + 4.0,
            TOP + 14.0,
            s.above
        );
    }
    // One circle per half-pixel cell (finer than the circle, so deduplication changes nothing visible), drawn from
    // the cell's smallest pair and in cell order: the file depends on the counts, not on the order in which the
    // workers handed the keys over, which differs from run to run.
    let mut cells: BTreeMap<(i64, i64), (u64, u64)> = BTreeMap::new();
    for &(e, est) in s.pairs {
        let cell = ((x(e as f64) * 2.0) as i64, (y(est as f64) * 2.0) as i64);
        let first = cells.entry(cell).or_insert((e, est));
        *first = (*first).min((e, est));
    }
    let drawn = cells.len();
    for (e, est) in cells.into_values() {
        let (px, py) = (x(e as f64), y(est as f64));
        let _ = writeln!(
            o,
            r##"<circle cx="{px:.1}" cy="{py:.1}" r="1.6" fill="#1f5fa8" fill-opacity="0.55"/>"##
        );
    }
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 14.0,
        escape(s.x_label)
    );
    let _ = writeln!(
        o,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(s.y_label)
    );
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{} keys, {} points drawn</text>"##,
        LEFT + pw - 6.0,
        TOP + ph - 8.0,
        s.pairs.len(),
        drawn
    );
    o.push_str("</svg>\n");
    o
}

fn decade_label(d: u32) -> String {
    match d {
        0..=5 => 10u64.pow(d).to_string(),
        _ => format!("1e{d}"),
    }
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_each_pixel_once_and_marks_the_threshold() {
        let pairs: Vec<(u64, u64)> = (1..=2000).map(|i| (i, i)).chain([(5000, 5100)]).collect();
        let out = svg(&Scatter {
            title: "FS1 <compact>",
            pairs: &pairs,
            above: 100,
            x_label: "exact",
            y_label: "estimate",
        });
        assert!(out.starts_with("<svg") && out.ends_with("</svg>\n"));
        assert!(out.contains("threshold 100"));
        assert!(out.contains("FS1 &lt;compact&gt;"));
        let circles = out.matches("<circle").count();
        // Fewer circles than keys (high counts share pixels on a log axis), but more than a handful.
        assert!(circles > 200 && circles < 2001, "{circles}");
        assert!(out.contains("2001 keys"));
    }

    #[test]
    fn the_same_counts_in_another_order_draw_the_same_file() {
        let mut pairs: Vec<(u64, u64)> = (1..=3000u64).map(|i| (i, i + i % 7)).collect();
        let draw = |pairs: &[(u64, u64)]| {
            svg(&Scatter {
                title: "FS1",
                pairs,
                above: 100,
                x_label: "exact",
                y_label: "estimate",
            })
        };
        let before = draw(&pairs);
        pairs.reverse();
        assert_eq!(draw(&pairs), before);
        pairs.sort_by_key(|&(e, _)| e.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        assert_eq!(draw(&pairs), before);
    }
}
