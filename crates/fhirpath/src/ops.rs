//! Operators: equality, comparison, arithmetic, logic, collections.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::ast::{BinOp, Expr};
use crate::decimal::Decimal;
use crate::error::EvalError;
use crate::eval::{eval, Coll, Env, EvalResult};
use crate::temporal::{CalendarUnit, Temporal, TemporalKind};
use crate::value::{
    calendar_unit, comparable_values, compare_quantities, item_to_string, to_base_unit, Item,
    Quantity,
};

pub(crate) fn binary<'a>(op: BinOp, l: &Expr, r: &Expr, env: &Env<'_, 'a>) -> EvalResult<'a> {
    let left = eval(l, env)?;
    let right = eval(r, env)?;
    apply(op, left, right)
}

pub(crate) fn apply<'a>(op: BinOp, left: Coll<'a>, right: Coll<'a>) -> EvalResult<'a> {
    match op {
        BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies => {
            let a = to_bool3(&left)?;
            let b = to_bool3(&right)?;
            Ok(bool_result(logic(op, a, b)))
        }
        BinOp::Eq => Ok(bool_result(coll_equal(&left, &right))),
        BinOp::Ne => Ok(bool_result(coll_equal(&left, &right).map(|b| !b))),
        BinOp::Equiv => Ok(vec![Item::Boolean(coll_equiv(&left, &right))]),
        BinOp::NotEquiv => Ok(vec![Item::Boolean(!coll_equiv(&left, &right))]),
        BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => compare_op(op, &left, &right),
        BinOp::Union => {
            crate::eval::check_size(left.len() + right.len())?;
            Ok(union(left, right))
        }
        BinOp::In => membership(&left, &right),
        BinOp::Contains => membership(&right, &left),
        BinOp::Concat => {
            let s = |c: &Coll<'a>| -> Result<String, EvalError> {
                Ok(singleton_system(c, "&")?
                    .and_then(|i| item_to_string(&i))
                    .unwrap_or_default())
            };
            Ok(vec![Item::String(s(&left)? + &s(&right)?)])
        }
        _ => arithmetic(op, &left, &right),
    }
}

fn bool_result<'a>(b: Option<bool>) -> Coll<'a> {
    b.map(Item::Boolean).into_iter().collect()
}

/// Converts a collection to a three-valued boolean: empty is unknown, a
/// single non-boolean item counts as `true` (FHIRPath singleton evaluation).
pub(crate) fn to_bool3(c: &[Item<'_>]) -> Result<Option<bool>, EvalError> {
    match c {
        [] => Ok(None),
        [one] => Ok(Some(one.as_bool().unwrap_or(true))),
        _ => Err(EvalError::NotSingleton("boolean", c.len())),
    }
}

fn logic(op: BinOp, a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match op {
        BinOp::And => match (a, b) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        BinOp::Or => match (a, b) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        BinOp::Xor => Some(a? != b?),
        _ => match (a, b) {
            (Some(false), _) | (_, Some(true)) => Some(true),
            (Some(true), b) => b,
            _ => None,
        },
    }
}

/// The single item of a collection as a system value (`None` if empty).
pub(crate) fn singleton_system<'a>(
    c: &[Item<'a>],
    what: &'static str,
) -> Result<Option<Item<'a>>, EvalError> {
    match c {
        [] => Ok(None),
        [one] => Ok(one.to_system()),
        _ => Err(EvalError::NotSingleton(what, c.len())),
    }
}

/// Brings strings from untyped JSON nodes to the temporal type they are
/// compared with (FHIR dates arrive as JSON strings).
fn coerce_pair<'a>(a: Item<'a>, b: Item<'a>) -> (Item<'a>, Item<'a>) {
    let parse = |s: &str, kind| {
        let t = Temporal::parse_any(s)?;
        match (kind, t.kind) {
            (TemporalKind::Time, TemporalKind::Time) => Some(Item::Time(t)),
            (TemporalKind::Time, _) | (_, TemporalKind::Time) => None,
            (_, TemporalKind::Date) => Some(Item::Date(t)),
            _ => Some(Item::DateTime(t)),
        }
    };
    let kind_of = |i: &Item<'_>| match i {
        Item::Date(t) | Item::DateTime(t) | Item::Time(t) => Some(t.kind),
        _ => None,
    };
    match (&a, &b) {
        (Item::String(s), other) => match kind_of(other).and_then(|k| parse(s, k)) {
            Some(t) => (t, b),
            None => (a, b),
        },
        (other, Item::String(s)) => match kind_of(other).and_then(|k| parse(s, k)) {
            Some(t) => (a, t),
            None => (a, b),
        },
        _ => (a, b),
    }
}

fn as_decimal(i: &Item<'_>) -> Option<Decimal> {
    match i {
        Item::Integer(n) => Some(Decimal::from_i64(*n)),
        Item::Decimal(d) => Some(*d),
        _ => None,
    }
}

fn temporal(i: &Item<'_>) -> Option<Temporal> {
    match i {
        Item::Date(t) | Item::DateTime(t) | Item::Time(t) => Some(*t),
        _ => None,
    }
}

/// Item equality; `None` means unknown (e.g. dates of different precision).
pub(crate) fn item_equal(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    if let (Item::Node(x), Item::Node(y)) = (a, b) {
        let complex = |v: Option<&serde_json::Value>| v.is_some_and(|v| v.is_object());
        if complex(x.value) || complex(y.value) {
            return Some(x.value == y.value && x.extension == y.extension);
        }
    }
    // Fast path without allocating: plain strings on both sides.
    if let (Some(x), Some(y)) = (plain_str(a), plain_str(b)) {
        return Some(x == y);
    }
    let (Some(a), Some(b)) = (a.to_system(), b.to_system()) else {
        return Some(false);
    };
    let (a, b) = coerce_pair(a, b);
    match (&a, &b) {
        (Item::Integer(x), Item::Integer(y)) => Some(x == y),
        (Item::String(x), Item::String(y)) => Some(x == y),
        (Item::Boolean(x), Item::Boolean(y)) => Some(x == y),
        (Item::Quantity(x), Item::Quantity(y)) => {
            compare_quantities(x, y).map(|o| o == Ordering::Equal)
        }
        (Item::TypeInfo { .. }, _) => Some(a == b),
        _ => {
            if let (Some(x), Some(y)) = (as_decimal(&a), as_decimal(&b)) {
                return Some(x == y);
            }
            match (temporal(&a), temporal(&b)) {
                (Some(x), Some(y)) => match x.compare(&y) {
                    Some(o) => Some(o == Ordering::Equal),
                    None if (x.kind == TemporalKind::Time) != (y.kind == TemporalKind::Time) => {
                        Some(false)
                    }
                    None => None,
                },
                _ => Some(false),
            }
        }
    }
}

/// The text of a string item that cannot turn into a date when compared.
fn plain_str<'x>(item: &'x Item<'_>) -> Option<&'x str> {
    match item {
        Item::String(s) => Some(s),
        Item::Node(n) => match n.type_name {
            Some("date" | "dateTime" | "instant" | "time") => None,
            _ => n.value.and_then(Value::as_str),
        },
        _ => None,
    }
}

fn coll_equal(l: &[Item<'_>], r: &[Item<'_>]) -> Option<bool> {
    if l.is_empty() || r.is_empty() {
        return None;
    }
    if l.len() != r.len() {
        return Some(false);
    }
    let mut unknown = false;
    for (a, b) in l.iter().zip(r) {
        match item_equal(a, b) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    (!unknown).then_some(true)
}

fn normalize_ws(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

pub(crate) fn item_equiv(a: &Item<'_>, b: &Item<'_>) -> bool {
    if let (Item::Node(x), Item::Node(y)) = (a, b) {
        if x.value.is_some_and(|v| v.is_object()) || y.value.is_some_and(|v| v.is_object()) {
            return x.value == y.value;
        }
    }
    let (Some(a), Some(b)) = (a.to_system(), b.to_system()) else {
        return false;
    };
    let (a, b) = coerce_pair(a, b);
    match (&a, &b) {
        (Item::String(x), Item::String(y)) => normalize_ws(x) == normalize_ws(y),
        (Item::Quantity(x), Item::Quantity(y)) => match comparable_values(x, y) {
            // Like decimals: compared at the precision of the less precise.
            Some((p, q)) => {
                let scale = p.scale().min(q.scale());
                p.round(scale) == q.round(scale)
            }
            None => false,
        },
        _ => {
            if let (Some(x), Some(y)) = (as_decimal(&a), as_decimal(&b)) {
                // Compared at the precision of the less precise operand.
                let scale = x.scale().min(y.scale());
                return x.round(scale) == y.round(scale);
            }
            match (temporal(&a), temporal(&b)) {
                (Some(x), Some(y)) => x.compare(&y) == Some(Ordering::Equal),
                _ => item_equal(&a, &b) == Some(true),
            }
        }
    }
}

fn coll_equiv(l: &[Item<'_>], r: &[Item<'_>]) -> bool {
    if l.len() != r.len() {
        return false;
    }
    let mut used = vec![false; r.len()];
    for a in l {
        let found = r
            .iter()
            .enumerate()
            .position(|(i, b)| !used[i] && item_equiv(a, b));
        match found {
            Some(i) => used[i] = true,
            None => return false,
        }
    }
    true
}

/// Two untyped JSON strings that both read as dates are compared as dates:
/// without a model, `Period.start <= Period.end` would otherwise compare
/// text and ignore precision and time zones.
fn untyped_dates<'a>(a: &Item<'a>, b: &Item<'a>) -> Option<(Item<'a>, Item<'a>)> {
    let untyped = |i: &Item<'a>| match i {
        Item::Node(n) if n.type_name.is_none() => n.value.and_then(serde_json::Value::as_str),
        _ => None,
    };
    let as_item = |t: Temporal| match t.kind {
        TemporalKind::Date => Item::Date(t),
        TemporalKind::Time => Item::Time(t),
        TemporalKind::DateTime => Item::DateTime(t),
    };
    let x = Temporal::parse_any(untyped(a)?)?;
    let y = Temporal::parse_any(untyped(b)?)?;
    Some((as_item(x), as_item(y)))
}

pub(crate) fn compare_items(a: &Item<'_>, b: &Item<'_>) -> Result<Option<Ordering>, EvalError> {
    let pair = match untyped_dates(a, b) {
        Some(p) => Some(p),
        None => a.to_system().zip(b.to_system()),
    };
    let Some((a, b)) = pair else {
        return Err(EvalError::Type("cannot compare complex values".into()));
    };
    let (a, b) = coerce_pair(a, b);
    if let (Some(x), Some(y)) = (as_decimal(&a), as_decimal(&b)) {
        return Ok(Some(x.cmp(&y)));
    }
    match (&a, &b) {
        (Item::String(x), Item::String(y)) => Ok(Some(x.cmp(y))),
        (Item::Quantity(x), Item::Quantity(y)) => Ok(compare_quantities(x, y)),
        _ => match (temporal(&a), temporal(&b)) {
            (Some(x), Some(y)) => Ok(x.compare(&y)),
            _ => Err(EvalError::Type(format!(
                "cannot compare {} with {}",
                a.type_name(),
                b.type_name()
            ))),
        },
    }
}

fn compare_op<'a>(op: BinOp, l: &[Item<'a>], r: &[Item<'a>]) -> EvalResult<'a> {
    let (a, b) = match (l, r) {
        ([a], [b]) => (a, b),
        ([], _) | (_, []) => return Ok(Vec::new()),
        _ => return Err(EvalError::NotSingleton("comparison", l.len().max(r.len()))),
    };
    let Some(ord) = compare_items(a, b)? else {
        return Ok(Vec::new());
    };
    let result = match op {
        BinOp::Lt => ord == Ordering::Less,
        BinOp::Gt => ord == Ordering::Greater,
        BinOp::Le => ord != Ordering::Greater,
        _ => ord != Ordering::Less,
    };
    Ok(vec![Item::Boolean(result)])
}

pub(crate) fn contains_item(c: &[Item<'_>], item: &Item<'_>) -> bool {
    c.iter().any(|x| item_equal(x, item) == Some(true))
}

/// FNV-1a: the keys are short and not attacker-chosen in a way that
/// matters (a collision only costs an extra equality check), so a fast
/// hasher beats SipHash here.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type DefaultHasher = Fnv;

#[derive(Clone, Copy, Default)]
struct FnvBuild;

impl std::hash::BuildHasher for FnvBuild {
    type Hasher = Fnv;

    fn build_hasher(&self) -> Fnv {
        Fnv::default()
    }
}

/// Hash consistent with [`item_equal`]: items that can be equal share a
/// hash, so set operations only compare within a bucket instead of
/// comparing every pair (which made `dom-3` quadratic).
fn item_hash(item: &Item<'_>) -> u64 {
    let mut h = DefaultHasher::default();
    if let Item::Node(n) = item {
        if let Some(v @ Value::Object(_)) = n.value {
            0u8.hash(&mut h);
            hash_json(v, &mut h, 8);
            return h.finish();
        }
    }
    let looks_like_date =
        |s: &str| s.starts_with(|c: char| c.is_ascii_digit()) && Temporal::parse_any(s).is_some();
    if let Some(s) = plain_str(item) {
        if looks_like_date(s) {
            1u8.hash(&mut h);
        } else {
            (3u8, s).hash(&mut h);
        }
        return h.finish();
    }
    match item.to_system() {
        // Strings may equal dates (`'2019' = @2019`), so date-like strings,
        // dates and quantities (unit conversions) share coarse buckets.
        Some(Item::String(s)) if looks_like_date(&s) => 1u8.hash(&mut h),
        Some(Item::Date(_) | Item::DateTime(_) | Item::Time(_)) => 1u8.hash(&mut h),
        Some(Item::Quantity(_)) => 2u8.hash(&mut h),
        Some(Item::String(s)) => (3u8, s).hash(&mut h),
        Some(Item::Boolean(b)) => (4u8, b).hash(&mut h),
        Some(Item::Integer(i)) => (5u8, Decimal::from_i64(i).to_string()).hash(&mut h),
        Some(Item::Decimal(d)) => (5u8, d.normalized().to_string()).hash(&mut h),
        _ => 6u8.hash(&mut h),
    }
    h.finish()
}

/// Order-insensitive for objects, since JSON object equality is. Only the
/// top levels are hashed: deeper differences just share a bucket, and
/// programmatically built, very deep values cannot exhaust the stack.
fn hash_json(v: &Value, h: &mut DefaultHasher, depth: usize) {
    if depth == 0 {
        return;
    }
    match v {
        Value::Object(map) => {
            let mut acc = 0u64;
            for (k, v) in map {
                let mut eh = DefaultHasher::default();
                k.hash(&mut eh);
                hash_json(v, &mut eh, depth - 1);
                acc = acc.wrapping_add(eh.finish());
            }
            (7u8, acc).hash(h);
        }
        Value::Array(a) => {
            8u8.hash(h);
            for x in a {
                hash_json(x, h, depth - 1);
            }
        }
        other => other.to_string().hash(h),
    }
}

/// Positions of items in a collection, bucketed by [`item_hash`].
#[derive(Default)]
pub(crate) struct ItemIndex {
    buckets: HashMap<u64, Vec<usize>, FnvBuild>,
}

impl ItemIndex {
    pub fn of(items: &[Item<'_>]) -> Self {
        let mut index = ItemIndex::default();
        for (i, item) in items.iter().enumerate() {
            index.add(item, i);
        }
        index
    }

    pub fn add(&mut self, item: &Item<'_>, position: usize) {
        self.buckets
            .entry(item_hash(item))
            .or_default()
            .push(position);
    }

    /// Whether `items` (the indexed collection) holds an item equal to `item`.
    pub fn contains(&self, items: &[Item<'_>], item: &Item<'_>) -> bool {
        self.buckets.get(&item_hash(item)).is_some_and(|bucket| {
            bucket.iter().any(|&i| {
                items
                    .get(i)
                    .is_some_and(|x| item_equal(x, item) == Some(true))
            })
        })
    }
}

pub(crate) fn union<'a>(left: Coll<'a>, right: Coll<'a>) -> Coll<'a> {
    let mut out: Coll<'a> = Vec::with_capacity(left.len() + right.len());
    let mut index = ItemIndex::default();
    for item in left.into_iter().chain(right) {
        if !index.contains(&out, &item) {
            index.add(&item, out.len());
            out.push(item);
        }
    }
    out
}

fn membership<'a>(element: &[Item<'a>], collection: &[Item<'a>]) -> EvalResult<'a> {
    match element {
        [] => Ok(Vec::new()),
        [one] => Ok(vec![Item::Boolean(contains_item(collection, one))]),
        _ => Err(EvalError::NotSingleton("in/contains", element.len())),
    }
}

pub(crate) fn negate(c: Coll<'_>) -> EvalResult<'_> {
    match singleton_system(&c, "unary minus")? {
        None => Ok(Vec::new()),
        Some(Item::Integer(i)) => Ok(vec![Item::Integer(
            i.checked_neg().ok_or(EvalError::Overflow)?,
        )]),
        Some(Item::Decimal(d)) => Ok(vec![Item::Decimal(-d)]),
        Some(Item::Quantity(q)) => Ok(vec![Item::Quantity(Quantity {
            value: -q.value,
            unit: q.unit,
        })]),
        Some(other) => Err(EvalError::Type(format!(
            "cannot negate {}",
            other.type_name()
        ))),
    }
}

fn arithmetic<'a>(op: BinOp, l: &[Item<'a>], r: &[Item<'a>]) -> EvalResult<'a> {
    let (Some(a), Some(b)) = (
        singleton_system(l, "arithmetic")?,
        singleton_system(r, "arithmetic")?,
    ) else {
        return Ok(Vec::new());
    };
    let result = match (&a, &b) {
        (Item::Integer(x), Item::Integer(y)) => integer_arith(op, *x, *y)?,
        (Item::String(x), Item::String(y)) if op == BinOp::Add => {
            Some(Item::String(format!("{x}{y}")))
        }
        (Item::Quantity(x), Item::Quantity(y)) => quantity_arith(op, x, y)?,
        (Item::Date(t) | Item::DateTime(t) | Item::Time(t), Item::Quantity(q)) => {
            let kind = a.clone();
            date_arith(op, *t, q)?.map(|t| match kind {
                Item::Date(_) => Item::Date(t),
                Item::Time(_) => Item::Time(t),
                _ => Item::DateTime(t),
            })
        }
        _ => match (as_decimal(&a), as_decimal(&b)) {
            (Some(x), Some(y)) => decimal_arith(op, x, y)?,
            _ => {
                return Err(EvalError::Type(format!(
                    "operator {op:?} not defined for {} and {}",
                    a.type_name(),
                    b.type_name()
                )))
            }
        },
    };
    Ok(result.into_iter().collect())
}

fn integer_arith<'a>(op: BinOp, x: i64, y: i64) -> Result<Option<Item<'a>>, EvalError> {
    let r = match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        BinOp::Mul => x.checked_mul(y),
        BinOp::Div => {
            return decimal_arith(op, Decimal::from_i64(x), Decimal::from_i64(y));
        }
        // Division by zero yields empty, not an error.
        BinOp::IntDiv | BinOp::Mod if y == 0 => return Ok(None),
        BinOp::IntDiv => x.checked_div(y),
        _ => x.checked_rem(y),
    };
    r.map(|v| Some(Item::Integer(v))).ok_or(EvalError::Overflow)
}

fn decimal_arith<'a>(op: BinOp, x: Decimal, y: Decimal) -> Result<Option<Item<'a>>, EvalError> {
    if matches!(op, BinOp::Div | BinOp::IntDiv | BinOp::Mod) && y.is_zero() {
        return Ok(None);
    }
    let r = match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        BinOp::Mul => x.checked_mul(y),
        BinOp::Div => x.checked_div(y),
        BinOp::IntDiv => {
            let q = x.checked_div_trunc(y).ok_or(EvalError::Overflow)?;
            let i = q.to_i64_exact().ok_or(EvalError::Overflow)?;
            return Ok(Some(Item::Integer(i)));
        }
        _ => x.checked_rem(y),
    };
    r.map(|v| Some(Item::Decimal(v))).ok_or(EvalError::Overflow)
}

fn quantity_arith<'a>(
    op: BinOp,
    x: &Quantity,
    y: &Quantity,
) -> Result<Option<Item<'a>>, EvalError> {
    match op {
        BinOp::Add | BinOp::Sub => {
            let Some((a, b)) = comparable_values(x, y) else {
                return Ok(None);
            };
            let (a, b) = if x.unit == y.unit {
                (a, b)
            } else {
                // Different but convertible units: express the result in the
                // left operand's unit.
                let factor = a.checked_div(x.value).unwrap_or(Decimal::from_i64(1));
                (x.value, b.checked_div(factor).ok_or(EvalError::Overflow)?)
            };
            let v = if op == BinOp::Add {
                a.checked_add(b)
            } else {
                a.checked_sub(b)
            };
            Ok(v.map(|value| {
                Item::Quantity(Quantity {
                    value,
                    unit: x.unit.clone(),
                })
            }))
        }
        BinOp::Mul | BinOp::Div => Ok(quantity_product(op, x, y)),
        _ => Err(EvalError::Unsupported(format!("quantity operator {op:?}"))),
    }
}

/// Products and quotients of quantities. Units of one dimension are first
/// brought to the base unit (`cm * m` → `m2`); otherwise units combine
/// textually (`g / m` → `g/m`). Full UCUM algebra is out of scope.
fn quantity_product<'a>(op: BinOp, x: &Quantity, y: &Quantity) -> Option<Item<'a>> {
    let same_dim = match (to_base_unit(x), to_base_unit(y)) {
        (Some((dx, vx)), Some((dy, vy))) if dx == dy => Some((dx, vx, vy)),
        _ => None,
    };
    let (value, unit) = match (op, same_dim) {
        (BinOp::Mul, Some((d, vx, vy))) => (vx.checked_mul(vy)?, format!("{d}2")),
        (BinOp::Div, Some((_, vx, vy))) => (vx.checked_div(vy)?, "1".to_string()),
        (BinOp::Mul, None) => (
            x.value.checked_mul(y.value)?,
            format!("{}.{}", x.unit, y.unit),
        ),
        (_, None) if y.unit == "1" => (x.value.checked_div(y.value)?, x.unit.clone()),
        _ => (
            x.value.checked_div(y.value)?,
            format!("{}/{}", x.unit, y.unit),
        ),
    };
    Some(Item::Quantity(Quantity { value, unit }))
}

fn date_arith(op: BinOp, t: Temporal, q: &Quantity) -> Result<Option<Temporal>, EvalError> {
    let sign = match op {
        BinOp::Add => 1,
        BinOp::Sub => -1,
        _ => return Err(EvalError::Type("only + and - apply to dates".into())),
    };
    let unit = calendar_unit(&q.unit).ok_or_else(|| {
        EvalError::Type(format!(
            "'{}' is not a calendar duration usable with dates",
            q.unit
        ))
    })?;
    // The decimal part of the quantity is ignored (the official suite
    // expects `+ 0.1 's'` to leave a dateTime unchanged).
    let amount = q.value.to_i64_trunc().ok_or(EvalError::Overflow)?;
    let (amount, unit) = if t.kind == TemporalKind::Date && is_time_unit(unit) {
        (to_days(amount, unit), CalendarUnit::Day)
    } else {
        (amount, unit)
    };
    t.add(sign * amount, unit)
        .map(Some)
        .ok_or(EvalError::Overflow)
}

fn is_time_unit(u: CalendarUnit) -> bool {
    matches!(
        u,
        CalendarUnit::Hour
            | CalendarUnit::Minute
            | CalendarUnit::Second
            | CalendarUnit::Millisecond
    )
}

fn to_days(amount: i64, unit: CalendarUnit) -> i64 {
    let per_day = match unit {
        CalendarUnit::Hour => 24,
        CalendarUnit::Minute => 1440,
        CalendarUnit::Second => 86_400,
        _ => 86_400_000,
    };
    amount / per_day
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> Item<'static> {
        Item::Integer(i)
    }

    #[test]
    fn three_valued_logic() {
        assert_eq!(logic(BinOp::And, Some(false), None), Some(false));
        assert_eq!(logic(BinOp::And, Some(true), None), None);
        assert_eq!(logic(BinOp::Or, None, Some(true)), Some(true));
        assert_eq!(logic(BinOp::Implies, None, Some(true)), Some(true));
        assert_eq!(logic(BinOp::Implies, Some(true), None), None);
        assert_eq!(logic(BinOp::Xor, Some(true), Some(false)), Some(true));
        assert_eq!(logic(BinOp::Xor, Some(true), None), None);
    }

    #[test]
    fn equality_rules() {
        assert_eq!(coll_equal(&[], &[int(1)]), None);
        assert_eq!(coll_equal(&[int(1)], &[int(1), int(2)]), Some(false));
        assert_eq!(
            coll_equal(&[int(1)], &[Item::Decimal(Decimal::parse("1.0").unwrap())]),
            Some(true)
        );
        assert!(coll_equiv(&[int(1), int(2)], &[int(2), int(1)]));
        assert!(item_equiv(
            &Item::String("A  b".into()),
            &Item::String("a b".into())
        ));
    }

    #[test]
    fn arithmetic_rules() {
        let r = apply(BinOp::Div, vec![int(1)], vec![int(0)]).unwrap();
        assert!(r.is_empty());
        assert!(apply(BinOp::Add, vec![int(i64::MAX)], vec![int(1)]).is_err());
        assert!(apply(BinOp::Add, vec![int(1)], vec![Item::Boolean(true)]).is_err());
        let r = apply(BinOp::Mod, vec![int(5)], vec![int(2)]).unwrap();
        assert_eq!(r, vec![int(1)]);
    }
}
