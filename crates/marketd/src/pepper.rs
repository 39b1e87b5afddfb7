//! Where the key pepper comes from: `MARKETD_KEY_PEPPER` in production; for the embedded
//! SQLite default, a file beside the database that only its owner can read, generated on
//! first use, so `marketd serve` works out of the box without a secret in the repo.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use marketd_api::auth::Pepper;

pub const PEPPER_ENV: &str = "MARKETD_KEY_PEPPER";
pub const PEPPER_FILE_ENV: &str = "MARKETD_KEY_PEPPER_FILE";

/// The SQLite database file a URL names, if it names one.
fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
}

/// The pepper file used when none is configured: `<database>.pepper`.
pub fn default_pepper_file(database_url: &str) -> Option<PathBuf> {
    sqlite_file(database_url).map(|db| {
        let mut name = db.into_os_string();
        name.push(".pepper");
        PathBuf::from(name)
    })
}

pub fn load(configured: Option<&Pepper>, database_url: &str) -> anyhow::Result<Pepper> {
    if let Some(pepper) = configured {
        return Ok(pepper.clone());
    }
    let file = std::env::var_os(PEPPER_FILE_ENV)
        .map(PathBuf::from)
        .or_else(|| default_pepper_file(database_url));
    match file {
        Some(path) if path.exists() => read(&path),
        Some(path) if sqlite_file(database_url).is_some() => create(&path),
        Some(path) => bail!("{PEPPER_FILE_ENV}: {} does not exist", path.display()),
        None if database_url.starts_with("sqlite:") => {
            // An in-memory database lives only as long as the process; so can its pepper.
            Pepper::parse(&Pepper::generate_spec()?).map_err(Into::into)
        }
        None => bail!(
            "{PEPPER_ENV} is not set. It keys the stored hashes of API keys: set it to at \
             least 32 random characters (for example `openssl rand -base64 32`) and keep it \
             secret, the same on every replica"
        ),
    }
}

fn read(path: &Path) -> anyhow::Result<Pepper> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "the key pepper file {} is readable by others (mode {:o}); run `chmod 600` on it",
                path.display(),
                mode & 0o777
            );
        }
    }
    let spec = std::fs::read_to_string(path)
        .with_context(|| format!("reading the key pepper file {}", path.display()))?;
    Pepper::parse(&spec).with_context(|| format!("the key pepper file {}", path.display()))
}

fn create(path: &Path) -> anyhow::Result<Pepper> {
    let spec = Pepper::generate_spec()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the key pepper file {}", path.display()))?;
    file.write_all(spec.as_bytes())?;
    file.sync_all()?;
    tracing::info!(
        path = %path.display(),
        "generated a key pepper readable only by its owner; for production set {PEPPER_ENV} instead"
    );
    Pepper::parse(&spec).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pepper_files_sit_beside_sqlite_databases() {
        assert_eq!(
            default_pepper_file("sqlite://data/m.db"),
            Some(PathBuf::from("data/m.db.pepper"))
        );
        assert_eq!(
            default_pepper_file("sqlite:m.db?mode=rwc"),
            Some(PathBuf::from("m.db.pepper"))
        );
        assert_eq!(default_pepper_file("sqlite::memory:"), None);
        assert_eq!(default_pepper_file("postgres://localhost/m"), None);
    }
}
