//! Number and text formatting shared by the tables, the figures and the tests: one
//! function per format, so the report and a check of it print a number the same way.

/// 4 significant digits: plain between 1e-3 and 1e5, scientific outside.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.3e}")
    }
}

/// At most 4 decimals and 8 characters, plain between 1e-3 and 1e5, scientific outside:
/// the numbers `synthscale fit` prints (its output predates [`num`] and is kept as it is).
pub fn four_decimals(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{}", (v * 1e4).round() / 1e4)
            .chars()
            .take(8)
            .collect()
    }
}

/// `num`, or an em dash for a quantity that does not exist.
pub fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), num)
}

/// `[lo, hi]` of an interval, or empty.
pub fn ci(v: Option<&[f64; 2]>) -> String {
    v.map_or(String::new(), |[lo, hi]| {
        format!("[{}, {}]", num(*lo), num(*hi))
    })
}

/// A number as a group key: Rust's shortest round-trip form, which parses back exactly.
pub fn key_num(v: f64) -> String {
    format!("{v}")
}

/// A count with an SI suffix and 2–3 significant digits: 7.4M, 120k, 1.5B, 3.0T.
pub fn si(v: f64) -> String {
    let a = v.abs();
    let (div, suffix) = if a >= 1e12 {
        (1e12, "T")
    } else if a >= 1e9 {
        (1e9, "B")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / div;
    let s = if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{suffix}")
}

/// A model size as legends name it: `7.4M params`.
pub fn fmt_params(n: f64) -> String {
    format!("{} params", si(n))
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4), for images inlined in the HTML.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10's test vectors.
    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (i, o) in cases {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(1.23456), "1.235");
        assert_eq!(num(0.36718), "0.3672");
        assert_eq!(num(477.84), "477.8");
        assert_eq!(num(2143.86), "2144");
        assert_eq!(num(2.5e9), "2.500e9");
        assert_eq!(num(-0.5), "-0.5000");
        assert_eq!(si(7.4e6), "7.4M");
        assert_eq!(si(2.0e7), "20M");
        assert_eq!(si(1.25e9), "1.25B");
        assert_eq!(si(120_000.0), "120k");
        assert_eq!(key_num(7.4e6).parse::<f64>().unwrap(), 7.4e6);
        assert_eq!(html_escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }
}
