//! Audiences and resource indicators (RFC 8707): absolute URIs without a
//! fragment, compared as exact strings.

/// RFC 3986 absolute URI, checked just enough to refuse what RFC 8707 §2
/// forbids and what would break a space-delimited list: a scheme, a colon, a
/// non-empty rest, no fragment, no whitespace or control characters.
pub fn is_valid_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok
        && !rest.is_empty()
        && !s.contains('#')
        && s.chars().all(|c| c.is_ascii_graphic())
        && s.len() <= 2048
}

/// Splits a stored, space-delimited audience list.
pub fn split_list(list: &str) -> Vec<String> {
    list.split(' ')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_absolute_uris_and_refuses_the_rest() {
        for good in [
            "https://api.example.com",
            "urn:example:api",
            "https://a.example/x?y=1",
        ] {
            assert!(is_valid_uri(good), "{good}");
        }
        for bad in [
            "",
            "api",
            "/relative",
            "https://a.example/#frag",
            "https://a.example/ x",
            "1http://a",
            "https:",
            "https://caf\u{e9}.example",
        ] {
            assert!(!is_valid_uri(bad), "{bad}");
        }
    }
}
