//! `marketd import FILE --symbol S --interval I`: checked, atomic CSV import.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use marketd_domain::{Interval, Symbol};
use marketd_ingest::csv_import;
use marketd_storage::{Asset, Store};

/// Parses the whole file (with a progress bar on a terminal), reports every bad row with
/// its line number, then writes all candles in one transaction. Returns rows written.
pub async fn run(
    store: &dyn Store,
    file: &Path,
    symbol: &Symbol,
    interval: Interval,
    source: &str,
    skip_bad_rows: bool,
) -> anyhow::Result<u64> {
    let handle =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("checking");
    let reader = bar.wrap_read(std::io::BufReader::with_capacity(1 << 20, handle));
    let parsed = tokio::task::block_in_place(|| csv_import::parse_csv(reader, interval))?;
    bar.finish_and_clear();

    let mut stderr = std::io::stderr().lock();
    for bad in &parsed.bad_rows {
        writeln!(stderr, "{}:{}: {}", file.display(), bad.line, bad.reason)?;
    }
    if parsed.bad_row_count > parsed.bad_rows.len() as u64 {
        writeln!(
            stderr,
            "… and {} more bad rows",
            parsed.bad_row_count - parsed.bad_rows.len() as u64
        )?;
    }
    drop(stderr);

    if parsed.bad_row_count > 0 && !skip_bad_rows {
        anyhow::bail!(
            "{} bad rows; nothing was imported (fix them, or pass --skip-bad-rows to import the {} good ones)",
            parsed.bad_row_count,
            parsed.candles.len()
        );
    }
    if parsed.candles.is_empty() {
        anyhow::bail!("{}: no candles to import", file.display());
    }
    if store.asset(symbol.as_str()).await?.is_none() {
        store
            .upsert_asset(&Asset {
                symbol: symbol.to_string(),
                name: symbol.to_string(),
                quote: "USD".into(),
                sources: vec![source.to_owned()],
                created_at: marketd_api::state::system_clock(),
            })
            .await?;
    }
    Ok(csv_import::write_parsed(store, symbol.as_str(), interval, source, &parsed, true).await?)
}
