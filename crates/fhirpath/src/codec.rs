//! `encode`, `decode`, `escape` and `unescape`.

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(crate) fn encode(s: &str, format: &str) -> Option<String> {
    match format {
        "base64" => Some(base64_encode(s.as_bytes(), BASE64)),
        "urlbase64" => Some(base64_encode(s.as_bytes(), BASE64_URL)),
        "hex" => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
        _ => None,
    }
}

pub(crate) fn decode(s: &str, format: &str) -> Option<String> {
    let bytes = match format {
        "base64" => base64_decode(s, BASE64)?,
        "urlbase64" => base64_decode(s, BASE64_URL)?,
        "hex" => hex_decode(s)?,
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}

fn base64_encode(input: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let byte = |k: usize| chunk.get(k).copied().unwrap_or(0);
        let b = [byte(0), byte(1), byte(2)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(alphabet[(n >> (18 - 6 * k) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(input: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let digits: Vec<u8> = input.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (k, b) in chunk.iter().enumerate() {
            let v = alphabet.iter().position(|a| a == b)? as u32;
            n |= v << (18 - 6 * k);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        match chunk.len() {
            4 => out.extend_from_slice(&bytes),
            3 => out.extend_from_slice(&bytes[..2]),
            2 => out.push(bytes[0]),
            _ => return None,
        }
    }
    Some(out)
}

fn hex_decode(input: &str) -> Option<Vec<u8>> {
    if input.len() % 2 != 0 {
        return None;
    }
    (0..input.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(input.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn escape(s: &str, format: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match (format, c) {
            ("html", '<') => out.push_str("&lt;"),
            ("html", '>') => out.push_str("&gt;"),
            ("html", '&') => out.push_str("&amp;"),
            ("html", '"') => out.push_str("&quot;"),
            ("html", '\'') => out.push_str("&#39;"),
            ("json", '"') => out.push_str("\\\""),
            ("json", '\\') => out.push_str("\\\\"),
            ("json", '\n') => out.push_str("\\n"),
            ("json", '\r') => out.push_str("\\r"),
            ("json", '\t') => out.push_str("\\t"),
            ("html" | "json", c) => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

pub(crate) fn unescape(s: &str, format: &str) -> Option<String> {
    match format {
        "html" => Some(
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        ),
        "json" => {
            let mut out = String::with_capacity(s.len());
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match chars.next()? {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    other => out.push(other),
                }
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["", "a", "ab", "abc", "subjects?_d"] {
            for f in ["base64", "urlbase64", "hex"] {
                let e = encode(s, f).unwrap();
                assert_eq!(decode(&e, f).unwrap(), s);
            }
        }
        assert_eq!(encode("test", "base64").unwrap(), "dGVzdA==");
        assert!(decode("!!", "base64").is_none());
        assert!(decode("abc", "hex").is_none());
        assert!(encode("x", "rot13").is_none());
        assert_eq!(escape("\"1<2\"", "html").unwrap(), "&quot;1&lt;2&quot;");
        assert_eq!(unescape("&quot;1&lt;2&quot;", "html").unwrap(), "\"1<2\"");
        assert_eq!(escape("\"x\"", "json").unwrap(), "\\\"x\\\"");
        assert_eq!(unescape("\\\"x\\\"", "json").unwrap(), "\"x\"");
    }
}
