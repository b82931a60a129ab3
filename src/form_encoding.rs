//! `application/x-www-form-urlencoded`, for the server's forms and Basic
//! credentials and the verifier's requests alike. Decoding is strict: a
//! stray `%` or invalid UTF-8 is an error instead of a silent replacement
//! character, so what a client meant and what the server read cannot
//! differ.

/// Decodes one name or value: `+` is a space, `%XX` a byte.
pub fn decode_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Encodes one name or value (RFC 6749 §2.3.1 asks this of Basic
/// credentials before base64).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Splits and decodes a whole body into name/value pairs, in order.
pub fn parse_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode_component(name)?, decode_component(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent_escapes() {
        assert_eq!(decode_component("a+b%2Bc%3d").as_deref(), Some("a b+c="));
        assert_eq!(
            parse_pairs(b"grant_type=client_credentials&&scope=a+b&empty=&bare"),
            Some(vec![
                ("grant_type".into(), "client_credentials".into()),
                ("scope".into(), "a b".into()),
                ("empty".into(), String::new()),
                ("bare".into(), String::new()),
            ])
        );
    }

    #[test]
    fn encoding_round_trips() {
        for s in ["a:b%c", "p@ss w0rd+/", "tsec_abc-_", "é"] {
            assert_eq!(decode_component(&encode_component(s)).as_deref(), Some(s));
        }
    }

    #[test]
    fn refuses_bad_escapes_and_invalid_utf8() {
        for bad in ["%ZZ", "%", "%4", "%+1", "%C3%28", "%FF"] {
            assert_eq!(decode_component(bad), None, "{bad}");
        }
        assert_eq!(parse_pairs(b"a=\xff"), None);
    }
}
