//! Regular expressions for ranges of whole numbers, for OpenAPI patterns that say
//! exactly which numbers a parameter accepts.

/// A regex for the decimal numbers in `[lo, hi]` without leading zeros (`lo >= 1`).
pub(crate) fn int_range(lo: u64, hi: u64) -> String {
    let mut alternatives = Vec::new();
    let mut lo = lo;
    while lo <= hi {
        let digits = lo.to_string().len() as u32;
        let top = (10_u64.pow(digits) - 1).min(hi);
        same_length(&lo.to_string(), &top.to_string(), &mut alternatives);
        lo = top + 1;
    }
    alternatives.join("|")
}

/// Alternatives matching the numbers from `a` to `b`, both with the same digit count.
fn same_length(a: &str, b: &str, out: &mut Vec<String>) {
    fn go(a: &[u8], b: &[u8], prefix: String, out: &mut Vec<String>) {
        if a.is_empty() {
            out.push(prefix);
            return;
        }
        let rest = a.len() - 1;
        let (da, db) = (a[0] - b'0', b[0] - b'0');
        let any = |n: usize| match n {
            0 => String::new(),
            1 => "[0-9]".to_owned(),
            n => format!("[0-9]{{{n}}}"),
        };
        if da == db {
            return go(&a[1..], &b[1..], format!("{prefix}{da}"), out);
        }
        let a_low = a[1..].iter().all(|&c| c == b'0');
        let b_high = b[1..].iter().all(|&c| c == b'9');
        let first = if a_low { da } else { da + 1 };
        let last = if b_high { db } else { db - 1 };
        if !a_low {
            let nines = "9".repeat(rest);
            go(&a[1..], nines.as_bytes(), format!("{prefix}{da}"), out);
        }
        if first <= last {
            let class = if first == last {
                first.to_string()
            } else {
                format!("[{first}-{last}]")
            };
            out.push(format!("{prefix}{class}{}", any(rest)));
        }
        if !b_high {
            let zeros = "0".repeat(rest);
            go(zeros.as_bytes(), &b[1..], format!("{prefix}{db}"), out);
        }
    }
    go(a.as_bytes(), b.as_bytes(), String::new(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ranges() {
        assert_eq!(int_range(2, 1000), "[2-9]|[1-9][0-9]|[1-9][0-9]{2}|1000");
        assert_eq!(int_range(1, 25), "[1-9]|1[0-9]|2[0-5]");
        assert_eq!(int_range(13, 1000), "1[3-9]|[2-9][0-9]|[1-9][0-9]{2}|1000");
    }
}
