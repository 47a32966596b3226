//! Tree-walking evaluation of compiled expressions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::ast::{Expr, TypeSpec, Var};
use crate::error::EvalError;
use crate::functions;
use crate::ops;
use crate::temporal::Temporal;
use crate::value::{choice_type, is_quantity_type, Item, Node, STRING_PRIMITIVES};
use crate::{Context, ModelInfo};

pub(crate) type Coll<'a> = Vec<Item<'a>>;

/// Largest collection an evaluation may build. Expressions such as
/// `select($this.combine($this))` chained a few dozen times would otherwise
/// grow exponentially from a short text.
pub(crate) const MAX_COLLECTION: usize = 1_000_000;

/// Work budget of one evaluation, in units of items produced plus bytes of
/// strings built. Bounds CPU and memory for expressions like
/// `'a'.repeat($this + 'a')` that stay within every other limit.
pub(crate) const EVALUATION_BUDGET: u64 = 50_000_000;

pub(crate) struct Budget(Cell<u64>);

impl Budget {
    pub fn new(units: u64) -> Self {
        Budget(Cell::new(units))
    }

    fn charge(&self, units: u64) -> Result<(), EvalError> {
        let left = self
            .0
            .get()
            .checked_sub(units)
            .ok_or(EvalError::BudgetExceeded)?;
        self.0.set(left);
        Ok(())
    }
}

fn cost(items: &[Item<'_>]) -> u64 {
    items
        .iter()
        .map(|i| match i {
            Item::String(s) => 1 + s.len() as u64,
            _ => 1,
        })
        .sum()
}

pub(crate) fn check_size(len: usize) -> Result<(), EvalError> {
    if len > MAX_COLLECTION {
        return Err(EvalError::Other(format!(
            "collection larger than {MAX_COLLECTION} items"
        )));
    }
    Ok(())
}
pub(crate) type EvalResult<'a> = Result<Coll<'a>, EvalError>;

/// Evaluation environment: the caller's context plus the bindings that
/// change while descending into function arguments.
#[derive(Clone, Copy)]
pub(crate) struct Env<'e, 'a> {
    pub ctx: &'e Context<'a>,
    /// `%context`: the evaluation input.
    pub context: &'e [Item<'a>],
    pub resource: Option<&'a Value>,
    pub root: Option<&'a Value>,
    /// `$this`: the focus for identifiers and functions without a source.
    pub this: &'e [Item<'a>],
    pub index: Option<usize>,
    pub total: Option<&'e [Item<'a>]>,
    pub budget: &'e Budget,
    pub cache: &'e InvariantCache<'a>,
    /// `descendants()` of single nodes, keyed by the node's address.
    pub descendants: &'e InvariantCache<'a>,
    /// `now()` is read once per evaluation, so repeated calls agree.
    pub clock: &'e Cell<Option<Temporal>>,
}

impl Env<'_, '_> {
    pub fn now(&self) -> Temporal {
        if let Some(t) = self.ctx.now.or(self.clock.get()) {
            return t;
        }
        let t = Temporal::now_utc();
        self.clock.set(Some(t));
        t
    }
}

/// Results of [`Expr::Invariant`] nodes for one evaluation, keyed by the
/// node's address in the compiled tree.
pub(crate) type InvariantCache<'a> = RefCell<HashMap<usize, Coll<'a>>>;

impl<'a> Env<'_, 'a> {
    pub fn model(&self) -> Option<&'a dyn ModelInfo> {
        self.ctx.model
    }
}

pub(crate) fn eval<'a>(expr: &Expr, env: &Env<'_, 'a>) -> EvalResult<'a> {
    env.budget.charge(1)?;
    let out = eval_expr(expr, env)?;
    env.budget.charge(cost(&out))?;
    Ok(out)
}

fn eval_expr<'a>(expr: &Expr, env: &Env<'_, 'a>) -> EvalResult<'a> {
    match expr {
        Expr::Literal(item) => Ok(vec![item.clone()]),
        Expr::Empty => Ok(Vec::new()),
        Expr::This => Ok(env.this.to_vec()),
        Expr::Index => Ok(env
            .index
            .map(|i| Item::Integer(i as i64))
            .into_iter()
            .collect()),
        Expr::Total => Ok(env.total.map(<[Item]>::to_vec).unwrap_or_default()),
        Expr::Var(v) => Ok(variable(v, env)),
        Expr::Member(None, name) => Ok(root_member(env.this, name, env)),
        Expr::Member(Some(src), name) => {
            let base = eval(src, env)?;
            Ok(navigate(&base, name, env))
        }
        Expr::Call(src, call) => {
            let input = match src {
                Some(s) => eval(s, env)?,
                None => env.this.to_vec(),
            };
            functions::call(call, input, src.is_some(), env)
        }
        Expr::Indexer(src, idx) => {
            let base = eval(src, env)?;
            let idx = eval(idx, env)?;
            let i = match ops::singleton_system(&idx, "indexer")? {
                Some(Item::Integer(i)) => i,
                None => return Ok(Vec::new()),
                Some(_) => return Err(EvalError::Type("index must be an integer".into())),
            };
            Ok(usize::try_from(i)
                .ok()
                .and_then(|i| base.into_iter().nth(i))
                .into_iter()
                .collect())
        }
        Expr::Neg(inner) => ops::negate(eval(inner, env)?),
        Expr::Binary(op, l, r) => ops::binary(*op, l, r, env),
        Expr::Is(inner, ty) => {
            let items = eval(inner, env)?;
            match items.as_slice() {
                [] => Ok(Vec::new()),
                [one] => Ok(vec![Item::Boolean(is_type(one, ty, env, false)?)]),
                _ => Err(EvalError::NotSingleton("is", items.len())),
            }
        }
        Expr::Invariant(inner) => {
            let key = inner.as_ref() as *const Expr as usize;
            if let Some(hit) = env.cache.borrow().get(&key) {
                return Ok(hit.clone());
            }
            let out = eval(inner, env)?;
            env.cache.borrow_mut().insert(key, out.clone());
            Ok(out)
        }
        Expr::As(inner, ty) => {
            let items = eval(inner, env)?;
            if items.len() > 1 {
                return Err(EvalError::NotSingleton("as", items.len()));
            }
            filter_type(items, ty, env)
        }
    }
}

fn variable<'a>(v: &Var, env: &Env<'_, 'a>) -> Coll<'a> {
    match v {
        Var::Context => env.context.to_vec(),
        Var::Resource => env
            .resource
            .map(|r| Item::Node(Node::new(r)))
            .into_iter()
            .collect(),
        Var::RootResource => env
            .root
            .map(|r| Item::Node(Node::new(r)))
            .into_iter()
            .collect(),
        Var::Const(s) => vec![Item::String(s.clone())],
    }
}

/// An identifier without a source: a leading type name matching the focus
/// (`Patient.name` on a Patient) selects the focus itself.
fn root_member<'a>(focus: &[Item<'a>], name: &str, env: &Env<'_, 'a>) -> Coll<'a> {
    let starts_upper = name.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if starts_upper {
        let typed: Coll<'a> = focus
            .iter()
            .filter(|i| matches!(i, Item::Node(n) if n.type_name == Some(name)))
            .cloned()
            .collect();
        if !typed.is_empty() {
            return typed;
        }
    }
    navigate(focus, name, env)
}

pub(crate) fn navigate<'a>(items: &[Item<'a>], name: &str, env: &Env<'_, 'a>) -> Coll<'a> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Node(n) => child(n, name, env.model(), &mut out),
            Item::TypeInfo { namespace, name: n } => match name {
                "namespace" => out.push(Item::String(namespace.clone())),
                "name" => out.push(Item::String(n.clone())),
                _ => {}
            },
            _ => {}
        }
    }
    out
}

/// The object holding a node's children: the value for complex nodes, the
/// `_name` companion for primitives.
fn child_maps<'a>(node: &Node<'a>) -> impl Iterator<Item = &'a Map<String, Value>> {
    let value = node.value.and_then(Value::as_object);
    let ext = node.extension.and_then(Value::as_object);
    value.into_iter().chain(ext)
}

fn child<'a>(node: &Node<'a>, name: &str, model: Option<&'a dyn ModelInfo>, out: &mut Coll<'a>) {
    for map in child_maps(node) {
        let value = map.get(name);
        let ext = if value.is_none_or(is_primitive_json) {
            map.get(&format!("_{name}"))
        } else {
            None
        };
        let declared = node
            .type_name
            .zip(model)
            .and_then(|(t, m)| m.element_type(t, name));
        if value.is_some() || ext.is_some() {
            push_values(value, ext, declared, out);
            continue;
        }
        if declared.is_some() {
            continue; // the model knows it is not a choice element
        }
        // Choice elements: `value` finds `valueQuantity`, typed by suffix.
        for (key, v) in map {
            let Some(suffix) = key.strip_prefix(name) else {
                continue;
            };
            if let Some(ty) = choice_type(suffix) {
                let ext = if is_primitive_json(v) {
                    map.get(&format!("_{key}"))
                } else {
                    None
                };
                push_values(Some(v), ext, Some(ty), out);
            }
        }
    }
}

fn is_primitive_json(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(|x| !x.is_object()),
        Value::Object(_) => false,
        _ => true,
    }
}

/// Pushes the node(s) for one JSON property, flattening arrays and pairing
/// primitive values with their `_name` companions by position.
fn push_values<'a>(
    value: Option<&'a Value>,
    ext: Option<&'a Value>,
    declared: Option<&'a str>,
    out: &mut Coll<'a>,
) {
    let typed = |v: Option<&'a Value>| {
        v.and_then(|v| v.get("resourceType"))
            .and_then(Value::as_str)
            .or(declared)
    };
    let mk = |v: Option<&'a Value>, e: Option<&'a Value>| {
        let v = v.filter(|v| !v.is_null());
        let e = e.filter(|e| !e.is_null());
        (v.is_some() || e.is_some()).then(|| {
            Item::Node(Node {
                value: v,
                extension: e,
                type_name: typed(v),
            })
        })
    };
    match (value, ext) {
        (Some(Value::Array(values)), _) => {
            let exts = ext.and_then(Value::as_array);
            for (i, v) in values.iter().enumerate() {
                out.extend(mk(Some(v), exts.and_then(|e| e.get(i))));
            }
            // Extensions beyond the value array (values all null) still count.
            if let Some(exts) = exts {
                for e in exts.iter().skip(values.len()) {
                    out.extend(mk(None, Some(e)));
                }
            }
        }
        (None, Some(Value::Array(exts))) => {
            for e in exts {
                out.extend(mk(None, Some(e)));
            }
        }
        (v, e) => out.extend(mk(v, e)),
    }
}

/// All child nodes (FHIRPath `children()`).
pub(crate) fn children<'a>(node: &Node<'a>, model: Option<&'a dyn ModelInfo>, out: &mut Coll<'a>) {
    // One buffer for the `_key` lookups instead of an allocation per key.
    let mut ext_key = String::new();
    for map in child_maps(node) {
        for (key, value) in map {
            if key == "resourceType" {
                continue;
            }
            if let Some(base) = key.strip_prefix('_') {
                // Extension-only primitives; the others were paired below.
                if !map.contains_key(base) {
                    push_values(None, Some(value), None, out);
                }
                continue;
            }
            let ext = if is_primitive_json(value) {
                ext_key.clear();
                ext_key.push('_');
                ext_key.push_str(key);
                map.get(ext_key.as_str())
            } else {
                None
            };
            let declared = node
                .type_name
                .zip(model)
                .and_then(|(t, m)| m.element_type(t, key));
            push_values(Some(value), ext, declared, out);
        }
    }
}

/// `as` / `ofType`: keeps items of the type. FHIR primitive types must
/// match exactly (a `code` is not `as(string)`), as the official suite
/// expects, while complex types accept subtypes (`Age` is a `Quantity`).
pub(crate) fn filter_type<'a>(items: Coll<'a>, ty: &TypeSpec, env: &Env<'_, 'a>) -> EvalResult<'a> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if is_type(&item, ty, env, true)? {
            out.push(item);
        }
    }
    Ok(out)
}

const SYSTEM_TYPES: [&str; 8] = [
    "Boolean", "Integer", "Decimal", "String", "Date", "DateTime", "Time", "Quantity",
];

/// Type test used by `is`, `as` and `ofType`; an error when the model
/// says the type does not exist.
pub(crate) fn is_type(
    item: &Item<'_>,
    ty: &TypeSpec,
    env: &Env<'_, '_>,
    exact_primitive: bool,
) -> Result<bool, EvalError> {
    let ns = ty.namespace.as_deref();
    let name = ty.name.as_str();
    let system = ns != Some("FHIR") && SYSTEM_TYPES.contains(&name);
    if !system && env.model().and_then(|m| m.is_known_type(name)) == Some(false) {
        return Err(EvalError::Type(format!("unknown type '{name}'")));
    }
    Ok(match item {
        Item::Node(n) => {
            if ns == Some("System") {
                return Ok(false);
            }
            let primitive = name.starts_with(|c: char| c.is_ascii_lowercase());
            match n.type_name {
                Some(t) if t == name => true,
                Some(_) if exact_primitive && primitive => false,
                Some(t) => is_subtype(n, t, name, env.model()),
                None => untyped_node_is(n, name),
            }
        }
        Item::TypeInfo { .. } => false,
        other => ns != Some("FHIR") && other.type_name() == name,
    })
}

fn is_subtype(node: &Node<'_>, t: &str, base: &str, model: Option<&dyn ModelInfo>) -> bool {
    if let Some(m) = model {
        if let Some(answer) = m.is_subtype(t, base) {
            return answer;
        }
    }
    let is_resource = node.value.is_some_and(|v| v.get("resourceType").is_some());
    match base {
        "Resource" => is_resource,
        "DomainResource" => is_resource && !matches!(t, "Bundle" | "Binary" | "Parameters"),
        "Quantity" => is_quantity_type(t),
        "string" => matches!(t, "code" | "id" | "markdown"),
        "uri" => matches!(t, "url" | "canonical" | "oid" | "uuid"),
        "integer" => matches!(t, "positiveInt" | "unsignedInt"),
        "Element" | "Base" => !is_resource,
        _ => false,
    }
}

/// Without type information a node's FHIR type is guessed from its JSON
/// shape. String-valued primitives are indistinguishable, so any string
/// primitive type is accepted: the lenient answer keeps invariants such as
/// `dom-3` (`descendants().as(canonical)`) from failing valid resources.
fn untyped_node_is(n: &Node<'_>, name: &str) -> bool {
    match n.value {
        Some(Value::Bool(_)) => name == "boolean",
        Some(Value::Number(num)) => match name {
            "decimal" => true,
            "integer" | "unsignedInt" | "positiveInt" => num.is_i64() || num.is_u64(),
            _ => false,
        },
        Some(Value::String(_)) => STRING_PRIMITIVES.contains(&name),
        _ => false,
    }
}
