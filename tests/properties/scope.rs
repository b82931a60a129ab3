//! Scope parsing and narrowing (RFC 6749 §3.3), checked against a plain
//! set model.
//!
//! A scope decides what a token may do, so a mistake here widens access:
//! narrowing must never grant a token outside the client's scope, a request
//! for anything more must be `invalid_scope` rather than silently trimmed,
//! and text outside the RFC's grammar (`scope-token = 1*( %x21 / %x23-5B /
//! %x5D-7E )`) must be refused before it reaches a token or a log. What the
//! code promises beyond the RFC is tested as promised: tokens are separated
//! by spaces (runs of spaces are tolerated), a scope is a set (order and
//! repeats do not matter, the first order given is kept), and an absent or
//! empty request means everything the client is allowed.

use std::collections::BTreeSet;

use proptest::prelude::*;
use tessera::oauth::OAuthError;
use tessera::oauth::client_credentials::narrow_scope;
use tessera::oauth::scope::Scope;

use crate::{Coverage, check};

/// Pure functions: many cases are cheap.
const CASES: u32 = 256;

/// RFC 6749 §3.3 NQCHAR, written out independently of the code under test.
fn nqchar(c: char) -> bool {
    matches!(c, '\u{21}' | '\u{23}'..='\u{5B}' | '\u{5D}'..='\u{7E}')
}

/// Tokens drawn from a small vocabulary collide often, so subsets and
/// repeats actually occur; random ones cover the whole NQCHAR range.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "read", "write", "admin", "a", "A", "read:all", "x!#$", "~", "[]", "^_`{|}",
        ])
        .prop_map(str::to_owned),
        "[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,8}",
    ]
}

fn tokens() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(token(), 0..8)
}

/// A character a scope must refuse: anything but a space and NQCHAR.
fn bad_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '"', '\\', '\t', '\n', '\r', '\0', '\u{7f}', '\u{1b}', 'é', '€', '\u{a0}', '\u{3000}',
        ]),
        any::<char>().prop_filter("outside NQCHAR and not a space", |c| {
            !nqchar(*c) && *c != ' '
        }),
    ]
}

/// Joins with one to three spaces between tokens, and maybe around them.
fn join(tokens: &[String], gaps: &[u8]) -> String {
    let gap = |i: usize| " ".repeat(usize::from(gaps.get(i).copied().unwrap_or(1) % 3 + 1));
    let mut out = String::new();
    if gaps.first().is_some_and(|g| g % 5 == 0) {
        out.push(' ');
    }
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            out.push_str(&gap(i));
        }
        out.push_str(t);
    }
    if gaps.last().is_some_and(|g| g % 7 == 0) {
        out.push(' ');
    }
    out
}

fn set(tokens: &[String]) -> BTreeSet<&str> {
    tokens.iter().map(String::as_str).collect()
}

/// The first occurrence of each token, in order.
fn dedup(tokens: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tokens {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

fn parse(text: &str) -> Result<Scope, TestCaseError> {
    Scope::parse(text).map_err(|e| TestCaseError::fail(format!("{text:?} refused: {e}")))
}

#[test]
fn parse_accepts_exactly_space_separated_nqchar_tokens() {
    // Mostly valid text with a bad character now and then, so both answers
    // are common.
    let text = prop::collection::vec(
        prop_oneof![
            6 => token(),
            2 => Just(" ".to_owned()),
            1 => bad_char().prop_map(String::from),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat());
    check("scope syntax", CASES, text, |text| {
        let valid = text.chars().all(|c| c == ' ' || nqchar(c));
        match Scope::parse(&text) {
            Ok(scope) => {
                prop_assert!(valid, "{text:?} was accepted");
                let given: Vec<String> = text
                    .split(' ')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
                prop_assert_eq!(scope.tokens().to_vec(), dedup(&given));
                // What is stored and shown parses back to the same scope.
                prop_assert_eq!(parse(&scope.to_string())?, scope);
            }
            Err(_) => prop_assert!(!valid, "{text:?} was refused"),
        }
        Ok(())
    });
}

#[test]
fn parse_ignores_order_repeats_and_spacing() {
    let input =
        (tokens(), prop::collection::vec(any::<u8>(), 0..12)).prop_flat_map(|(tokens, gaps)| {
            // The same tokens shuffled, some of them twice.
            let repeated: Vec<String> = tokens
                .iter()
                .chain(tokens.iter().step_by(2))
                .cloned()
                .collect();
            (Just(tokens), Just(repeated).prop_shuffle(), Just(gaps))
        });
    check(
        "scope order and repeats",
        CASES,
        input,
        |(tokens, shuffled, gaps)| {
            let a = parse(&tokens.join(" "))?;
            let b = parse(&join(&shuffled, &gaps))?;
            prop_assert_eq!(set(a.tokens()), set(&tokens));
            prop_assert_eq!(set(a.tokens()), set(b.tokens()));
            prop_assert!(a.is_subset_of(&b) && b.is_subset_of(&a));
            // Kept in the order first given, without repeats.
            prop_assert_eq!(b.tokens().to_vec(), dedup(&shuffled));
            prop_assert_eq!(a.is_empty(), tokens.is_empty());
            Ok(())
        },
    );
}

#[test]
fn subset_is_set_inclusion_reflexive_and_transitive() {
    // A chain c ⊇ b ⊇ a built by dropping tokens, plus an unrelated d, so
    // both true and false inclusions are common.
    let input = (tokens(), tokens())
        .prop_flat_map(|(c, d)| {
            let n = c.len();
            (
                Just(c),
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(any::<bool>(), n),
                Just(d),
            )
        })
        .prop_map(|(c, keep_b, keep_a, d)| {
            let b: Vec<String> = c
                .iter()
                .zip(&keep_b)
                .filter(|(_, k)| **k)
                .map(|(t, _)| t.clone())
                .collect();
            let a: Vec<String> = b
                .iter()
                .zip(&keep_a)
                .filter(|(_, k)| **k)
                .map(|(t, _)| t.clone())
                .collect();
            (a, b, c, d)
        });
    check("scope subset", CASES, input, |(a, b, c, d)| {
        let [sa, sb, sc, sd] = [&a, &b, &c, &d].map(|t| parse(&t.join(" ")));
        let (sa, sb, sc, sd) = (sa?, sb?, sc?, sd?);
        let all = [(&sa, &a), (&sb, &b), (&sc, &c), (&sd, &d)];
        for (x, xt) in all {
            prop_assert!(x.is_subset_of(x), "not reflexive: {xt:?}");
            prop_assert!(x.is_subset_of(&Scope::default()) == xt.is_empty());
            for (y, yt) in all {
                prop_assert_eq!(
                    x.is_subset_of(y),
                    set(xt).is_subset(&set(yt)),
                    "{:?} ⊆ {:?}",
                    xt,
                    yt
                );
                for (z, _) in all {
                    if x.is_subset_of(y) && y.is_subset_of(z) {
                        prop_assert!(x.is_subset_of(z), "not transitive");
                    }
                }
            }
        }
        // The chain was built to hold.
        prop_assert!(sa.is_subset_of(&sb) && sb.is_subset_of(&sc) && sa.is_subset_of(&sc));
        Ok(())
    });
}

/// What a client may ask for, relative to what it is allowed.
#[derive(Debug, Clone)]
enum Request {
    Absent,
    /// Some of the allowed tokens, shuffled and repeated.
    Within(Vec<String>),
    /// Allowed tokens plus one random token, usually not allowed.
    Beyond(Vec<String>),
    /// Any tokens at all.
    Any(Vec<String>),
    /// Otherwise fine text with a character RFC 6749 §3.3 forbids.
    Malformed(Vec<String>, char, usize),
}

#[test]
fn narrowing_never_widens_and_refuses_what_is_not_allowed() {
    let coverage = Coverage::default();
    let input = tokens().prop_flat_map(|allowed| {
        let within = prop::collection::vec(any::<prop::sample::Index>(), 0..6).prop_map({
            let allowed = allowed.clone();
            move |picks| {
                if allowed.is_empty() {
                    return Vec::new();
                }
                picks.iter().map(|i| i.get(&allowed).clone()).collect()
            }
        });
        let request = prop_oneof![
            Just(Request::Absent),
            within.clone().prop_map(Request::Within),
            (within.clone(), token(), any::<prop::sample::Index>()).prop_map(
                |(mut w, extra, at)| {
                    let at = at.index(w.len() + 1);
                    w.insert(at, extra);
                    Request::Beyond(w)
                }
            ),
            tokens().prop_map(Request::Any),
            (within, bad_char(), any::<usize>())
                .prop_map(|(w, c, at)| Request::Malformed(w, c, at)),
        ];
        (Just(allowed), request)
    });
    check("scope narrowing", CASES, input, |(allowed, request)| {
        let allowed_scope = parse(&allowed.join(" "))?;
        let allowed_set = set(&allowed);
        let text = match &request {
            Request::Absent => None,
            Request::Within(t) | Request::Beyond(t) | Request::Any(t) => Some(t.join(" ")),
            Request::Malformed(t, c, at) => {
                let mut text = t.join(" ");
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert(at, *c);
                Some(text)
            }
        };
        let result = narrow_scope(&allowed_scope, text.as_deref());
        // Whatever was asked, nothing outside the allowed scope comes back.
        if let Ok(granted) = &result {
            prop_assert!(granted.is_subset_of(&allowed_scope), "widened to {granted}");
        }
        let requested: Option<Vec<String>> = match &request {
            Request::Absent => None,
            Request::Malformed(..) => {
                coverage.hit("malformed");
                prop_assert!(
                    matches!(result, Err(OAuthError::InvalidScope(_))),
                    "malformed {text:?} gave {result:?}"
                );
                return Ok(());
            }
            Request::Within(t) | Request::Beyond(t) | Request::Any(t) => Some(t.clone()),
        };
        match requested {
            // Absent, or only spaces: everything the client is allowed.
            None => {
                coverage.hit("absent");
                prop_assert_eq!(result.ok(), Some(allowed_scope));
            }
            Some(t) if t.is_empty() => {
                coverage.hit("empty");
                prop_assert_eq!(result.ok(), Some(allowed_scope));
            }
            Some(t) if set(&t).is_subset(&allowed_set) => {
                coverage.hit("narrowed");
                let granted = result.map_err(|e| TestCaseError::fail(format!("{t:?}: {e}")))?;
                // Exactly what was asked: not trimmed, not widened.
                prop_assert_eq!(set(granted.tokens()), set(&t));
            }
            Some(t) => {
                coverage.hit("beyond");
                prop_assert!(
                    matches!(result, Err(OAuthError::InvalidScope(_))),
                    "{t:?} beyond {allowed:?} gave {result:?}"
                );
            }
        }
        Ok(())
    });
    coverage.require(
        "scope narrowing",
        &["absent", "empty", "narrowed", "beyond", "malformed"],
    );
}
