//! `marketd backfill --source S --symbols A,B --interval I --since T`: exchange history
//! into the database, resumable, one progress bar per symbol. Missing closed buckets are
//! asked for again from S, then from each `--fallback` in order; what none has is
//! recorded as a known gap.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use marketd_domain::{Interval, Symbol, format_rfc3339_ms, parse_timestamp};
use marketd_ingest::backfill::{BackfillError, BackfillReport, backfill};
use marketd_ingest::exchange::SymbolTable;
use marketd_ingest::repair::{RepairReport, repair_gaps};
use marketd_ingest::resilience::UpstreamConfig;
use marketd_ingest::source::{Binance, CoinGecko, Coinbase, Kraken, Source, SourceError};
use marketd_storage::Store;

/// The exchanges marketd reads. CoinGecko serves latest prices only, so it is a source for
/// `[[ingest]]` tables but not for `marketd backfill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceName {
    Binance,
    Coinbase,
    Kraken,
    #[value(skip)]
    Coingecko,
}

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// Exchange to fetch from.
    #[arg(long, value_enum)]
    pub source: SourceName,
    /// Comma-separated symbols, e.g. BTC,ETH.
    #[arg(long, value_delimiter = ',', required = true, value_parser = crate::cli::parse_symbol)]
    pub symbols: Vec<Symbol>,
    /// Candle interval: 1m 5m 15m 1h 4h 1d 1w.
    #[arg(long, value_parser = crate::cli::parse_interval)]
    pub interval: Interval,
    /// First open time: RFC 3339, a UTC date (2024-01-01) or Unix ms. A series already
    /// stored past it resumes from its last candle.
    #[arg(long, value_parser = parse_instant)]
    pub since: i64,
    /// End of the range, exclusive, in the same forms; default now.
    #[arg(long, value_parser = parse_instant)]
    pub until: Option<i64>,
    /// Comma-separated exchanges asked, in order, for the candles the source lacks; what
    /// none of them has is recorded as a known gap.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub fallback: Vec<SourceName>,
    /// Replaces the exchanges' base URL, for a mirror or a test double.
    #[arg(long)]
    pub base_url: Option<String>,
}

/// RFC 3339, a bare `YYYY-MM-DD` (midnight UTC), or Unix milliseconds.
pub fn parse_instant(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    let is_date = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let result = if is_date {
        parse_timestamp(&format!("{raw}T00:00:00Z"))
    } else {
        parse_timestamp(raw)
    };
    result.map_err(|e| format!("{e}, or a date such as 2024-01-01"))
}

/// Backfills each symbol in turn and prints a summary line for each. Fails when any symbol
/// failed, after trying all of them: one unlisted symbol should not stop the others.
pub async fn run(
    store: &dyn Store,
    args: &BackfillArgs,
    symbols: &SymbolTable,
) -> anyhow::Result<()> {
    let until = args.until.unwrap_or(i64::MAX);
    if until <= args.since {
        anyhow::bail!("--until must be later than --since");
    }
    let source = open_source(args.source, args.base_url.as_deref(), symbols)?;
    let mut fallbacks = Vec::new();
    for &name in args.fallback.iter().filter(|&&name| name != args.source) {
        fallbacks.push(open_source(name, args.base_url.as_deref(), symbols)?);
    }
    let asked: Vec<&dyn Source> = std::iter::once(source.as_ref())
        .chain(fallbacks.iter().map(AsRef::as_ref))
        .collect();
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bars = MultiProgress::with_draw_target(target);
    let style = ProgressStyle::with_template("{prefix:>6} [{bar:40}] {percent:>3}% {msg} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let pending: Vec<ProgressBar> = args
        .symbols
        .iter()
        .map(|symbol| {
            let bar = bars.add(ProgressBar::new(1).with_style(style.clone()));
            bar.set_prefix(symbol.to_string());
            bar.set_message("waiting");
            bar
        })
        .collect();

    let mut failed = 0;
    for (symbol, bar) in args.symbols.iter().zip(pending) {
        bar.set_message("starting");
        let step = args.interval.millis();
        let result = backfill(
            store,
            source.as_ref(),
            symbol.as_str(),
            args.interval,
            args.since,
            until,
            |p| {
                bar.set_length(u64::try_from((p.end - p.start) / step).unwrap_or(0).max(1));
                bar.set_position(u64::try_from((p.reached - p.start) / step).unwrap_or(0));
                bar.set_message(format!("{} candles", p.written));
            },
        )
        .await;
        let repaired = match &result {
            Ok(report) if report.gap_buckets > 0 => {
                bar.set_message("asking again for missing candles");
                Some(
                    repair_gaps(
                        store,
                        &asked,
                        symbol.as_str(),
                        args.interval,
                        report.start,
                        report.end,
                    )
                    .await,
                )
            }
            _ => None,
        };
        bar.finish_and_clear();
        failed += usize::from(result.is_err() || matches!(repaired, Some(Err(_))));
        let mut line = summary(symbol, args.interval, source.name(), &result);
        match repaired {
            Some(Ok(repair)) => line.push_str(&repair_summary(&repair)),
            Some(Err(err)) => line.push_str(&format!("; asking again failed: {err}")),
            None => {}
        }
        bars.suspend(|| writeln!(std::io::stderr().lock(), "{line}"))?;
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} symbols failed", args.symbols.len());
    }
    Ok(())
}

/// The source `name` at `base_url` (or its default), naming symbols as `symbols` says.
pub(crate) fn open_source(
    name: SourceName,
    base_url: Option<&str>,
    symbols: &SymbolTable,
) -> anyhow::Result<Box<dyn Source>> {
    fn with_base(mut config: UpstreamConfig, base_url: Option<&str>) -> UpstreamConfig {
        if let Some(url) = base_url {
            url.clone_into(&mut config.base_url);
        }
        config
    }
    let table = symbols.clone();
    let source: Result<Box<dyn Source>, SourceError> = match name {
        SourceName::Binance => Binance::new(with_base(Binance::default_config(), base_url), table)
            .map(|s| Box::new(s) as Box<dyn Source>),
        SourceName::Coinbase => {
            Coinbase::new(with_base(Coinbase::default_config(), base_url), table)
                .map(|s| Box::new(s) as Box<dyn Source>)
        }
        SourceName::Kraken => Kraken::new(with_base(Kraken::default_config(), base_url), table)
            .map(|s| Box::new(s) as Box<dyn Source>),
        SourceName::Coingecko => {
            CoinGecko::new(with_base(CoinGecko::default_config(), base_url), table)
                .map(|s| Box::new(s) as Box<dyn Source>)
        }
    };
    source.context("setting up the source")
}

fn summary(
    symbol: &Symbol,
    interval: Interval,
    source: &str,
    result: &Result<BackfillReport, BackfillError>,
) -> String {
    let head = format!("{symbol} {interval} from {source}:");
    match result {
        Ok(report) => {
            let mut line = format!(
                "{head} {} candles written in {} pages, {} rows rejected, {} missing buckets",
                report.written, report.pages, report.rejected, report.gap_buckets
            );
            if !report.gaps.is_empty() {
                let ranges: Vec<String> = report
                    .gaps
                    .iter()
                    .map(|g| {
                        format!(
                            "{}..{}",
                            format_rfc3339_ms(g.start),
                            format_rfc3339_ms(g.end)
                        )
                    })
                    .collect();
                line.push_str(&format!(" ({})", ranges.join(", ")));
            }
            if report.resumed {
                line.push_str(&format!("; resumed at {}", format_rfc3339_ms(report.start)));
            }
            line
        }
        Err(err) => format!("{head} FAILED: {err}"),
    }
}

/// The second asking's part of a symbol's summary line.
fn repair_summary(repair: &RepairReport) -> String {
    let mut line = String::new();
    for (source, written) in &repair.filled {
        line.push_str(&format!("; {written} missing candles found on {source}"));
    }
    if repair.recorded.is_empty() {
        if !repair.missing.is_empty() {
            line.push_str("; no gap left");
        }
    } else {
        line.push_str(&format!(
            "; {} buckets in {} ranges recorded as gaps: no source has them",
            repair.recorded_buckets,
            repair.recorded.len()
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_dates_rfc3339_or_millis() {
        let t0 = 1_704_067_200_000;
        assert_eq!(parse_instant("2024-01-01"), Ok(t0));
        assert_eq!(parse_instant("2024-01-01T01:00:00+01:00"), Ok(t0));
        assert_eq!(parse_instant("1704067200000"), Ok(t0));
        assert!(parse_instant("2024-13-01").is_err());
        assert!(parse_instant("2024/01/01").is_err());
        assert!(parse_instant("yesterday").is_err());
    }
}
