//! Keys outside the API: the admin key printed at first start, the demo key, and the
//! `marketd keys` commands. A full key is written to standard output once and nowhere
//! else; logs only ever carry key ids.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use marketd_api::ApiError;
use marketd_api::auth::{Auth, IssuedKey, Keyring, NewKey};
use marketd_api::routes::keys::{CreateKey, KeyOut, key_spec, parse_lifetime};
use marketd_domain::access::{KeyState, Scope, Scopes};
use marketd_domain::api_key::KeyEnvironment;

pub const DEMO_KEY_NAME: &str = "demo (read-only)";
const DEMO_KEY_LIFETIME_MS: i64 = 30 * 24 * 3600 * 1000;

fn now_ms() -> i64 {
    marketd_api::state::system_clock()
}

/// On first start (no keys at all) issues an admin key with every scope and prints it
/// once; with demo data, also issues a fresh read-only demo key (revoking the previous
/// one) and prints it, with a request to `base` (the address being served) to try it.
pub async fn bootstrap(auth: &Arc<Auth>, demo: bool, base: &str) -> anyhow::Result<()> {
    let keyring = &auth.keyring;
    let store = keyring.store();
    if store.count_keys().await? == 0 {
        let spec = NewKey {
            name: "admin (first start)".into(),
            environment: KeyEnvironment::Live,
            scopes: Scopes::all(),
            allowed_cidrs: vec![],
            expires_at: None,
            rate_limit_per_minute: 6_000,
        };
        let admin = keyring.issue(&spec, None, now_ms()).await?;
        tracing::info!(key_id = %admin.record.id, "issued the first admin key");
        announce(
            "ADMIN API KEY (all scopes). It is shown this once and stored only as a hash: \
             save it now. Create narrower keys with it and revoke it when done.",
            &admin,
            base,
        )?;
    }
    if demo {
        let now = now_ms();
        let mut after: Option<String> = None;
        loop {
            let page = store.keys(after.as_deref(), 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for key in page
                .iter()
                .filter(|k| k.name == DEMO_KEY_NAME && k.state(now) == KeyState::Active)
            {
                keyring.revoke(&key.id, None, now).await?;
            }
        }
        let spec = NewKey {
            name: DEMO_KEY_NAME.into(),
            environment: KeyEnvironment::Test,
            scopes: [Scope::PricesRead, Scope::SignalsRead]
                .into_iter()
                .collect(),
            allowed_cidrs: vec![],
            expires_at: Some(now + DEMO_KEY_LIFETIME_MS),
            rate_limit_per_minute: 600,
        };
        let demo_key = keyring.issue(&spec, None, now).await?;
        tracing::info!(key_id = %demo_key.record.id, "issued a read-only demo key");
        announce(
            "DEMO API KEY (prices:read, signals:read; replaced at every start):",
            &demo_key,
            base,
        )?;
    }
    Ok(())
}

fn announce(title: &str, issued: &IssuedKey, base: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n  {title}\n\n    {}\n", issued.key)?;
    writeln!(
        out,
        "  e.g. curl -H 'Authorization: Bearer {}' {base}/v1/prices\n",
        issued.key
    )?;
    out.flush()
}

/// `marketd keys …`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Issue a key; prints the key alone on standard output, details on standard error.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: prices:read, signals:read, backtests:run, alerts:write,
        /// ingest:write, keys:admin.
        #[arg(long)]
        scopes: String,
        /// A CIDR the key may be used from (repeatable); default anywhere.
        #[arg(long = "allow-ip")]
        allow_ip: Vec<String>,
        /// Lifetime such as 90d, 12h, 30m; default no expiry.
        #[arg(long)]
        expires_in: Option<String>,
        /// Requests per minute [default: 600]
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Issue an `mkd_test_` key.
        #[arg(long)]
        test: bool,
    },
    /// List keys (never secrets).
    List,
    /// Show one key.
    Show { id: String },
    /// Issue a successor; the old key works for the grace period. Prints the new key.
    Rotate {
        id: String,
        /// Grace period such as 24h, 0s, 7d (at most 7 days) [default: 24h]
        #[arg(long, default_value = "24h")]
        grace: String,
    },
    /// Revoke a key at once.
    Revoke { id: String },
}

fn details(key: &marketd_domain::access::KeyRecord) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&KeyOut::new(key, now_ms()))?)
}

pub async fn run(keyring: &Keyring, command: KeysCommand) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let store = keyring.store();
    match command {
        KeysCommand::Create {
            name,
            scopes,
            allow_ip,
            expires_in,
            rate_limit,
            test,
        } => {
            let body = CreateKey {
                name,
                scopes: scopes
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                allowed_cidrs: Some(allow_ip),
                expires_at: None,
                expires_in,
                rate_limit_per_minute: rate_limit,
                environment: Some(if test { "test" } else { "live" }.to_owned()),
            };
            if body.scopes.is_empty() {
                bail!("--scopes: name at least one scope");
            }
            if rate_limit.is_some_and(|r| !(1..=10_000_000).contains(&r)) {
                bail!("--rate-limit: must be between 1 and 10000000");
            }
            let spec = key_spec(&body, now_ms()).map_err(|e| match e {
                ApiError::Validation(errors) => anyhow::anyhow!(
                    "{}",
                    errors
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                other => anyhow::anyhow!("{other}"),
            })?;
            let issued = keyring.issue(&spec, None, now_ms()).await?;
            writeln!(stdout, "{}", issued.key)?;
            writeln!(stderr, "{}", details(&issued.record)?)?;
        }
        KeysCommand::List => {
            let mut after: Option<String> = None;
            loop {
                let page = store.keys(after.as_deref(), 500).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for key in &page {
                    let out = KeyOut::new(key, now_ms());
                    writeln!(
                        stdout,
                        "{}\t{}\t{}\t{}",
                        out.id,
                        out.status,
                        out.scopes.join(","),
                        out.name
                    )?;
                }
            }
        }
        KeysCommand::Show { id } => {
            let key = store
                .key(&id)
                .await?
                .with_context(|| format!("no key has id {id}"))?;
            writeln!(stdout, "{}", details(&key)?)?;
        }
        KeysCommand::Rotate { id, grace } => {
            let grace_ms = if grace
                .trim()
                .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                == "0"
            {
                Some(0)
            } else {
                parse_lifetime(&grace)
            }
            .filter(|ms| *ms <= 7 * 24 * 3600 * 1000)
            .context("--grace: a duration such as 24h, 0s or 7d, at most 7 days")?;
            let old = store
                .key(&id)
                .await?
                .with_context(|| format!("no key has id {id}"))?;
            let (issued, old) = keyring
                .rotate(&old, grace_ms, None, now_ms())
                .await?
                .context("only an active key that has not been rotated yet can be rotated")?;
            writeln!(stdout, "{}", issued.key)?;
            writeln!(
                stderr,
                "{}\nold key:\n{}",
                details(&issued.record)?,
                details(&old)?
            )?;
        }
        KeysCommand::Revoke { id } => {
            let key = keyring
                .revoke(&id, None, now_ms())
                .await?
                .with_context(|| format!("no key has id {id}"))?;
            writeln!(stderr, "{}", details(&key)?)?;
        }
    }
    Ok(())
}
