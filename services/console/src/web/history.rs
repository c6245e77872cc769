//! What the app page's charts draw: every [`EVERY`] console counts each
//! app's running and healthy instances and their restarts from one range
//! read of the observed records, and keeps the last [`KEEP`] samples per
//! app in memory. Each console replica samples on its own from its
//! start, and the charts say so; the record of what was *asked* for is
//! the deployments list, which survives restarts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lain_store::{Health, InstanceState, KeyPrefix, ObservedKey};

use super::{view, Web};
use crate::api::Api;
use crate::db::now_ms;

/// How often the instances are counted.
pub const EVERY: Duration = Duration::from_secs(15);
/// Samples kept per app (an hour at [`EVERY`]).
pub const KEEP: usize = 240;

/// One count of an app's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at_ms: i64,
    pub running: u32,
    pub healthy: u32,
    /// The sum of the records' restart counters.
    pub restarts: u64,
}

/// The samples of every app (bounded: [`KEEP`] per app; an app with no
/// instance for a whole window is dropped).
#[derive(Debug, Default)]
pub struct History {
    apps: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl History {
    /// Adds a sample at `at_ms` for every app in `counts`, and a zero
    /// sample for every app seen before but absent now.
    pub fn record(&self, at_ms: i64, counts: HashMap<String, (u32, u32, u64)>) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        for (app, ring) in apps.iter_mut() {
            if !counts.contains_key(app) {
                push(
                    ring,
                    Sample {
                        at_ms,
                        running: 0,
                        healthy: 0,
                        restarts: 0,
                    },
                );
            }
        }
        apps.retain(|_, ring| ring.iter().any(|s| s.running > 0 || s.restarts > 0));
        for (app, (running, healthy, restarts)) in counts {
            let ring = apps.entry(app).or_default();
            push(
                ring,
                Sample {
                    at_ms,
                    running,
                    healthy,
                    restarts,
                },
            );
        }
    }

    /// The samples of `app`, oldest first.
    pub fn samples(&self, app: &str) -> Vec<Sample> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(app)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }
}

fn push(ring: &mut VecDeque<Sample>, s: Sample) {
    if ring.len() == KEEP {
        ring.pop_front();
    }
    ring.push_back(s);
}

/// Samples every [`EVERY`] until console stops.
pub async fn run(api: Api, web: Arc<Web>) {
    let history = &web.history;
    let stopping = api.stopping();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(store) = api.store() else { continue };
        match store.list(&KeyPrefix::<ObservedKey>::all()).await {
            Ok(listing) => {
                let mut counts: HashMap<String, (u32, u32, u64)> = HashMap::new();
                for e in &listing.items {
                    let c = counts.entry(e.key.app().to_owned()).or_default();
                    if e.value.state == InstanceState::Running {
                        c.0 += 1;
                        if e.value.health == Health::Healthy {
                            c.1 += 1;
                        }
                    }
                    c.2 += u64::from(e.value.restarts);
                }
                history.record(now_ms(), counts);
            }
            Err(e) => tracing::debug!(error = %e, "web history: cannot read the instances"),
        }
    }
}

/// A small chart, drawn as inline SVG by the app page.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    /// The chart in words (its `<desc>`, and the text beside it).
    pub desc: String,
    pub lines: Vec<Line>,
    pub bars: Vec<Bar>,
    /// The largest value on the y axis.
    pub y_max: u64,
    pub from: String,
    pub to: String,
    /// False until there are two samples to draw between.
    pub drawn: bool,
}

/// A polyline: its CSS class, legend and `points`.
#[derive(Debug, Clone)]
pub struct Line {
    pub class: &'static str,
    pub label: &'static str,
    pub points: String,
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
}

/// The chart area's size in SVG units (the viewBox).
pub const W: f64 = 300.0;
pub const H: f64 = 80.0;

/// The instances and restarts charts of `samples`.
pub fn charts(samples: &[Sample]) -> Vec<Chart> {
    let drawn = samples.len() >= 2;
    let (t0, t1) = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => (a.at_ms, b.at_ms.max(a.at_ms + 1)),
        _ => (0, 1),
    };
    let x = |t: i64| (t - t0) as f64 / (t1 - t0) as f64 * W;
    let (from, to) = (view::clock(t0), view::clock(t1));

    let peak = samples
        .iter()
        .map(|s| s.running.max(s.healthy))
        .max()
        .unwrap_or(0);
    let y_max = u64::from(peak.max(1));
    let y = |v: u32| H - f64::from(v) / y_max as f64 * H;
    let line = |class, label, f: &dyn Fn(&Sample) -> u32| Line {
        class,
        label,
        points: samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.at_ms), y(f(s))))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let now = samples.last().copied().unwrap_or(Sample {
        at_ms: 0,
        running: 0,
        healthy: 0,
        restarts: 0,
    });
    let instances = Chart {
        id: "chart-instances",
        title: "Instances",
        desc: format!(
            "{} running, {} healthy now; at most {peak} running between {from} and {to} UTC.",
            now.running, now.healthy
        ),
        lines: vec![
            line("running", "running", &|s| s.running),
            line("healthy", "healthy", &|s| s.healthy),
        ],
        bars: Vec::new(),
        y_max,
        from: from.clone(),
        to: to.clone(),
        drawn,
    };

    // Restarts between samples (a counter that went down, e.g. a record
    // replaced by a new one, counts as none).
    let deltas: Vec<(i64, u64)> = samples
        .windows(2)
        .map(|w| (w[1].at_ms, w[1].restarts.saturating_sub(w[0].restarts)))
        .collect();
    let total: u64 = deltas.iter().map(|d| d.1).sum();
    let r_max = deltas.iter().map(|d| d.1).max().unwrap_or(0).max(1);
    let bw = (W / deltas.len().max(1) as f64).max(1.0);
    let bars = deltas
        .iter()
        .filter(|d| d.1 > 0)
        .map(|&(t, d)| {
            let h = d as f64 / r_max as f64 * H;
            Bar {
                x: format!("{:.1}", (x(t) - bw).max(0.0)),
                y: format!("{:.1}", H - h),
                w: format!("{bw:.1}"),
                h: format!("{h:.1}"),
            }
        })
        .collect();
    let restarts = Chart {
        id: "chart-restarts",
        title: "Restarts",
        desc: format!("{total} restarts between {from} and {to} UTC."),
        lines: Vec::new(),
        bars,
        y_max: r_max,
        from,
        to,
        drawn,
    };
    vec![instances, restarts]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(&str, u32, u32, u64)]) -> HashMap<String, (u32, u32, u64)> {
        v.iter()
            .map(|&(a, r, h, x)| (a.to_owned(), (r, h, x)))
            .collect()
    }

    #[test]
    fn keeps_a_bounded_window_per_app() {
        let h = History::default();
        for i in 0..(KEEP as i64 + 10) {
            h.record(i, counts(&[("hello", 2, 1, 0)]));
        }
        let s = h.samples("hello");
        assert_eq!(s.len(), KEEP);
        assert_eq!(s[0].at_ms, 10, "the oldest went");
        assert!(h.samples("other").is_empty());
    }

    #[test]
    fn an_app_that_went_away_drops_to_zero_then_out() {
        let h = History::default();
        h.record(1, counts(&[("hello", 1, 1, 0), ("gone", 1, 1, 0)]));
        h.record(2, counts(&[("hello", 1, 1, 0)]));
        assert_eq!(
            h.samples("gone").last(),
            Some(&Sample {
                at_ms: 2,
                running: 0,
                healthy: 0,
                restarts: 0
            })
        );
        for t in 3..(KEEP as i64 + 5) {
            h.record(t, counts(&[("hello", 1, 1, 0)]));
        }
        assert!(
            h.samples("gone").is_empty(),
            "dropped after a whole idle window"
        );
    }

    #[test]
    fn charts_scale_into_the_view_box_and_say_what_they_show() {
        let s = |t, running, healthy, restarts| Sample {
            at_ms: t,
            running,
            healthy,
            restarts,
        };
        let c = charts(&[s(0, 1, 0, 0), s(60_000, 2, 2, 3), s(120_000, 2, 1, 2)]);
        assert_eq!(c.len(), 2);
        assert!(c[0].drawn);
        assert_eq!(c[0].lines[0].points, "0.0,40.0 150.0,0.0 300.0,0.0");
        assert_eq!(c[0].lines[1].points, "0.0,80.0 150.0,0.0 300.0,40.0");
        assert!(
            c[0].desc.starts_with("2 running, 1 healthy now; at most 2"),
            "{}",
            c[0].desc
        );
        // 3 restarts in the first interval; the counter going down is none.
        assert_eq!(c[1].bars.len(), 1);
        assert_eq!(c[1].bars[0].h, "80.0");
        assert!(c[1].desc.starts_with("3 restarts"), "{}", c[1].desc);
        assert!(
            !charts(&[s(0, 1, 1, 0)])[0].drawn,
            "one sample draws nothing"
        );
        assert!(!charts(&[])[1].drawn);
    }
}
