//! The revocation feed's query string. Never a panic; a parsed query has a
//! non-negative cursor and a limit within the page size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::revoke::{FEED_PAGE_MAX, FeedQuery};

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = FeedQuery::parse(data) {
        assert!(q.after >= 0);
        assert!((1..=FEED_PAGE_MAX).contains(&q.limit));
    }
});
