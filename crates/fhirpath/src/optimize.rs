//! Compile-time rewriting of loop-invariant subexpressions.
//!
//! Inside `where(...)`, `select(...)` and friends, parts that do not depend
//! on the current item (`%resource.descendants().reference` in `dom-3`) would
//! be recomputed for every item. They are wrapped in [`Expr::Invariant`] so
//! an evaluation computes each of them once.

use crate::ast::{Call, Expr, Func};

pub(crate) fn hoist_invariants(e: Expr) -> Expr {
    rewrite(e, false)
}

fn rewrite(e: Expr, in_lambda: bool) -> Expr {
    if in_lambda && !trivial(&e) && is_invariant(&e) {
        return Expr::Invariant(Box::new(e));
    }
    let r = |b: Box<Expr>| Box::new(rewrite(*b, in_lambda));
    match e {
        Expr::Member(src, name) => Expr::Member(src.map(r), name),
        Expr::Call(src, call) => {
            let Call {
                func,
                args,
                regex,
                type_arg,
            } = *call;
            let closed = takes_closed_args(func, src.is_some());
            let args = args
                .into_iter()
                .map(|a| rewrite(a, in_lambda || closed))
                .collect();
            Expr::Call(
                src.map(r),
                Box::new(Call {
                    func,
                    args,
                    regex,
                    type_arg,
                }),
            )
        }
        Expr::Indexer(a, b) => Expr::Indexer(r(a), r(b)),
        Expr::Neg(a) => Expr::Neg(r(a)),
        Expr::Binary(op, a, b) => Expr::Binary(op, r(a), r(b)),
        Expr::Is(a, t) => Expr::Is(r(a), t),
        Expr::As(a, t) => Expr::As(r(a), t),
        other => other,
    }
}

fn trivial(e: &Expr) -> bool {
    matches!(e, Expr::Literal(_) | Expr::Empty | Expr::Var(_))
}

/// Arguments evaluated with their own focus (per item, or the explicit
/// source of `iif`), which therefore cannot see the caller's `$this`.
fn takes_closed_args(func: Func, has_source: bool) -> bool {
    func.is_lambda() || (func == Func::Iif && has_source)
}

/// Whether `e` evaluates the same regardless of `$this`, `$index`, `$total`.
fn is_invariant(e: &Expr) -> bool {
    match e {
        Expr::Literal(_) | Expr::Empty | Expr::Var(_) | Expr::Invariant(_) => true,
        Expr::This | Expr::Index | Expr::Total | Expr::Member(None, _) | Expr::Call(None, _) => {
            false
        }
        Expr::Member(Some(src), _) => is_invariant(src),
        Expr::Call(Some(src), call) => {
            let closed = takes_closed_args(call.func, true);
            // `now()` and friends are fixed per evaluation anyway.
            is_invariant(src) && (closed || call.args.iter().all(is_invariant))
        }
        Expr::Indexer(a, b) | Expr::Binary(_, a, b) => is_invariant(a) && is_invariant(b),
        Expr::Neg(a) | Expr::Is(a, _) | Expr::As(a, _) => is_invariant(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn count_invariants(e: &Expr) -> usize {
        match e {
            Expr::Invariant(_) => 1,
            Expr::Member(Some(a), _) | Expr::Neg(a) | Expr::Is(a, _) | Expr::As(a, _) => {
                count_invariants(a)
            }
            Expr::Call(src, call) => {
                src.as_deref().map_or(0, count_invariants)
                    + call.args.iter().map(count_invariants).sum::<usize>()
            }
            Expr::Indexer(a, b) | Expr::Binary(_, a, b) => {
                count_invariants(a) + count_invariants(b)
            }
            _ => 0,
        }
    }

    fn hoisted(src: &str) -> usize {
        count_invariants(&hoist_invariants(parse(src).unwrap()))
    }

    #[test]
    fn hoists_only_item_independent_parts() {
        assert_eq!(
            hoisted("contained.where(id in %resource.descendants().reference)"),
            1
        );
        assert_eq!(hoisted("contained.where(id in descendants().reference)"), 0);
        assert_eq!(hoisted("contained.where(id = $this.id)"), 0);
        assert_eq!(hoisted("contained.where(id = 'x')"), 0);
        assert_eq!(hoisted("%resource.descendants().reference"), 0);
        assert_eq!(
            hoisted("a.where(%resource.x.where(y = $this.z).exists())"),
            1
        );
        // Only `%resource.x` is hoisted: the argument sees the item.
        assert_eq!(hoisted("a.where(%resource.x.subsetOf($this.z))"), 1);
        assert_eq!(hoisted("a.where(%resource.x.subsetOf(%context))"), 1);
    }
}
