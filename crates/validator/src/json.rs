//! Reading JSON text, with comments (`//`, `/* */`) accepted only when asked for: FHIR JSON
//! has none, but the HL7 validator can be told to allow them (`allow-comments`).

use std::io::Read;

use json_comments::{CommentSettings, StripComments};
use serde_json::Value;

/// `text` with its `//` and `/* */` comments (outside strings) replaced by white space.
pub fn strip_json_comments(text: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    StripComments::with_settings(CommentSettings::c_style(), text).read_to_end(&mut out)?;
    Ok(out)
}

/// Parses JSON text (a leading byte order mark is ignored, as RFC 8259 §8.1 allows); with
/// `allow_comments`, comments are ignored too, otherwise they make it unreadable.
pub(crate) fn parse(text: &str, allow_comments: bool) -> Result<Value, serde_json::Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !allow_comments {
        return serde_json::from_str(text);
    }
    let stripped = strip_json_comments(text.as_bytes()).map_err(serde_json::Error::io)?;
    serde_json::from_slice(&stripped)
}
