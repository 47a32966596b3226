//! Rules on the text of primitive values that callers switch on or off (see the
//! `Validator` settings): HTML in markdown, HTML in any value (security checks), and
//! example URLs where real data is expected. Each runs only on the values it concerns.

use crate::issue::{IssueCode, Severity};
use crate::model::Node;
use crate::primitives::Prim;
use crate::HtmlInMarkdown;

use super::Walker;

/// The R4 canonical resource types (whose `url` defines the resource's own canonical URL).
const CANONICAL_RESOURCES: &[&str] = &[
    "ActivityDefinition",
    "CapabilityStatement",
    "ChargeItemDefinition",
    "CodeSystem",
    "CompartmentDefinition",
    "ConceptMap",
    "EffectEvidenceSynthesis",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "GraphDefinition",
    "ImplementationGuide",
    "Library",
    "Measure",
    "MessageDefinition",
    "NamingSystem",
    "OperationDefinition",
    "PlanDefinition",
    "Questionnaire",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "RiskEvidenceSynthesis",
    "SearchParameter",
    "StructureDefinition",
    "StructureMap",
    "TerminologyCapabilities",
    "TestScript",
    "ValueSet",
];

/// Whether `name` is an R4 canonical resource type (R5's abstract `CanonicalResource`
/// names these when an extension definition written for R5 is used on R4).
pub(crate) fn is_canonical_resource(name: &str) -> bool {
    CANONICAL_RESOURCES.contains(&name)
}

impl Walker<'_, '_> {
    /// The rules of this module for one well-formed string value.
    #[inline]
    pub(super) fn text_rules(&mut self, prim: Prim, s: &str, node: &Node) {
        let v = self.val;
        let url_typed = matches!(prim, Prim::Uri | Prim::Url | Prim::Canonical);
        if prim != Prim::Markdown && !v.security_checks && (v.allow_example_urls || !url_typed) {
            return;
        }
        if prim == Prim::Markdown && v.html_in_markdown != HtmlInMarkdown::Ignore {
            if let Some(at) = markdown_html_at(s) {
                let start: String = s[at..].chars().take(2).collect();
                let msg = format!(
                    "{}: the markdown contains content that appears to be an embedded HTML tag starting at '{start}'; a presentation layer will (or should) escape it, so check that this is what is meant",
                    self.path
                );
                let severity = match v.html_in_markdown {
                    HtmlInMarkdown::Error => Severity::Error,
                    _ => Severity::Warning,
                };
                self.report(severity, IssueCode::Value, "markdown-html", msg, None);
            }
        }
        if v.security_checks && prim != Prim::Xhtml && contains_html_tag(s) {
            let msg = format!(
                "{}: the value contains text that looks like embedded HTML tags, which are not allowed for security reasons",
                self.path
            );
            self.report(
                Severity::Error,
                IssueCode::Value,
                "security-html",
                msg,
                None,
            );
        }
        if url_typed
            && !v.allow_example_urls
            && is_example_url(s)
            && !self.example_url_exempt(s, node)
        {
            let msg = format!(
                "{}: example URLs are not allowed in this context ({})",
                self.path,
                super::quote(s)
            );
            self.report(Severity::Error, IssueCode::Value, "example-url", msg, None);
        }
    }

    /// Where an example URL is not a reference to something: a Bundle entry's `fullUrl`
    /// and a canonical resource's own `url` (they name, not point), and a URL that names a
    /// loaded definition.
    fn example_url_exempt(&self, url: &str, node: &Node) -> bool {
        let defining = self
            .def_path
            .split_once('.')
            .is_some_and(|(rt, rest)| rest == "url" && is_canonical_resource(rt));
        let bare = crate::model::strip_version(url);
        node.path == "Bundle.entry.fullUrl"
            || defining
            || self.val.defs.sd(bare).is_some()
            || self.val.defs.is_value_set(bare)
    }
}

/// Where markdown appears to embed HTML: the first `<` that opens a tag (`<b>`, `</p>`,
/// `<div class`; not escaped as `\<`), a comment, a declaration or a processing instruction
/// (`<!`, `<?`), as the HL7 validator's markdown pre-processing finds it.
pub(crate) fn markdown_html_at(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(off) = s[from..].find('<') {
        let at = from + off;
        let rest = &bytes[at + 1..];
        if matches!(rest.first(), Some(b'!' | b'?')) {
            return Some(at);
        }
        let escaped = at > 0 && bytes[at - 1] == b'\\';
        if !escaped && opens_tag(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// After a `<`: an optional `/`, a letter, letters, digits or hyphens, then white space or `>`.
fn opens_tag(rest: &[u8]) -> bool {
    let rest = rest.strip_prefix(b"/").unwrap_or(rest);
    let Some((first, tail)) = rest.split_first() else {
        return false;
    };
    if !first.is_ascii_alphabetic() {
        return false;
    }
    let n = tail
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
        .count();
    matches!(tail.get(n), Some(c) if c.is_ascii_whitespace() || *c == b'>')
}

/// Whether text contains something that looks like an HTML start tag: `<name>` or
/// `<name attributes>`, the name a letter followed by letters, digits or underscores.
pub(crate) fn contains_html_tag(s: &str) -> bool {
    let mut rest = s;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else {
            return false;
        };
        if rest[..close].contains('<') {
            continue;
        }
        let content = &rest[..close];
        let mut chars = content.chars();
        if chars.next().is_some_and(char::is_alphabetic) {
            let tail = chars.as_str();
            let name_end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if tail[name_end..]
                .chars()
                .next()
                .is_none_or(char::is_whitespace)
            {
                return true;
            }
        }
    }
    false
}

/// The example domains and OIDs of the FHIR specification's examples.
pub(crate) fn is_example_url(url: &str) -> bool {
    const DOMAINS: &[&str] = &[
        "example.org",
        "acme.com",
        "acme.org",
        "example.com",
        "example.net",
    ];
    DOMAINS.iter().any(|d| {
        url.match_indices(d)
            .any(|(i, _)| matches!(url.as_bytes().get(i + d.len()), None | Some(b'/')))
    }) || url.starts_with("urn:oid:1.3.6.1.4.1.32473.")
        || url.starts_with("urn:oid:2.999.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_html() {
        assert_eq!(markdown_html_at("<resource type>\\<id>"), Some(0));
        assert_eq!(markdown_html_at("a </p> b"), Some(2));
        assert_eq!(markdown_html_at("x <!-- c -->"), Some(2));
        assert_eq!(markdown_html_at("a \\<b> escaped, 1 < 2, <3"), None);
        assert_eq!(markdown_html_at("plain *markdown*"), None);
    }

    #[test]
    fn html_tags() {
        assert!(contains_html_tag("Peter <b>James</b>"));
        assert!(contains_html_tag("x <script src=y>"));
        assert!(!contains_html_tag("1 < 2 and 3 > 2"));
        assert!(!contains_html_tag("a <-> b"));
        assert!(!contains_html_tag("no tags"));
    }

    #[test]
    fn example_urls() {
        assert!(is_example_url("http://example.org/fhir/x"));
        assert!(is_example_url(
            "http://repository.example.org/fhir/DocumentReference/1"
        ));
        assert!(is_example_url("https://acme.com"));
        assert!(is_example_url("urn:oid:2.999.1"));
        assert!(!is_example_url("https://fhir.nhs.uk/Id/nhs-number"));
    }
}
