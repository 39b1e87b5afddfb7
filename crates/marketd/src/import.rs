//! `marketd import FILE --symbol S --interval I`: checked, atomic CSV import.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use marketd_domain::{Interval, Symbol};
use marketd_ingest::csv_import;
use marketd_storage::{Asset, CandleBatch, Store};
use tokio::sync::mpsc;

/// Reads and checks the file (with a progress bar on a terminal) while its good rows are
/// written, in one transaction that commits only when every row is read: a bad row
/// (unless `skip_bad_rows`) or an error leaves nothing written. Reports every bad row
/// with its line number. Returns rows written.
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
    bar.set_message("importing");
    let reader = bar.wrap_read(std::io::BufReader::with_capacity(1 << 20, handle));

    // Reading runs on a thread of its own and hands batches to the write as it goes; the
    // write commits only on the reader's word, after the last row.
    let (batches, received) = mpsc::channel(4);
    let reading = tokio::task::spawn_blocking(move || {
        let mut good = 0u64;
        let parsed = csv_import::parse_csv_in_batches(reader, interval, |batch| {
            good += batch.len() as u64;
            batches.blocking_send(CandleBatch::Rows(batch)).is_ok()
        });
        let commit = match &parsed {
            Ok(parsed) => good > 0 && (parsed.bad_row_count == 0 || skip_bad_rows),
            Err(_) => false,
        };
        if commit {
            let _ = batches.blocking_send(CandleBatch::Commit);
        }
        // Without Commit, dropping the sender abandons the write.
        parsed.map(|parsed| (parsed, good))
    });
    let written = store
        .upsert_candle_batches(symbol.as_str(), interval, source, received)
        .await;
    let (parsed, good) = reading.await.context("the CSV reader stopped")??;
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
            "{} bad rows; nothing was imported (fix them, or pass --skip-bad-rows to import the {good} good ones)",
            parsed.bad_row_count,
        );
    }
    if good == 0 {
        anyhow::bail!("{}: no candles to import", file.display());
    }
    let written = written?;
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
    Ok(written)
}
