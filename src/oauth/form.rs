//! Form decoding for the OAuth endpoints: see [`crate::form_encoding`].

pub use crate::form_encoding::{decode_component, parse_pairs};
