//! Scopes (RFC 6749 §3.3): space-delimited, case-sensitive tokens of
//! `%x21 / %x23-5B / %x5D-7E`.

/// A parsed scope: the tokens in the order first given, without repeats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(Vec<String>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a scope token contains a character RFC 6749 §3.3 does not allow")]
pub struct InvalidScopeSyntax;

pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, InvalidScopeSyntax> {
        let mut tokens: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if !is_scope_token(token) {
                return Err(InvalidScopeSyntax);
            }
            if seen.insert(token) {
                tokens.push(token.to_owned());
            }
        }
        Ok(Self(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset_of(&self, other: &Scope) -> bool {
        let other: std::collections::HashSet<&str> = other.0.iter().map(String::as_str).collect();
        self.0.iter().all(|t| other.contains(t.as_str()))
    }

    pub fn tokens(&self) -> &[String] {
        &self.0
    }

    /// The tokens of `self` that `other` also has, in `self`'s order.
    pub fn within(&self, other: &Scope) -> Scope {
        let other: std::collections::HashSet<&str> = other.0.iter().map(String::as_str).collect();
        Scope(
            self.0
                .iter()
                .filter(|t| other.contains(t.as_str()))
                .cloned()
                .collect(),
        )
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_space_delimited_tokens_and_drops_repeats() -> Result<(), InvalidScopeSyntax> {
        let s = Scope::parse("read  write read")?;
        assert_eq!(s.tokens(), ["read", "write"]);
        assert_eq!(s.to_string(), "read write");
        assert!(Scope::parse("")?.is_empty());
        Ok(())
    }

    #[test]
    fn refuses_characters_outside_nqchar() {
        for bad in ["a\"b", "a\\b", "a\tb", "caf\u{e9}", "a\u{7f}"] {
            assert_eq!(Scope::parse(bad), Err(InvalidScopeSyntax), "{bad:?}");
        }
    }

    #[test]
    fn subset_is_by_token() -> Result<(), InvalidScopeSyntax> {
        let all = Scope::parse("read write")?;
        assert!(Scope::parse("write")?.is_subset_of(&all));
        assert!(Scope::parse("")?.is_subset_of(&all));
        assert!(!Scope::parse("admin read")?.is_subset_of(&all));
        assert!(!Scope::parse("rea")?.is_subset_of(&all));
        Ok(())
    }
}
