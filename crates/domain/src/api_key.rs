//! The API key format: `mkd_live_<key id>_<secret><checksum>` (`mkd_test_…` for test
//! keys). The key id is 12 base62 characters, the secret 32, and the checksum is the
//! CRC-32 (IEEE) of everything before it, as 6 zero-padded base62 characters.
//!
//! The fixed prefix lets secret scanners recognise a leaked key; the checksum lets a
//! mistyped or truncated key fail here, before any database work. Generation takes its
//! randomness from the caller so this module stays pure; callers pass the OS CSPRNG.

const PREFIX: &str = "mkd_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether a key belongs to production or to testing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyEnvironment {
    Live,
    Test,
}

impl KeyEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyEnvironment::Live => "live",
            KeyEnvironment::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(KeyEnvironment::Live),
            "test" => Some(KeyEnvironment::Test),
            _ => None,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            KeyEnvironment::Live => "live_",
            KeyEnvironment::Test => "test_",
        }
    }
}

/// Total length of every key.
pub const KEY_LEN: usize = PREFIX.len() + 5 + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

/// A key whose shape and checksum are right. Says nothing about whether it exists.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub environment: KeyEnvironment,
    /// The public key id, safe to log and to look the key up by.
    pub id: &'a str,
    /// The secret part; compare only its HMAC, in constant time.
    pub secret: &'a str,
}

impl std::fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedKey")
            .field("environment", &self.environment)
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a string is not an API key. Deliberately coarse: the caller answers every one of
/// them with the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not an API key: wrong prefix")]
    Prefix,
    #[error("not an API key: wrong length")]
    Length,
    #[error("not an API key: characters outside base62")]
    Alphabet,
    #[error("not an API key: checksum mismatch")]
    Checksum,
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) with a byte table built at
/// compile time: every authenticated request checks one, so it should cost next to nothing.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| {
        CRC_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(crc32(body.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks prefix, length, alphabet and checksum, in that order, without allocating.
pub fn parse(raw: &str) -> Result<ParsedKey<'_>, KeyFormatError> {
    let rest = raw.strip_prefix(PREFIX).ok_or(KeyFormatError::Prefix)?;
    let (environment, rest) = if let Some(rest) = rest.strip_prefix("live_") {
        (KeyEnvironment::Live, rest)
    } else if let Some(rest) = rest.strip_prefix("test_") {
        (KeyEnvironment::Test, rest)
    } else {
        return Err(KeyFormatError::Prefix);
    };
    if raw.len() != KEY_LEN {
        return Err(KeyFormatError::Length);
    }
    // Checked before slicing: byte offsets inside a multi-byte character would panic.
    if !raw.is_ascii() {
        return Err(KeyFormatError::Alphabet);
    }
    let (id, rest) = rest.split_at(ID_LEN);
    let rest = rest.strip_prefix('_').ok_or(KeyFormatError::Alphabet)?;
    let (secret, sum) = rest.split_at(SECRET_LEN);
    if !(is_base62(id) && is_base62(secret) && is_base62(sum)) {
        return Err(KeyFormatError::Alphabet);
    }
    let body = &raw[..raw.len() - CHECKSUM_LEN];
    if checksum(body) != sum.as_bytes() {
        return Err(KeyFormatError::Checksum);
    }
    Ok(ParsedKey {
        environment,
        id,
        secret,
    })
}

/// `len` uniformly distributed base62 characters drawn from `random_byte` by rejection
/// sampling (bytes of 248 and above are discarded, so no character is favoured).
pub fn random_base62(len: usize, mut random_byte: impl FnMut() -> u8) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let byte = random_byte();
        if byte < 248 {
            out.push(char::from(ALPHABET[usize::from(byte % 62)]));
        }
    }
    out
}

/// The full key for an id and a secret, checksum appended. Callers are responsible for
/// both being base62 of the right lengths; `parse` checks the result.
pub fn compose(environment: KeyEnvironment, id: &str, secret: &str) -> String {
    let body = format!("{PREFIX}{}{id}_{secret}", environment.tag());
    let sum = checksum(&body);
    format!("{body}{}", std::str::from_utf8(&sum).unwrap_or_default())
}

/// A new key id (public) and the full key string (shown once, never stored).
pub fn generate(
    environment: KeyEnvironment,
    mut random_byte: impl FnMut() -> u8,
) -> (String, String) {
    let id = random_base62(ID_LEN, &mut random_byte);
    let secret = random_base62(SECRET_LEN, &mut random_byte);
    let key = compose(environment, &id, &secret);
    (id, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counter() -> impl FnMut() -> u8 {
        let mut n: u8 = 0;
        move || {
            n = n.wrapping_add(97);
            n
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn generated_keys_parse_back() {
        let (id, key) = generate(KeyEnvironment::Live, counter());
        assert_eq!(key.len(), KEY_LEN);
        assert!(key.starts_with("mkd_live_"));
        let parsed = parse(&key).unwrap();
        assert_eq!(parsed.environment, KeyEnvironment::Live);
        assert_eq!(parsed.id, id);
        assert_eq!(parsed.secret.len(), SECRET_LEN);
        let (_, test_key) = generate(KeyEnvironment::Test, counter());
        assert_eq!(parse(&test_key).unwrap().environment, KeyEnvironment::Test);
    }

    #[test]
    fn rejects_malformed_keys() {
        let (_, key) = generate(KeyEnvironment::Live, counter());
        assert_eq!(parse("Bearer xyz"), Err(KeyFormatError::Prefix));
        assert_eq!(
            parse(&key.replace("mkd_live_", "mkd_prod_")),
            Err(KeyFormatError::Prefix)
        );
        assert_eq!(parse(&key[..KEY_LEN - 1]), Err(KeyFormatError::Length));
        assert_eq!(parse(&format!("{key}0")), Err(KeyFormatError::Length));
        let mut bad = key.clone().into_bytes();
        bad[20] = b'-';
        assert_eq!(
            parse(std::str::from_utf8(&bad).unwrap()),
            Err(KeyFormatError::Alphabet)
        );
        // Same byte length, but a two-byte character straddles the id boundary.
        let straddling = format!("{}é{}", &key[..20], &key[22..]);
        assert_eq!(straddling.len(), KEY_LEN);
        assert_eq!(parse(&straddling), Err(KeyFormatError::Alphabet));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let (_, key) = generate(KeyEnvironment::Live, counter());
        let parsed = parse(&key).unwrap();
        assert!(!format!("{parsed:?}").contains(parsed.secret));
    }

    proptest! {
        /// Any single mistyped character is caught by the checksum or the shape checks.
        #[test]
        fn a_single_typo_never_passes(seed in any::<u8>(), position in 9usize..KEY_LEN, replacement in 0usize..62) {
            let mut n = seed;
            let (_, key) = generate(KeyEnvironment::Live, move || { n = n.wrapping_mul(31).wrapping_add(17); n });
            let mut typo = key.into_bytes();
            let new = ALPHABET[replacement];
            prop_assume!(typo[position] != new && typo[position] != b'_');
            typo[position] = new;
            prop_assert!(parse(std::str::from_utf8(&typo).unwrap()).is_err());
        }

        #[test]
        fn random_base62_is_in_the_alphabet(bytes in proptest::collection::vec(any::<u8>(), 64..256)) {
            let mut it = bytes.into_iter().cycle();
            let s = random_base62(40, move || it.next().unwrap_or(0));
            prop_assert_eq!(s.len(), 40);
            prop_assert!(is_base62(&s));
        }
    }
}
