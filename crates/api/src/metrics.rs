//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//!
//! Request metrics are lock-free: every (route template, method) pair the router knows
//! gets its counters when the app is built, so recording a request is a map lookup by the
//! matched route and a few relaxed atomic additions, and no label value ever comes from
//! the client (never a raw path, a symbol list or a key). Everything else (database pool,
//! ingest sources, ingest lag) is read when scraped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode};

/// Statuses marketd answers with, each its own series; anything else counts as `other`.
const STATUSES: [u16; 29] = [
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409,
    413, 415, 422, 429, 431, 500, 502, 503, 504, 0,
];
const OTHER_STATUS: usize = STATUSES.len() - 1;

const METHODS: [&str; 8] = [
    "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "other",
];

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of requests no route matched (404s and the like).
pub const UNMATCHED: &str = "unmatched";

#[derive(Default)]
struct Slot {
    by_status: [AtomicU64; STATUSES.len()],
    /// Per bucket, not cumulative; the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// Counters and latency histograms of HTTP requests by route template, method and status.
pub struct HttpMetrics {
    routes: Vec<String>,
    route_index: HashMap<String, usize>,
    slots: Vec<Slot>,
    in_flight: AtomicI64,
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

fn status_index(status: StatusCode) -> usize {
    STATUSES[..OTHER_STATUS]
        .iter()
        .position(|s| *s == status.as_u16())
        .unwrap_or(OTHER_STATUS)
}

impl HttpMetrics {
    /// Metrics for these route templates (as axum's `MatchedPath` gives them), plus
    /// [`UNMATCHED`].
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<String> = routes.into_iter().map(str::to_owned).collect();
        names.push(UNMATCHED.to_owned());
        names.sort();
        names.dedup();
        let route_index = names
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i))
            .collect();
        let slots = (0..names.len() * METHODS.len())
            .map(|_| Slot::default())
            .collect();
        Self {
            routes: names,
            route_index,
            slots,
            in_flight: AtomicI64::new(0),
        }
    }

    fn slot(&self, route: Option<&str>, method: &Method) -> &Slot {
        let route = route
            .and_then(|r| self.route_index.get(r))
            .or_else(|| self.route_index.get(UNMATCHED))
            .copied()
            .unwrap_or(0);
        &self.slots[route * METHODS.len() + method_index(method)]
    }

    /// Counts a request as in flight until the returned guard drops.
    /// Counts a request in flight until the matching [`Self::finish`].
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finish(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn record(&self, route: Option<&str>, method: &Method, status: StatusCode, took: Duration) {
        let slot = self.slot(route, method);
        slot.by_status[status_index(status)].fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        slot.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        slot.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Requests answered with `status`, over every route and method.
    pub fn total_with_status(&self, status: StatusCode) -> u64 {
        let index = status_index(status);
        self.slots
            .iter()
            .map(|s| s.by_status[index].load(Ordering::Relaxed))
            .sum()
    }

    /// Appends the HTTP families to `out`.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "marketd_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status.",
        );
        self.each_slot(|labels, slot| {
            for (i, status) in STATUSES.iter().enumerate() {
                let n = slot.by_status[i].load(Ordering::Relaxed);
                if n > 0 {
                    let status = if i == OTHER_STATUS {
                        "other".to_owned()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "marketd_http_requests_total{{{labels},status=\"{status}\"}} {n}"
                    );
                }
            }
        });
        family(
            out,
            "marketd_http_request_duration_seconds",
            "histogram",
            "Time to the response head, by route template and method.",
        );
        self.each_slot(|labels, slot| {
            let counts: Vec<u64> = slot.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                return;
            }
            let mut cumulative = 0;
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += counts[i];
                let _ = writeln!(out, "marketd_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "marketd_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}");
            let sum = slot.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "marketd_http_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "marketd_http_request_duration_seconds_count{{{labels}}} {total}");
        });
        gauge(
            out,
            "marketd_http_requests_in_flight",
            "Requests being handled now.",
            self.in_flight.load(Ordering::Relaxed),
        );
        counter(
            out,
            "marketd_auth_failures_total",
            "Requests refused for missing or invalid credentials (401).",
            self.total_with_status(StatusCode::UNAUTHORIZED),
        );
        counter(
            out,
            "marketd_rate_limited_total",
            "Requests refused by a rate limit (429).",
            self.total_with_status(StatusCode::TOO_MANY_REQUESTS),
        );
    }

    fn each_slot(&self, mut each: impl FnMut(&str, &Slot)) {
        for (r, route) in self.routes.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
                each(&labels, &self.slots[r * METHODS.len() + m]);
            }
        }
    }
}

/// Decrements the in-flight gauge when the request is done, however it ends.
/// `# HELP` and `# TYPE` lines of a family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the exposition format needs it.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_method_and_status_with_cumulative_buckets() {
        let metrics = HttpMetrics::new(["/v1/prices", "/v1/ohlcv/{symbol}"]);
        let ms = Duration::from_millis;
        metrics.record(Some("/v1/prices"), &Method::GET, StatusCode::OK, ms(2));
        metrics.record(Some("/v1/prices"), &Method::GET, StatusCode::OK, ms(30));
        metrics.record(
            Some("/v1/prices"),
            &Method::GET,
            StatusCode::UNAUTHORIZED,
            ms(0),
        );
        metrics.record(None, &Method::GET, StatusCode::NOT_FOUND, ms(1));
        metrics.record(
            Some("/made/up"),
            &Method::from_bytes(b"BREW").unwrap(),
            StatusCode::IM_A_TEAPOT,
            ms(20_000),
        );
        let mut out = String::new();
        metrics.render(&mut out);
        let has = |line: &str| out.lines().any(|l| l == line);
        assert!(
            has(r#"marketd_http_requests_total{method="GET",route="/v1/prices",status="200"} 2"#),
            "{out}"
        );
        assert!(has(
            r#"marketd_http_requests_total{method="GET",route="/v1/prices",status="401"} 1"#
        ));
        assert!(has(
            r#"marketd_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ));
        assert!(has(
            r#"marketd_http_requests_total{method="other",route="unmatched",status="other"} 1"#
        ));
        assert!(has(
            r#"marketd_http_request_duration_seconds_bucket{method="GET",route="/v1/prices",le="0.0025"} 2"#
        ));
        assert!(has(
            r#"marketd_http_request_duration_seconds_bucket{method="GET",route="/v1/prices",le="0.025"} 2"#
        ));
        assert!(has(
            r#"marketd_http_request_duration_seconds_bucket{method="GET",route="/v1/prices",le="0.05"} 3"#
        ));
        assert!(has(
            r#"marketd_http_request_duration_seconds_bucket{method="GET",route="/v1/prices",le="+Inf"} 3"#
        ));
        assert!(has(
            r#"marketd_http_request_duration_seconds_count{method="GET",route="/v1/prices"} 3"#
        ));
        assert!(has(
            r#"marketd_http_request_duration_seconds_bucket{method="other",route="unmatched",le="10"} 0"#
        ));
        assert!(has("marketd_auth_failures_total 1"));
        assert!(
            !out.contains("/v1/ohlcv/{symbol}\",status"),
            "silent routes print no samples"
        );
    }

    #[test]
    fn in_flight_counts_started_requests_until_they_finish() {
        let metrics = HttpMetrics::new([]);
        metrics.start();
        metrics.start();
        metrics.finish();
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.lines()
                .any(|l| l == "marketd_http_requests_in_flight 1")
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
