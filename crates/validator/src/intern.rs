//! Interning of constraint keys: `Issue::message_id` is `&'static str`, and
//! keys come from definitions loaded at start, so each distinct key is leaked
//! once and shared by every validator built afterwards.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

static KEYS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();

pub(crate) fn intern(s: &str) -> &'static str {
    let set = KEYS.get_or_init(|| Mutex::new(HashSet::new()));
    // A poisoned lock only means another thread panicked mid-insert; the set
    // itself is still consistent.
    let mut guard = match set.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if let Some(k) = guard.get(s) {
        return k;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    guard.insert(leaked);
    leaked
}
