//! How much memory the limiters hold under a flood of distinct clients and keys.
//!
//! Feeds a million distinct IPv4 addresses, then a million distinct IPv6 /64s, into a
//! `FailureLimiter`, and a million distinct key ids into a `LocalRateLimiter`, all with
//! the default caps and a sweep every 100k requests, and prints the resident set after
//! each phase. Pass `ipv4`, `ipv6` or `keys` to run one phase alone in a fresh process,
//! which gives the cleaner figure: the allocator keeps freed pages, so later phases of a
//! combined run start from the earlier peak.
//!
//! `cargo run --release -p marketd-api --example limiter_memory [ipv4|ipv6|keys]`
#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use marketd_api::limiter::{FailureLimiter, KeyRateLimiter, LocalRateLimiter};

const REQUESTS: u32 = 1_000_000;
const SWEEP_EVERY: u32 = 100_000;

fn main() {
    let phase = std::env::args().nth(1).unwrap_or_else(|| "all".to_owned());
    report("baseline", None);
    if matches!(phase.as_str(), "all" | "ipv4") {
        failures("ipv4", |n| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n)));
    }
    if matches!(phase.as_str(), "all" | "ipv6") {
        failures("ipv6 /64s", |n| {
            IpAddr::V6(Ipv6Addr::from(
                (0x2001_0db8_u128 << 96) | (u128::from(n) << 64) | 1,
            ))
        });
    }
    if matches!(phase.as_str(), "all" | "keys") {
        let limiter = LocalRateLimiter::default();
        let started = Instant::now();
        for n in 0..REQUESTS {
            // A handful of plans, as real keys would have.
            limiter.check(&format!("k{n:011}"), [60, 600, 6_000][n as usize % 3]);
            if (n + 1) % SWEEP_EVERY == 0 {
                limiter.sweep();
            }
        }
        let elapsed = started.elapsed();
        report(
            "key ids",
            Some((limiter.tracked(), None, elapsed.as_secs_f64())),
        );
    }
}

fn failures(label: &str, client: impl Fn(u32) -> IpAddr) {
    let limiter = FailureLimiter::default();
    let started = Instant::now();
    for n in 0..REQUESTS {
        limiter.record_failure(client(n));
        if (n + 1) % SWEEP_EVERY == 0 {
            limiter.sweep();
        }
    }
    let elapsed = started.elapsed();
    report(
        label,
        Some((
            limiter.tracked(),
            Some(limiter.overflows()),
            elapsed.as_secs_f64(),
        )),
    );
}

fn report(label: &str, run: Option<(usize, Option<u64>, f64)>) {
    let rss = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    print!("{label:>10}: rss {rss:>7} KiB, peak {peak:>7} KiB");
    if let Some((tracked, overflows, secs)) = run {
        print!(
            ", tracked {tracked}, {:.0} req/s",
            f64::from(REQUESTS) / secs
        );
        if let Some(overflows) = overflows {
            print!(", overflows {overflows}");
        }
    }
    println!();
}

/// A `Vm*` line of /proc/self/status, in KiB; 0 where there is no procfs.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
