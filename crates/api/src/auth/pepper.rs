//! The server-side pepper that keys every stored key hash. A database dump alone cannot
//! be brute-forced without it, and it never leaves the process.
//!
//! Spec format (`MARKETD_KEY_PEPPER`): `secret`, or `version:secret` entries separated by
//! commas, newest first (`2:new…,1:old…`). New hashes use the first; older versions
//! still verify, and a key hashed under one is re-hashed under the newest on its next
//! successful use, so a pepper can be rotated without reissuing keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest pepper accepted: anything shorter is guessable offline.
pub const MIN_PEPPER_LEN: usize = 32;

#[derive(Clone)]
pub struct Pepper {
    /// (version, secret bytes), newest first; never empty.
    versions: Vec<(u32, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PepperError {
    #[error("the key pepper is empty")]
    Empty,
    #[error("a key pepper must be at least {MIN_PEPPER_LEN} characters")]
    TooShort,
    #[error("a key pepper version must be a positive integer (`2:secret,1:old`)")]
    BadVersion,
    #[error("key pepper version {0} appears twice")]
    DuplicateVersion(u32),
    #[error("the operating system's random generator failed")]
    Random,
}

impl Pepper {
    pub fn parse(spec: &str) -> Result<Self, PepperError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(PepperError::Empty);
        }
        let entries: Vec<&str> = spec.split(',').map(str::trim).collect();
        let mut versions: Vec<(u32, Vec<u8>)> = Vec::with_capacity(entries.len());
        for entry in &entries {
            let (version, secret) = match entry.split_once(':') {
                Some((v, secret)) if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() => {
                    let v: u32 = v.parse().map_err(|_| PepperError::BadVersion)?;
                    (v, secret)
                }
                // A lone secret is version 1; so is a secret that happens to contain ':'
                // when it is the only entry.
                _ if entries.len() == 1 => (1, *entry),
                _ => return Err(PepperError::BadVersion),
            };
            if version == 0 {
                return Err(PepperError::BadVersion);
            }
            if secret.len() < MIN_PEPPER_LEN {
                return Err(PepperError::TooShort);
            }
            if versions.iter().any(|(v, _)| *v == version) {
                return Err(PepperError::DuplicateVersion(version));
            }
            versions.push((version, secret.as_bytes().to_vec()));
        }
        Ok(Self { versions })
    }

    /// A fresh version-1 pepper from the OS CSPRNG, in spec form.
    pub fn generate_spec() -> Result<String, PepperError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| PepperError::Random)?;
        Ok(format!("1:{}", STANDARD.encode(bytes)))
    }

    /// The version new hashes are made with.
    pub fn current_version(&self) -> u32 {
        self.versions.first().map_or(1, |(v, _)| *v)
    }

    /// HMAC-SHA-256 of `key` under the pepper of `version`; None when this server does not
    /// hold that version (the key then cannot be verified and fails like a wrong secret).
    pub fn hash(&self, version: u32, key: &str) -> Option<[u8; 32]> {
        let (_, secret) = self.versions.iter().find(|(v, _)| *v == version)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
        mac.update(key.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    pub fn hash_current(&self, key: &str) -> [u8; 32] {
        self.hash(self.current_version(), key).unwrap_or([0; 32])
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<u32> = self.versions.iter().map(|(v, _)| *v).collect();
        f.debug_struct("Pepper")
            .field("versions", &versions)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn parses_versions_newest_first() {
        let pepper = Pepper::parse(&format!("2:{B}, 1:{A}")).unwrap();
        assert_eq!(pepper.current_version(), 2);
        assert_ne!(pepper.hash(1, "k"), pepper.hash(2, "k"));
        assert_eq!(pepper.hash(3, "k"), None);
        assert_eq!(Pepper::parse(A).unwrap().current_version(), 1);
        assert_eq!(Pepper::parse("short").unwrap_err(), PepperError::TooShort);
        assert_eq!(
            Pepper::parse(&format!("1:{A},1:{B}")).unwrap_err(),
            PepperError::DuplicateVersion(1)
        );
        assert_eq!(
            Pepper::parse(&format!("x:{A},1:{B}")).unwrap_err(),
            PepperError::BadVersion
        );
        assert!(!format!("{pepper:?}").contains('a'));
    }

    #[test]
    fn matches_the_rfc_4231_hmac_sha256_vector() {
        // RFC 4231 test case 2 uses the short key "Jefe"; build the pepper around it.
        let pepper = Pepper {
            versions: vec![(1, b"Jefe".to_vec())],
        };
        let mac = pepper.hash(1, "what do ya want for nothing?").unwrap();
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn generated_peppers_parse_and_differ() {
        let a = Pepper::generate_spec().unwrap();
        assert!(Pepper::parse(&a).is_ok());
        assert_ne!(a, Pepper::generate_spec().unwrap());
    }
}
