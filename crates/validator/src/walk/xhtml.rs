//! Narrative XHTML (`Narrative.div`): only the XML entities and numeric character references,
//! and only the HTML elements R4's txt-1 allows (no `script`, `form`, `iframe`, ...). The HL7
//! validator parses the XHTML and checks the same; txt-1 is not evaluated as FHIRPath
//! (`invariants.rs`).

use serde_json::Value;

use super::Walker;
use crate::issue::{IssueCode, Severity};

/// The elements txt-1 allows: "the basic html formatting elements ... described in chapters
/// 7-11 (except section 4 of chapter 9) and 15 of the HTML 4.0 standard, <a> elements, images".
const ALLOWED: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "b",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "ul",
    "var",
];

/// What is wrong with the XHTML: (message id, message).
fn problems(div: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let bytes = div.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'&' => {
                let rest = &div[i + 1..];
                let name = rest.split(';').next().unwrap_or("");
                let ok = rest.contains(';')
                    && name.len() <= 10
                    && (matches!(name, "lt" | "gt" | "amp" | "quot" | "apos")
                        || name.strip_prefix("#x").is_some_and(|h| {
                            !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit())
                        })
                        || name.strip_prefix('#').is_some_and(|d| {
                            !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
                        }));
                if !ok {
                    let shown: String = rest.chars().take_while(|c| *c != ';').take(10).collect();
                    out.push((
                        "xhtml-entity",
                        format!("Invalid entity in the XHTML ('&{shown};')"),
                    ));
                }
            }
            b'<' if bytes.get(i + 1).is_some_and(u8::is_ascii_alphabetic) => {
                let name: String = div[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
                    .collect();
                if !ALLOWED.contains(&name.as_str()) {
                    out.push((
                        "txt-1",
                        format!("Illegal element name in the XHTML ('{name}'): the narrative SHALL contain only the basic HTML formatting elements (txt-1)"),
                    ));
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

impl Walker<'_, '_> {
    pub(super) fn narrative_div(&mut self, div: &Value) {
        let Some(s) = div.as_str() else { return };
        for (id, msg) in problems(s) {
            self.report(Severity::Error, IssueCode::Value, id, msg, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_and_elements() {
        let ok = r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>a &amp; b &lt; c &#169; &#xA9;</p><table><tr><td>x</td></tr></table></div>"#;
        assert!(problems(ok).is_empty());
        let bad = r#"<div xmlns="http://www.w3.org/1999/xhtml">&reg; <script>x</script></div>"#;
        let ids: Vec<_> = problems(bad).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["xhtml-entity", "txt-1"]);
        assert!(problems("<div>1 < 4</div>").is_empty());
    }
}
