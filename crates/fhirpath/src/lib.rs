//! FHIRPath (N1, as used by FHIR R4) evaluated over `serde_json::Value`.
//!
//! Compile once with [`compile`], then evaluate the [`Expression`] against
//! any number of FHIR JSON resources (an `Expression` is `Send + Sync`):
//!
//! ```
//! use fhirpath::{compile, Context};
//! use serde_json::json;
//!
//! let per1 = compile("start.hasValue().not() or end.hasValue().not() or (start <= end)").unwrap();
//! let period = json!({"start": "2020-01-01", "end": "2019-12-31"});
//! assert!(!per1.evaluate_bool(&period, &Context::default()).unwrap());
//! ```
//!
//! # Integration notes (validators)
//!
//! - **Invariant result**: [`Expression::evaluate_bool`] passes on a single
//!   `true` *and on an empty result*; it fails only on a single `false`.
//!   Errors (type errors, `single()` on several items, unsupported
//!   `memberOf()`...) are returned, never panics.
//! - **Element-level constraints**: evaluate on the element with
//!   [`Expression::evaluate_node`] / [`Expression::evaluate_node_bool`] and a
//!   [`Node`] carrying the element's FHIR type (`type_name`) and, for
//!   primitives, the `_name` companion (`extension`). Set
//!   [`Context::resource`] to the resource holding the element and
//!   [`Context::root_resource`] to the Bundle/container, or `%resource` /
//!   `%rootResource` will be the element itself.
//! - **Types**: without a [`ModelInfo`], only `resourceType` and choice
//!   suffixes (`valueQuantity`) give types; other nodes are treated leniently
//!   (see [`ModelInfo`]). Build a [`StructureDefinitionModel`] once from the
//!   StructureDefinitions you already load (snapshots with `path`,
//!   `type.code`, `contentReference` suffice) and pass it in
//!   [`Context::model`]:
//!
//! ```
//! use fhirpath::{compile, Context, StructureDefinitionModel};
//! use serde_json::json;
//!
//! let sd = json!({"resourceType": "StructureDefinition", "id": "Patient", "type": "Patient",
//!     "snapshot": {"element": [{"path": "Patient"},
//!                              {"path": "Patient.gender", "type": [{"code": "code"}]}]}});
//! let model = StructureDefinitionModel::from_definitions([&sd]);
//! let ctx = Context { model: Some(&model), ..Context::default() };
//! let e = compile("gender.is(code)").unwrap();
//! assert!(e.evaluate_bool(&json!({"resourceType": "Patient", "gender": "male"}), &ctx).unwrap());
//! ```
//!
//! - **resolve()** finds contained resources (`#id`, in `%resource` then
//!   `%rootResource`) and entries of a Bundle `%rootResource` (by `fullUrl`
//!   or `Type/id`) by itself; anything else goes to [`Context::resolver`].
//! - **memberOf()** needs [`Context::terminology`]; **conformsTo()** answers
//!   base definitions itself and asks [`ModelInfo::conforms_to`] otherwise.
//! - **Clock**: [`Context::now`] fixes `now()`/`today()` (tests); otherwise
//!   the system clock is read once per evaluation.
//! - **Limits**: expressions nest at most [`MAX_DEPTH`] levels (compile
//!   error); an evaluation has a work budget and collection/string size
//!   limits, so hostile expressions end with an [`EvalError`].
//!
//! See `CONFORMANCE.md` for the official test-suite results.

mod ast;
mod boundaries;
mod codec;
mod decimal;
mod error;
mod eval;
mod functions;
mod lexer;
pub mod model;
mod ops;
mod optimize;
mod parser;
mod temporal;
mod value;

use serde_json::Value;

pub use decimal::Decimal;
pub use error::{EvalError, ParseError};
pub use model::StructureDefinitionModel;
pub use parser::MAX_DEPTH;
pub use temporal::{Precision, Temporal, TemporalKind};
pub use value::{Item, Node, Quantity};

/// A compiled FHIRPath expression. Cheap to share between threads.
#[derive(Debug)]
pub struct Expression {
    source: String,
    root: ast::Expr,
}

/// Compiles `src`. Unknown functions, unknown `%variables`, invalid literal
/// regexes and nesting deeper than [`MAX_DEPTH`] are compile errors.
pub fn compile(src: &str) -> Result<Expression, ParseError> {
    Ok(Expression {
        source: src.to_string(),
        root: optimize::hoist_invariants(parser::parse(src)?),
    })
}

/// Resolves references for `resolve()` that are not contained resources or
/// entries of a Bundle `%rootResource` (those are resolved built in).
pub trait Resolver: Sync {
    fn resolve(&self, reference: &str) -> Option<&Value>;
}

/// Optional type information from StructureDefinitions.
///
/// Without it, FHIR types are known only for resources and choice elements;
/// `is`/`as`/`ofType` on other nodes guess from the JSON shape and accept
/// every string primitive type for a JSON string (lenient), and dates stored
/// as JSON strings are parsed when compared with date values.
pub trait ModelInfo: Sync {
    /// FHIR type of child `element` (JSON name, no `[x]`) of a node whose
    /// type is `parent_type`: `("Patient", "birthDate")` → `"date"`,
    /// `("Patient", "name")` → `"HumanName"`. For backbone elements return
    /// a name the model will accept as `parent_type` later, such as
    /// `"Patient.contact"`. Return `None` for choice elements (the suffix of
    /// the JSON name decides) and for unknown elements.
    fn element_type(&self, parent_type: &str, element: &str) -> Option<&str>;

    /// Whether `type_name` is `base` or derives from it. `None` falls back
    /// to the built-in R4 knowledge (resources, quantities, primitives).
    fn is_subtype(&self, _type_name: &str, _base: &str) -> Option<bool> {
        None
    }

    /// Answer for `conformsTo(profile)`; `None` means "cannot tell" (base
    /// resource definitions are still answered, others are an error).
    fn conforms_to(&self, _resource: &Value, _profile: &str) -> Option<bool> {
        None
    }

    /// Whether `name` is a FHIR type at all; `Some(false)` makes
    /// `is`/`as`/`ofType` with that name an error. `None` = cannot tell.
    fn is_known_type(&self, _name: &str) -> Option<bool> {
        None
    }
}

/// Terminology hook for `memberOf()`; without one `memberOf()` is an error.
pub trait Terminology: Sync {
    /// `Some(true/false)` when membership is known, `None` when unknown.
    fn member_of(&self, code: &Item<'_>, value_set: &str) -> Option<bool>;
}

/// Evaluation environment.
#[derive(Clone, Copy, Default)]
pub struct Context<'a> {
    /// `%resource`; defaults to the evaluation input.
    pub resource: Option<&'a Value>,
    /// `%rootResource` (the Bundle or container); defaults to `%resource`.
    pub root_resource: Option<&'a Value>,
    pub resolver: Option<&'a dyn Resolver>,
    pub model: Option<&'a dyn ModelInfo>,
    pub terminology: Option<&'a dyn Terminology>,
    /// Fixed clock for `now()`, `today()`, `timeOfDay()`; `None` = system clock.
    pub now: Option<Temporal>,
}

impl Expression {
    /// The source text this expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `input`, which is also `%context` and, unless the
    /// context says otherwise, `%resource`.
    pub fn evaluate<'a>(
        &self,
        input: &'a Value,
        ctx: &Context<'a>,
    ) -> Result<Vec<Item<'a>>, EvalError> {
        self.evaluate_node(Node::new(input), ctx)
    }

    /// Evaluates with an explicit focus node. Validators use this for
    /// element-level invariants: a typed node (`type_name`), or a primitive
    /// whose value and `_name` extension object must be seen together
    /// (`ele-1` on `"birthDate"` + `"_birthDate"`). `%resource` defaults to
    /// the node's value.
    pub fn evaluate_node<'a>(
        &self,
        node: Node<'a>,
        ctx: &Context<'a>,
    ) -> Result<Vec<Item<'a>>, EvalError> {
        let focus = [Item::Node(node)];
        let budget = eval::Budget::new(eval::EVALUATION_BUDGET);
        let cache = eval::InvariantCache::default();
        let descendants = eval::InvariantCache::default();
        let clock = std::cell::Cell::new(None);
        let resource = ctx.resource.or(node.value);
        let env = eval::Env {
            ctx,
            context: &focus,
            resource,
            root: ctx.root_resource.or(resource),
            this: &focus,
            index: None,
            total: None,
            budget: &budget,
            cache: &cache,
            descendants: &descendants,
            clock: &clock,
        };
        eval::eval(&self.root, &env)
    }

    /// Evaluates an invariant. A constraint passes when the result is a
    /// single `true`; an **empty result also passes** (the constraint does
    /// not apply), a single `false` fails. A single non-boolean item or
    /// several items count as `true`, matching FHIR validators' conversion
    /// of non-empty collections to booleans.
    pub fn evaluate_bool(&self, input: &Value, ctx: &Context<'_>) -> Result<bool, EvalError> {
        Ok(invariant_result(&self.evaluate(input, ctx)?))
    }

    /// [`evaluate_bool`](Self::evaluate_bool) with an explicit focus node.
    pub fn evaluate_node_bool(&self, node: Node<'_>, ctx: &Context<'_>) -> Result<bool, EvalError> {
        Ok(invariant_result(&self.evaluate_node(node, ctx)?))
    }
}

fn invariant_result(result: &[Item<'_>]) -> bool {
    match result {
        [one] => one.as_bool().unwrap_or(true),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn expression_is_send_and_sync() {
        assert_send_sync::<Expression>();
    }
}
