//! FHIRPath functions.

use std::cmp::Ordering;
use std::collections::HashSet;

use regex::Regex;
use serde_json::Value;

use crate::ast::{Call, Expr, Func};
use crate::decimal::Decimal;
use crate::error::EvalError;
use crate::eval::{
    check_size, children, eval, filter_type, is_type, navigate, Coll, Env, EvalResult,
};
use crate::ops::{self, singleton_system, to_bool3, union, ItemIndex};
use crate::parser::compile_regex;
use crate::temporal::{Temporal, TemporalKind};
use crate::value::{calendar_keyword, comparable_values, item_to_string, Item, Node, Quantity};
use crate::{boundaries, codec};

/// Upper bound on items produced by `repeat`, so runaway projections
/// (`1.repeat($this + 1)`) end with an error.
const MAX_ITEMS: usize = 100_000;

pub(crate) fn call<'a>(
    call: &Call,
    input: Coll<'a>,
    has_source: bool,
    env: &Env<'_, 'a>,
) -> EvalResult<'a> {
    match call.func {
        f if f.is_lambda() => lambda_fn(call, input, env),
        Func::Iif => iif(call, input, has_source, env),
        Func::Empty => Ok(boolean(input.is_empty())),
        Func::Count => Ok(vec![Item::Integer(input.len() as i64)]),
        Func::AllTrue | Func::AnyTrue | Func::AllFalse | Func::AnyFalse => {
            bool_agg(call.func, &input)
        }
        Func::SubsetOf => Ok(boolean(subset(&input, &arg(call, 0, env)?))),
        Func::SupersetOf => Ok(boolean(subset(&arg(call, 0, env)?, &input))),
        Func::Distinct => Ok(union(input, Vec::new())),
        Func::IsDistinct => {
            let n = input.len();
            Ok(boolean(union(input, Vec::new()).len() == n))
        }
        Func::OfType => type_fn(call, input, env),
        Func::Is => match input.as_slice() {
            [] => Ok(Vec::new()),
            [one] => match &call.type_arg {
                Some(ty) => Ok(boolean(is_type(one, ty, env, false)?)),
                None => Ok(Vec::new()),
            },
            _ => Err(EvalError::NotSingleton("is()", input.len())),
        },
        // Deliberately lenient: on several items `as()` filters like
        // `ofType()`. R4's dom-3 applies `descendants().as(canonical)` to
        // whole resources; erroring would break that core invariant (the
        // official suite's testFHIRPathAsFunction21 expects an error).
        Func::As => type_fn(call, input, env),
        Func::Type => Ok(input.iter().map(type_info).collect()),
        Func::First => Ok(input.into_iter().take(1).collect()),
        Func::Last => Ok(input.into_iter().last().into_iter().collect()),
        Func::Tail => Ok(input.into_iter().skip(1).collect()),
        Func::Skip => {
            let n = int_arg(call, 0, env)?.unwrap_or(0).max(0) as usize;
            Ok(input.into_iter().skip(n).collect())
        }
        Func::Take => {
            let n = int_arg(call, 0, env)?.unwrap_or(0).max(0) as usize;
            Ok(input.into_iter().take(n).collect())
        }
        Func::Single => match input.len() {
            0 | 1 => Ok(input),
            n => Err(EvalError::NotSingleton("single()", n)),
        },
        Func::Not => Ok(to_bool3(&input)?
            .map(|b| Item::Boolean(!b))
            .into_iter()
            .collect()),
        Func::HasValue => Ok(boolean(has_value(&input))),
        Func::Children => {
            let mut out = Vec::new();
            for item in &input {
                if let Item::Node(n) = item {
                    children(n, env.model(), &mut out);
                }
            }
            Ok(out)
        }
        Func::Descendants => descendants(input, env),
        Func::Trace => Ok(input),
        Func::Combine => {
            let mut out = input;
            out.extend(arg(call, 0, env)?);
            check_size(out.len())?;
            Ok(out)
        }
        Func::Union => Ok(union(input, arg(call, 0, env)?)),
        Func::Intersect => {
            let other = arg(call, 0, env)?;
            let index = ItemIndex::of(&other);
            let kept = input
                .into_iter()
                .filter(|i| index.contains(&other, i))
                .collect();
            Ok(union(kept, Vec::new()))
        }
        Func::Exclude => {
            let other = arg(call, 0, env)?;
            let index = ItemIndex::of(&other);
            Ok(input
                .into_iter()
                .filter(|i| !index.contains(&other, i))
                .collect())
        }
        Func::Extension => extension(call, input, env),
        Func::Resolve => Ok(resolve(&input, env)),
        Func::HtmlChecks => Ok(boolean(true)),
        Func::MemberOf => member_of(call, &input, env),
        Func::ConformsTo => conforms_to(call, &input, env),
        Func::Today | Func::Now | Func::TimeOfDay => Ok(vec![clock(call.func, env)]),
        Func::Matches | Func::MatchesFull | Func::ReplaceMatches => regex_fn(call, &input, env),
        Func::Precision | Func::LowBoundary | Func::HighBoundary | Func::Comparable => {
            precision_fn(call, &input, env)
        }
        Func::Encode | Func::Decode | Func::Escape | Func::Unescape => codec_fn(call, &input, env),
        _ => scalar_fn(call, &input, env),
    }
}

fn boolean<'a>(b: bool) -> Coll<'a> {
    vec![Item::Boolean(b)]
}

/// Evaluates argument `k` against the caller's focus.
fn arg<'a>(call: &Call, k: usize, env: &Env<'_, 'a>) -> EvalResult<'a> {
    match call.args.get(k) {
        Some(e) => eval(e, env),
        None => Ok(Vec::new()),
    }
}

fn int_arg(call: &Call, k: usize, env: &Env<'_, '_>) -> Result<Option<i64>, EvalError> {
    match singleton_system(&arg(call, k, env)?, "integer argument")? {
        None => Ok(None),
        Some(Item::Integer(i)) => Ok(Some(i)),
        Some(other) => Err(EvalError::Type(format!(
            "{}() expects an integer argument, got {}",
            call.func.name(),
            other.type_name()
        ))),
    }
}

fn str_arg(call: &Call, k: usize, env: &Env<'_, '_>) -> Result<Option<String>, EvalError> {
    match singleton_system(&arg(call, k, env)?, "string argument")? {
        None => Ok(None),
        Some(Item::String(s)) => Ok(Some(s)),
        Some(other) => Err(EvalError::Type(format!(
            "{}() expects a string argument, got {}",
            call.func.name(),
            other.type_name()
        ))),
    }
}

/// Evaluates `expr` with `$this` bound to `item` (and `$index`).
fn with_item<'a>(
    expr: &Expr,
    item: &Item<'a>,
    index: usize,
    total: Option<&[Item<'a>]>,
    env: &Env<'_, 'a>,
) -> EvalResult<'a> {
    let this = std::slice::from_ref(item);
    let inner = Env {
        this,
        index: Some(index),
        total,
        ..*env
    };
    eval(expr, &inner)
}

fn lambda_fn<'a>(call: &Call, input: Coll<'a>, env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(expr) = call.args.first() else {
        return match call.func {
            Func::Exists => Ok(boolean(!input.is_empty())),
            Func::Sort => sort(call, input, env),
            _ => Ok(input),
        };
    };
    match call.func {
        Func::Where => {
            let mut out = Vec::new();
            for (i, item) in input.into_iter().enumerate() {
                if to_bool3(&with_item(expr, &item, i, None, env)?)? == Some(true) {
                    out.push(item);
                }
            }
            Ok(out)
        }
        Func::Exists => {
            for (i, item) in input.iter().enumerate() {
                if to_bool3(&with_item(expr, item, i, None, env)?)? == Some(true) {
                    return Ok(boolean(true));
                }
            }
            Ok(boolean(false))
        }
        Func::All => {
            for (i, item) in input.iter().enumerate() {
                if to_bool3(&with_item(expr, item, i, None, env)?)? != Some(true) {
                    return Ok(boolean(false));
                }
            }
            Ok(boolean(true))
        }
        Func::Select => {
            let mut out = Vec::new();
            for (i, item) in input.iter().enumerate() {
                out.extend(with_item(expr, item, i, None, env)?);
                check_size(out.len())?;
            }
            Ok(out)
        }
        Func::Repeat => repeat(expr, input, env),
        Func::Aggregate => aggregate(call, expr, input, env),
        _ => sort(call, input, env),
    }
}

/// Identity key for `repeat`: nodes by position in the tree (so a tree is
/// never walked twice), other values by type and rendering. Hashing keeps
/// long repeats linear instead of quadratic.
#[derive(Hash, PartialEq, Eq)]
enum RepeatKey {
    Node(usize, usize),
    Value(String, String),
}

fn repeat_key(item: &Item<'_>) -> RepeatKey {
    let addr = |v: Option<&Value>| v.map_or(0, |v| v as *const Value as usize);
    match item {
        Item::Node(n) => RepeatKey::Node(addr(n.value), addr(n.extension)),
        other => RepeatKey::Value(other.type_name(), other.to_string()),
    }
}

fn repeat<'a>(expr: &Expr, input: Coll<'a>, env: &Env<'_, 'a>) -> EvalResult<'a> {
    let mut out: Coll<'a> = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = input;
    while !queue.is_empty() {
        let mut next = Vec::new();
        for (i, item) in queue.iter().enumerate() {
            for found in with_item(expr, item, i, None, env)? {
                if seen.insert(repeat_key(&found)) {
                    out.push(found.clone());
                    next.push(found);
                }
            }
            if out.len() > MAX_ITEMS {
                return Err(EvalError::Other("repeat() produced too many items".into()));
            }
        }
        queue = next;
    }
    Ok(out)
}

fn aggregate<'a>(call: &Call, expr: &Expr, input: Coll<'a>, env: &Env<'_, 'a>) -> EvalResult<'a> {
    let mut total = arg(call, 1, env)?;
    for (i, item) in input.iter().enumerate() {
        total = with_item(expr, item, i, Some(&total), env)?;
    }
    Ok(total)
}

fn sort<'a>(call: &Call, input: Coll<'a>, env: &Env<'_, 'a>) -> EvalResult<'a> {
    // Each key is evaluated per item; a leading unary minus sorts descending.
    let mut keyed = Vec::with_capacity(input.len());
    for (i, item) in input.into_iter().enumerate() {
        let mut keys = Vec::with_capacity(call.args.len());
        for a in &call.args {
            let (expr, desc) = match a {
                Expr::Neg(inner) => (inner.as_ref(), true),
                other => (other, false),
            };
            keys.push((with_item(expr, &item, i, None, env)?, desc));
        }
        if call.args.is_empty() {
            keys.push((vec![item.clone()], false));
        }
        keyed.push((keys, item));
    }
    let mut error = None;
    keyed.sort_by(|(ka, _), (kb, _)| {
        for ((a, desc), (b, _)) in ka.iter().zip(kb) {
            // Empty keys sort first in either direction.
            let ord = match (a.first(), b.first()) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => match ops::compare_items(x, y) {
                    Ok(o) => o.unwrap_or(Ordering::Equal),
                    Err(e) => {
                        error = Some(e);
                        Ordering::Equal
                    }
                },
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    match error {
        Some(e) => Err(e),
        None => Ok(keyed.into_iter().map(|(_, item)| item).collect()),
    }
}

fn iif<'a>(call: &Call, input: Coll<'a>, has_source: bool, env: &Env<'_, 'a>) -> EvalResult<'a> {
    if input.len() > 1 && has_source {
        return Err(EvalError::NotSingleton("iif()", input.len()));
    }
    // With an explicit source the criterion sees that source as `$this`.
    let inner = if has_source {
        Env {
            this: &input,
            ..*env
        }
    } else {
        *env
    };
    let cond = match call.args.first() {
        Some(e) => to_bool3(&eval(e, &inner)?)?,
        None => None,
    };
    let branch = if cond == Some(true) { 1 } else { 2 };
    match call.args.get(branch) {
        Some(e) => eval(e, &inner),
        None => Ok(Vec::new()),
    }
}

fn bool_agg<'a>(func: Func, input: &[Item<'a>]) -> EvalResult<'a> {
    let mut values = Vec::with_capacity(input.len());
    for item in input {
        match item.to_system() {
            Some(Item::Boolean(b)) => values.push(b),
            _ => {
                return Err(EvalError::Type(format!(
                    "{}() expects booleans, got {}",
                    func.name(),
                    item.type_name()
                )))
            }
        }
    }
    let r = match func {
        Func::AllTrue => values.iter().all(|b| *b),
        Func::AnyTrue => values.iter().any(|b| *b),
        Func::AllFalse => values.iter().all(|b| !*b),
        _ => values.iter().any(|b| !*b),
    };
    Ok(boolean(r))
}

fn subset(a: &[Item<'_>], b: &[Item<'_>]) -> bool {
    let index = ItemIndex::of(b);
    a.iter().all(|i| index.contains(b, i))
}

fn type_fn<'a>(call: &Call, input: Coll<'a>, env: &Env<'_, 'a>) -> EvalResult<'a> {
    match &call.type_arg {
        Some(ty) => filter_type(input, ty, env),
        None => Ok(Vec::new()),
    }
}

fn type_info<'a>(item: &Item<'a>) -> Item<'a> {
    let namespace = match item {
        Item::Node(_) => "FHIR",
        _ => "System",
    };
    Item::TypeInfo {
        namespace: namespace.to_string(),
        name: item.type_name(),
    }
}

fn has_value(input: &[Item<'_>]) -> bool {
    match input {
        [Item::Node(n)] => n
            .value
            .is_some_and(|v| !v.is_object() && !v.is_array() && !v.is_null()),
        [Item::TypeInfo { .. }] => false,
        [_] => true,
        _ => false,
    }
}

fn descendants<'a>(input: Coll<'a>, env: &Env<'_, 'a>) -> EvalResult<'a> {
    // `dom-3` asks for `%resource.descendants()` four times: the walk of a
    // single node is remembered for the rest of the evaluation.
    let key = match input.as_slice() {
        [Item::Node(n)] => n.value.map(|v| v as *const Value as usize),
        _ => None,
    };
    if let Some(hit) = key.and_then(|k| env.descendants.borrow().get(&k).cloned()) {
        return Ok(hit);
    }
    let out = walk_descendants(input, env)?;
    if let Some(k) = key {
        env.descendants.borrow_mut().insert(k, out.clone());
    }
    Ok(out)
}

/// Breadth-first and iterative, so deep documents cannot exhaust the stack.
fn walk_descendants<'a>(input: Coll<'a>, env: &Env<'_, 'a>) -> EvalResult<'a> {
    let mut out = Vec::new();
    let mut frontier = input;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for item in &frontier {
            if let Item::Node(n) = item {
                children(n, env.model(), &mut next);
            }
        }
        out.extend(next.iter().cloned());
        check_size(out.len())?;
        frontier = next;
    }
    Ok(out)
}

fn extension<'a>(call: &Call, input: Coll<'a>, env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(url) = str_arg(call, 0, env)? else {
        return Ok(Vec::new());
    };
    let exts = navigate(&input, "extension", env);
    Ok(exts
        .into_iter()
        .filter(|e| {
            e.as_node()
                .and_then(|n| n.value)
                .and_then(|v| v.get("url"))
                .and_then(Value::as_str)
                == Some(url.as_str())
        })
        .collect())
}

/// The reference string of a Reference node, or the string itself.
fn reference_of<'x>(item: &'x Item<'_>) -> Option<&'x str> {
    match item {
        Item::Node(n) => match n.value? {
            Value::String(s) => Some(s),
            Value::Object(o) => o.get("reference").and_then(Value::as_str),
            _ => None,
        },
        Item::String(s) => Some(s),
        _ => None,
    }
}

fn resolve<'a>(input: &[Item<'a>], env: &Env<'_, 'a>) -> Coll<'a> {
    input
        .iter()
        .filter_map(|item| {
            let reference = reference_of(item)?;
            resolve_one(reference, env).or_else(|| contained_in_entry(item, reference, env))
        })
        .map(|v| Item::Node(Node::new(v)))
        .collect()
}

/// A `#id` reference made inside an entry of a Bundle root (the expression runs on the
/// Bundle): the contained resource of the entry that holds the reference.
fn contained_in_entry<'a>(
    item: &Item<'a>,
    reference: &str,
    env: &Env<'_, 'a>,
) -> Option<&'a Value> {
    let id = reference.strip_prefix('#')?;
    let Item::Node(node) = item else {
        return None;
    };
    let at = node.value?;
    let holder = bundle_resources(env.root).find(|r| holds(r, at, 0))?;
    contained(holder, id)
}

/// Whether `target` is `v` or inside it (by identity).
fn holds(v: &Value, target: &Value, depth: usize) -> bool {
    if std::ptr::eq(v, target) {
        return true;
    }
    if depth > 64 {
        return false;
    }
    match v {
        Value::Object(o) => o.values().any(|x| holds(x, target, depth + 1)),
        Value::Array(a) => a.iter().any(|x| holds(x, target, depth + 1)),
        _ => false,
    }
}

/// Resolution order: contained resources (`#id`), entries of a Bundle root
/// (by `fullUrl` or `Type/id`), then the caller's [`Resolver`](crate::Resolver).
fn resolve_one<'a>(reference: &str, env: &Env<'_, 'a>) -> Option<&'a Value> {
    if let Some(id) = reference.strip_prefix('#') {
        for container in [env.resource, env.root].into_iter().flatten() {
            let found = contained(container, id);
            if found.is_some() {
                return found;
            }
        }
    }
    if let Some(entries) = env
        .root
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .and_then(|b| b.get("entry"))
        .and_then(Value::as_array)
    {
        for entry in entries {
            let full = entry.get("fullUrl").and_then(Value::as_str);
            let res = entry.get("resource");
            let local = res.and_then(|r| {
                Some(format!(
                    "{}/{}",
                    r.get("resourceType")?.as_str()?,
                    r.get("id")?.as_str()?
                ))
            });
            let hit = full == Some(reference)
                || local
                    .as_deref()
                    .is_some_and(|l| reference == l || reference.ends_with(&format!("/{l}")));
            if hit {
                return res;
            }
        }
    }
    env.ctx.resolver.and_then(|r| r.resolve(reference))
}

/// The contained resource of `container` with this id.
fn contained<'a>(container: &'a Value, id: &str) -> Option<&'a Value> {
    container
        .get("contained")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
}

/// The entries' resources of a Bundle root (none for another root).
fn bundle_resources(root: Option<&Value>) -> impl Iterator<Item = &Value> {
    root.filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .and_then(|b| b.get("entry"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
}

fn member_of<'a>(call: &Call, input: &[Item<'a>], env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(terminology) = env.ctx.terminology else {
        return Err(EvalError::Unsupported(
            "memberOf() without a terminology".into(),
        ));
    };
    let Some(vs) = str_arg(call, 0, env)? else {
        return Ok(Vec::new());
    };
    match input {
        [] => Ok(Vec::new()),
        [one] => Ok(terminology
            .member_of(one, &vs)
            .map(Item::Boolean)
            .into_iter()
            .collect()),
        _ => Err(EvalError::NotSingleton("memberOf()", input.len())),
    }
}

fn conforms_to<'a>(call: &Call, input: &[Item<'a>], env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(url) = str_arg(call, 0, env)? else {
        return Ok(Vec::new());
    };
    let [one] = input else {
        return Ok(Vec::new());
    };
    let value = one.as_node().and_then(|n| n.value);
    if let (Some(model), Some(v)) = (env.model(), value) {
        if let Some(answer) = model.conforms_to(v, &url) {
            return Ok(boolean(answer));
        }
    }
    // Base definitions need no profile machinery: the type decides.
    if let Some(ty) = url.strip_prefix("http://hl7.org/fhir/StructureDefinition/") {
        if ty.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            return Ok(boolean(one.as_node().and_then(|n| n.type_name) == Some(ty)));
        }
    }
    Err(EvalError::Unsupported(format!("conformsTo('{url}')")))
}

fn clock<'a>(func: Func, env: &Env<'_, 'a>) -> Item<'a> {
    let now = env.now();
    match func {
        Func::Today => Item::Date(now.to_date()),
        Func::TimeOfDay => {
            let mut t = now;
            t.kind = TemporalKind::Time;
            t.tz_offset = None;
            Item::Time(t)
        }
        _ => Item::DateTime(now),
    }
}

fn precision_fn<'a>(call: &Call, input: &[Item<'a>], env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(x) = singleton_system(input, "precision function")? else {
        return Ok(Vec::new());
    };
    // Without type information FHIR dates arrive as strings; reading them
    // as dateTimes keeps boundaries of `date` and `dateTime` comparable.
    let x = match x {
        Item::String(s) => match (Temporal::parse_datetime(&s), Temporal::parse_time(&s)) {
            (Some(t), _) => Item::DateTime(t),
            (None, Some(t)) => Item::Time(t),
            (None, None) => Item::String(s),
        },
        other => other,
    };
    let out = match call.func {
        Func::Precision => boundaries::precision(&x).map(Item::Integer),
        Func::Comparable => {
            let other = singleton_system(&arg(call, 0, env)?, "comparable() argument")?;
            match (&x, other) {
                (Item::Quantity(a), Some(Item::Quantity(b))) => {
                    Some(Item::Boolean(comparable_values(a, &b).is_some()))
                }
                (_, None) => None,
                _ => return Err(EvalError::Type("comparable() expects quantities".into())),
            }
        }
        func => {
            let digits = int_arg(call, 0, env)?;
            boundaries::boundary(&x, digits, func == Func::HighBoundary)
        }
    };
    Ok(out.into_iter().collect())
}

fn codec_fn<'a>(call: &Call, input: &[Item<'a>], env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(s) = input_str(call.func, input)? else {
        return Ok(Vec::new());
    };
    let Some(format) = str_arg(call, 0, env)? else {
        return Ok(Vec::new());
    };
    let out = match call.func {
        Func::Encode => codec::encode(&s, &format),
        Func::Decode => codec::decode(&s, &format),
        Func::Escape => codec::escape(&s, &format),
        _ => codec::unescape(&s, &format),
    };
    Ok(out.map(Item::String).into_iter().collect())
}

/// The string input of a string function (`None` for an empty input).
fn input_str(func: Func, input: &[Item<'_>]) -> Result<Option<String>, EvalError> {
    let complex = matches!(input, [Item::Node(n)] if n.value.is_some_and(|v| v.is_object()));
    if complex {
        return Err(EvalError::Type(format!(
            "{}() expects a string",
            func.name()
        )));
    }
    match singleton_system(input, "string function")? {
        None => Ok(None),
        Some(Item::String(s)) => Ok(Some(s)),
        Some(other) => Err(EvalError::Type(format!(
            "{}() expects a string, got {}",
            func.name(),
            other.type_name()
        ))),
    }
}

fn regex_fn<'a>(call: &Call, input: &[Item<'a>], env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(s) = input_str(call.func, input)? else {
        return Ok(Vec::new());
    };
    let dynamic;
    let re: &Regex = match &call.regex {
        Some(re) => re,
        None => {
            let Some(p) = str_arg(call, 0, env)? else {
                return Ok(Vec::new());
            };
            dynamic = compile_regex(&p, call.func == Func::MatchesFull)
                .map_err(|e| EvalError::InvalidRegex(e.to_string()))?;
            &dynamic
        }
    };
    if call.func == Func::ReplaceMatches {
        let Some(subst) = str_arg(call, 1, env)? else {
            return Ok(Vec::new());
        };
        // An empty pattern would match between every character; the suite
        // expects the input back unchanged.
        if re.as_str().trim_start_matches("(?s)").is_empty() {
            return Ok(vec![Item::String(s)]);
        }
        return Ok(vec![Item::String(
            re.replace_all(&s, subst.as_str()).into_owned(),
        )]);
    }
    Ok(boolean(re.is_match(&s)))
}

fn scalar_fn<'a>(call: &Call, input: &[Item<'a>], env: &Env<'_, 'a>) -> EvalResult<'a> {
    use Func::*;
    match call.func {
        StartsWith | EndsWith | Contains | IndexOf | Substring | Length | Upper | Lower
        | Replace | Split | Trim | ToChars => string_fn(call, input, env),
        Join => {
            let sep = str_arg(call, 0, env)?.unwrap_or_default();
            let parts: Option<Vec<String>> = input
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect();
            let parts = parts.ok_or_else(|| EvalError::Type("join() expects strings".into()))?;
            Ok(vec![Item::String(parts.join(&sep))])
        }
        Abs | Ceiling | Floor | Round | Sqrt | Truncate | Ln | Log | Power | Exp => {
            math_fn(call, input, env)
        }
        _ => conversion_fn(call, input),
    }
}

fn string_fn<'a>(call: &Call, input: &[Item<'a>], env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(s) = input_str(call.func, input)? else {
        return Ok(Vec::new());
    };
    let one = |i: Item<'a>| Ok(vec![i]);
    match call.func {
        Func::Length => one(Item::Integer(s.chars().count() as i64)),
        Func::Upper => one(Item::String(s.to_uppercase())),
        Func::Lower => one(Item::String(s.to_lowercase())),
        Func::Trim => one(Item::String(s.trim().to_string())),
        Func::ToChars => Ok(s.chars().map(|c| Item::String(c.to_string())).collect()),
        Func::Substring => substring(call, &s, env),
        Func::Replace => {
            let (Some(pat), Some(rep)) = (str_arg(call, 0, env)?, str_arg(call, 1, env)?) else {
                return Ok(Vec::new());
            };
            check_replacement_size(&s, pat.len(), &rep)?;
            one(Item::String(s.replace(&pat, &rep)))
        }
        _ => {
            let Some(a) = str_arg(call, 0, env)? else {
                return Ok(Vec::new());
            };
            match call.func {
                Func::StartsWith => one(Item::Boolean(s.starts_with(&a))),
                Func::EndsWith => one(Item::Boolean(s.ends_with(&a))),
                Func::Contains => one(Item::Boolean(s.contains(&a))),
                Func::IndexOf => one(Item::Integer(
                    s.find(&a).map_or(-1, |b| s[..b].chars().count() as i64),
                )),
                _ => Ok(s
                    .split(a.as_str())
                    .map(|p| Item::String(p.to_string()))
                    .collect()),
            }
        }
    }
}

/// Largest string `replace`/`replaceMatches` may build.
const MAX_STRING: usize = 10 * 1024 * 1024;

/// Replacements multiply sizes (`s.replace('', s)` is quadratic), so the
/// worst case is checked before any allocation.
fn check_replacement_size(s: &str, pattern_len: usize, rep: &str) -> Result<(), EvalError> {
    let matches = s.len() / pattern_len.max(1) + 1;
    let worst = matches.saturating_mul(rep.len()).saturating_add(s.len());
    if worst > MAX_STRING {
        return Err(EvalError::Other(format!(
            "replacement could exceed {MAX_STRING} bytes"
        )));
    }
    Ok(())
}

fn substring<'a>(call: &Call, s: &str, env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(start) = int_arg(call, 0, env)? else {
        return Ok(Vec::new());
    };
    let chars: Vec<char> = s.chars().collect();
    let Ok(start) = usize::try_from(start) else {
        return Ok(Vec::new());
    };
    if start >= chars.len() {
        return Ok(Vec::new());
    }
    let len = match (call.args.len(), int_arg(call, 1, env)?) {
        (2, Some(l)) => usize::try_from(l).unwrap_or(0),
        (2, None) => return Ok(Vec::new()),
        _ => chars.len(),
    };
    let end = start.saturating_add(len).min(chars.len());
    Ok(vec![Item::String(chars[start..end].iter().collect())])
}

fn math_fn<'a>(call: &Call, input: &[Item<'a>], env: &Env<'_, 'a>) -> EvalResult<'a> {
    let Some(x) = singleton_system(input, "math function")? else {
        return Ok(Vec::new());
    };
    let d = match &x {
        Item::Integer(i) => Decimal::from_i64(*i),
        Item::Decimal(d) => *d,
        Item::Quantity(q) if call.func == Func::Abs => {
            return Ok(vec![Item::Quantity(Quantity {
                value: q.value.abs(),
                unit: q.unit.clone(),
            })]);
        }
        other => {
            return Err(EvalError::Type(format!(
                "{}() expects a number, got {}",
                call.func.name(),
                other.type_name()
            )))
        }
    };
    let int = |v: Option<Decimal>| -> EvalResult<'a> {
        let v = v.ok_or(EvalError::Overflow)?;
        Ok(vec![Item::Integer(
            v.to_i64_exact().ok_or(EvalError::Overflow)?,
        )])
    };
    let float = |f: f64| -> Coll<'a> {
        Decimal::from_f64(f)
            .map(Item::Decimal)
            .into_iter()
            .collect()
    };
    match call.func {
        Func::Abs => Ok(vec![match x {
            Item::Integer(i) => Item::Integer(i.checked_abs().ok_or(EvalError::Overflow)?),
            _ => Item::Decimal(d.abs()),
        }]),
        Func::Ceiling => int(d.ceiling()),
        Func::Floor => int(d.floor()),
        Func::Truncate => int(d.truncate()),
        Func::Round => {
            let digits = int_arg(call, 0, env)?.unwrap_or(0);
            let digits = u32::try_from(digits)
                .map_err(|_| EvalError::Type("round() precision must be >= 0".into()))?;
            Ok(d.round(digits).map(Item::Decimal).into_iter().collect())
        }
        Func::Sqrt if d.is_negative() => Ok(Vec::new()),
        Func::Sqrt => Ok(float(d.to_f64().sqrt())),
        Func::Ln | Func::Log if d.is_negative() || d.is_zero() => Ok(Vec::new()),
        Func::Ln => Ok(float(d.to_f64().ln())),
        Func::Exp => Ok(float(d.to_f64().exp())),
        Func::Log => {
            let base = match singleton_system(&arg(call, 0, env)?, "log base")? {
                Some(Item::Integer(i)) => i as f64,
                Some(Item::Decimal(b)) => b.to_f64(),
                _ => return Ok(Vec::new()),
            };
            Ok(float(d.to_f64().ln() / base.ln()))
        }
        _ => power(&x, &arg(call, 0, env)?),
    }
}

fn power<'a>(x: &Item<'a>, exp: &[Item<'a>]) -> EvalResult<'a> {
    let Some(e) = singleton_system(exp, "power exponent")? else {
        return Ok(Vec::new());
    };
    if let (Item::Integer(b), Item::Integer(p)) = (x, &e) {
        if let Ok(p) = u32::try_from(*p) {
            return Ok(vec![Item::Integer(
                b.checked_pow(p).ok_or(EvalError::Overflow)?,
            )]);
        }
    }
    let to_f = |i: &Item<'_>| match i {
        Item::Integer(n) => Some(*n as f64),
        Item::Decimal(d) => Some(d.to_f64()),
        _ => None,
    };
    let (Some(b), Some(p)) = (to_f(x), to_f(&e)) else {
        return Err(EvalError::Type("power() expects numbers".into()));
    };
    Ok(Decimal::from_f64(b.powf(p))
        .map(Item::Decimal)
        .into_iter()
        .collect())
}

fn conversion_fn<'a>(call: &Call, input: &[Item<'a>]) -> EvalResult<'a> {
    let Some(x) = (match input {
        [] => return Ok(Vec::new()),
        [one] => one.to_system(),
        _ => return Err(EvalError::NotSingleton("conversion", input.len())),
    }) else {
        // Complex nodes convert to nothing.
        return Ok(match call.func.name().starts_with("convertsTo") {
            true => boolean(false),
            false => Vec::new(),
        });
    };
    use Func::*;
    let converted = match call.func {
        ToString | ConvertsToString => item_to_string(&x).map(Item::String),
        ToInteger | ConvertsToInteger => to_integer(&x),
        ToDecimal | ConvertsToDecimal => to_decimal(&x),
        ToBoolean | ConvertsToBoolean => to_boolean(&x),
        ToDate | ConvertsToDate => to_temporal(&x, TemporalKind::Date),
        ToDateTime | ConvertsToDateTime => to_temporal(&x, TemporalKind::DateTime),
        ToTime | ConvertsToTime => to_temporal(&x, TemporalKind::Time),
        _ => to_quantity(&x),
    };
    if call.func.name().starts_with("convertsTo") {
        Ok(boolean(converted.is_some()))
    } else {
        Ok(converted.into_iter().collect())
    }
}

fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn to_integer<'a>(x: &Item<'a>) -> Option<Item<'a>> {
    match x {
        Item::Integer(_) => Some(x.clone()),
        Item::Boolean(b) => Some(Item::Integer(i64::from(*b))),
        Item::String(s) if is_integer_text(s) => s
            .strip_prefix('+')
            .unwrap_or(s)
            .parse()
            .ok()
            .map(Item::Integer),
        _ => None,
    }
}

fn to_decimal<'a>(x: &Item<'a>) -> Option<Item<'a>> {
    match x {
        Item::Integer(i) => Some(Item::Decimal(Decimal::from_i64(*i))),
        Item::Decimal(_) => Some(x.clone()),
        Item::Boolean(b) => Some(Item::Decimal(Decimal::from_i64(i64::from(*b)))),
        Item::String(s) => Decimal::parse(s).map(Item::Decimal),
        _ => None,
    }
}

fn to_boolean<'a>(x: &Item<'a>) -> Option<Item<'a>> {
    let b = match x {
        Item::Boolean(b) => *b,
        Item::Integer(1) => true,
        Item::Integer(0) => false,
        Item::Decimal(d) if *d == Decimal::from_i64(1) => true,
        Item::Decimal(d) if d.is_zero() => false,
        Item::String(s) => match s.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => true,
            "false" | "f" | "no" | "n" | "0" | "0.0" => false,
            _ => return None,
        },
        _ => return None,
    };
    Some(Item::Boolean(b))
}

fn to_temporal<'a>(x: &Item<'a>, kind: TemporalKind) -> Option<Item<'a>> {
    let t = match x {
        Item::Date(t) | Item::DateTime(t) | Item::Time(t) => *t,
        Item::String(s) => match kind {
            TemporalKind::Time => Temporal::parse_time(s)?,
            _ => Temporal::parse_datetime(s)?,
        },
        _ => return None,
    };
    match (kind, t.kind) {
        (TemporalKind::Time, TemporalKind::Time) => Some(Item::Time(t)),
        (TemporalKind::Time, _) | (_, TemporalKind::Time) => None,
        (TemporalKind::Date, _) => Some(Item::Date(t.to_date())),
        _ => Some(Item::DateTime(t.to_datetime())),
    }
}

fn to_quantity<'a>(x: &Item<'a>) -> Option<Item<'a>> {
    let q = |value, unit: &str| {
        Some(Item::Quantity(Quantity {
            value,
            unit: unit.to_string(),
        }))
    };
    match x {
        Item::Quantity(_) => Some(x.clone()),
        Item::Integer(i) => q(Decimal::from_i64(*i), "1"),
        Item::Decimal(d) => q(*d, "1"),
        Item::Boolean(b) => q(Decimal::from_i64(i64::from(*b)), "1"),
        Item::String(s) => parse_quantity(s).map(Item::Quantity),
        _ => None,
    }
}

/// Parses `1.5 'mg'`, `4 days` or a bare number (unit `1`).
fn parse_quantity(s: &str) -> Option<Quantity> {
    let s = s.trim();
    let (num, rest) = match s.find(' ') {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    };
    let value = Decimal::parse(num)?;
    let unit = if rest.is_empty() {
        "1".to_string()
    } else if let Some(u) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        u.to_string()
    } else {
        calendar_keyword(rest)?.to_string()
    };
    Some(Quantity { value, unit })
}
