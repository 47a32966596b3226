//! Recursive-descent parser producing [`Expr`] trees.
//!
//! Every node records its depth so compilation can refuse trees deeper than
//! [`MAX_DEPTH`]: evaluation is recursive, and a hostile expression must not
//! be able to overflow the stack.

use regex::Regex;

use crate::ast::{BinOp, Call, Expr, Func, TypeSpec, Var};
use crate::decimal::Decimal;
use crate::error::ParseError;
use crate::lexer::{tokenize, Tok, Token};
use crate::temporal::Temporal;
use crate::value::{calendar_keyword, Item, Quantity};

/// Maximum depth of a compiled expression tree.
pub const MAX_DEPTH: usize = 128;

/// An expression together with the depth of its tree.
struct P {
    expr: Expr,
    depth: usize,
}

pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        nesting: 0,
    };
    let e = p.expr(0)?;
    match p.peek() {
        Tok::Eof => Ok(e.expr),
        other => Err(p.err(format!("unexpected token {other:?}"))),
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    /// Current recursion depth of the parser itself, bounded so that deeply
    /// nested input cannot overflow the stack before the tree is built.
    nesting: usize,
}

fn leaf(expr: Expr) -> P {
    P { expr, depth: 1 }
}

fn node(expr: Expr, child_depth: usize) -> Result<P, ParseError> {
    let depth = child_depth + 1;
    if depth > MAX_DEPTH {
        return Err(ParseError::TooDeep(MAX_DEPTH));
    }
    Ok(P { expr, depth })
}

/// Binary operators: (operator, precedence level). Higher binds tighter.
fn binary_op(tok: &Tok) -> Option<(BinOp, u8)> {
    let op = match tok {
        Tok::Sym(s) => match *s {
            "*" => (BinOp::Mul, 9),
            "/" => (BinOp::Div, 9),
            "+" => (BinOp::Add, 8),
            "-" => (BinOp::Sub, 8),
            "&" => (BinOp::Concat, 8),
            "|" => (BinOp::Union, 6),
            "<" => (BinOp::Lt, 5),
            ">" => (BinOp::Gt, 5),
            "<=" => (BinOp::Le, 5),
            ">=" => (BinOp::Ge, 5),
            "=" => (BinOp::Eq, 4),
            "!=" => (BinOp::Ne, 4),
            "~" => (BinOp::Equiv, 4),
            "!~" => (BinOp::NotEquiv, 4),
            _ => return None,
        },
        Tok::Ident(w) => match w.as_str() {
            "div" => (BinOp::IntDiv, 9),
            "mod" => (BinOp::Mod, 9),
            "in" => (BinOp::In, 3),
            "contains" => (BinOp::Contains, 3),
            "and" => (BinOp::And, 2),
            "or" => (BinOp::Or, 1),
            "xor" => (BinOp::Xor, 1),
            "implies" => (BinOp::Implies, 0),
            _ => return None,
        },
        _ => return None,
    };
    Some(op)
}

/// Level of the `is` / `as` type operators.
const TYPE_OP_LEVEL: u8 = 7;

impl Parser {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, k: usize) -> &Tok {
        self.toks
            .get(self.i + k)
            .or_else(|| self.toks.last())
            .map_or(&Tok::Eof, |t| &t.tok)
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        let pos = self.toks.get(self.i).map_or(0, |t| t.pos);
        ParseError::Syntax {
            pos,
            msg: msg.into(),
        }
    }

    fn expect(&mut self, sym: &'static str) -> Result<(), ParseError> {
        if self.peek() == &Tok::Sym(sym) {
            self.bump();
            Ok(())
        } else {
            Err(self.err(format!("expected '{sym}', found {:?}", self.peek())))
        }
    }

    fn expr(&mut self, min_level: u8) -> Result<P, ParseError> {
        let mut lhs = self.unary()?;
        loop {
            let tok = self.peek().clone();
            if let Tok::Ident(w) = &tok {
                if (w == "is" || w == "as") && TYPE_OP_LEVEL >= min_level {
                    self.bump();
                    let ty = self.type_spec()?;
                    let e = if w == "is" {
                        Expr::Is(Box::new(lhs.expr), ty)
                    } else {
                        Expr::As(Box::new(lhs.expr), ty)
                    };
                    lhs = node(e, lhs.depth)?;
                    continue;
                }
            }
            let Some((op, level)) = binary_op(&tok) else {
                return Ok(lhs);
            };
            if level < min_level {
                return Ok(lhs);
            }
            self.bump();
            let rhs = self.expr(level + 1)?;
            let depth = lhs.depth.max(rhs.depth);
            lhs = node(
                Expr::Binary(op, Box::new(lhs.expr), Box::new(rhs.expr)),
                depth,
            )?;
        }
    }

    fn type_spec(&mut self) -> Result<TypeSpec, ParseError> {
        let first = self.ident()?;
        if self.peek() == &Tok::Sym(".") {
            self.bump();
            let name = self.ident()?;
            return Ok(TypeSpec {
                namespace: Some(first),
                name,
            });
        }
        Ok(TypeSpec {
            namespace: None,
            name: first,
        })
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        match self.bump() {
            Tok::Ident(s) | Tok::Delimited(s) => Ok(s),
            other => Err(self.err(format!("expected identifier, found {other:?}"))),
        }
    }

    fn unary(&mut self) -> Result<P, ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(ParseError::TooDeep(MAX_DEPTH));
        }
        let result = self.unary_inner();
        self.nesting -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<P, ParseError> {
        match self.peek() {
            Tok::Sym("-") => {
                self.bump();
                let operand = self.unary()?;
                Ok(match operand.expr {
                    // Fold negative numeric literals so `-3` is a constant.
                    Expr::Literal(Item::Integer(i)) => leaf(Expr::Literal(Item::Integer(-i))),
                    Expr::Literal(Item::Decimal(d)) => leaf(Expr::Literal(Item::Decimal(-d))),
                    e => node(Expr::Neg(Box::new(e)), operand.depth)?,
                })
            }
            Tok::Sym("+") => {
                self.bump();
                self.unary()
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<P, ParseError> {
        let mut cur = self.term()?;
        loop {
            match self.peek() {
                Tok::Sym(".") => {
                    self.bump();
                    let name = self.ident()?;
                    cur = if self.peek() == &Tok::Sym("(") {
                        self.call(Some(cur), &name)?
                    } else {
                        node(Expr::Member(Some(Box::new(cur.expr)), name), cur.depth)?
                    };
                }
                Tok::Sym("[") => {
                    self.bump();
                    let idx = self.expr(0)?;
                    self.expect("]")?;
                    let depth = cur.depth.max(idx.depth);
                    cur = node(Expr::Indexer(Box::new(cur.expr), Box::new(idx.expr)), depth)?;
                }
                _ => return Ok(cur),
            }
        }
    }

    fn term(&mut self) -> Result<P, ParseError> {
        match self.bump() {
            Tok::Number(text) => self.number(&text),
            Tok::Str(s) => Ok(leaf(Expr::Literal(Item::String(s)))),
            Tok::DateTime(body) => Ok(leaf(Expr::Literal(temporal_literal(&body)?))),
            Tok::Ident(w) if w == "true" || w == "false" => {
                Ok(leaf(Expr::Literal(Item::Boolean(w == "true"))))
            }
            Tok::Ident(w) => {
                if self.peek() == &Tok::Sym("(") {
                    self.call(None, &w)
                } else {
                    Ok(leaf(Expr::Member(None, w)))
                }
            }
            Tok::Delimited(w) => Ok(leaf(Expr::Member(None, w))),
            Tok::Var(name) => Ok(leaf(Expr::Var(variable(&name)?))),
            Tok::Dollar(name) => match name.as_str() {
                "this" => Ok(leaf(Expr::This)),
                "index" => Ok(leaf(Expr::Index)),
                "total" => Ok(leaf(Expr::Total)),
                _ => Err(self.err(format!("unknown special variable ${name}"))),
            },
            Tok::Sym("(") => {
                let inner = self.expr(0)?;
                self.expect(")")?;
                node(inner.expr, inner.depth)
            }
            Tok::Sym("{") => {
                self.expect("}")?;
                Ok(leaf(Expr::Empty))
            }
            other => {
                self.i = self.i.saturating_sub(1);
                Err(self.err(format!("unexpected token {other:?}")))
            }
        }
    }

    fn number(&mut self, text: &str) -> Result<P, ParseError> {
        let unit = match self.peek().clone() {
            Tok::Str(u) => Some(u),
            Tok::Ident(w) => calendar_keyword(&w).map(str::to_string),
            _ => None,
        };
        if let Some(unit) = unit {
            self.bump();
            let value =
                Decimal::parse(text).ok_or_else(|| ParseError::InvalidLiteral(text.into()))?;
            return Ok(leaf(Expr::Literal(Item::Quantity(Quantity {
                value,
                unit,
            }))));
        }
        let item = if text.contains('.') {
            Item::Decimal(
                Decimal::parse(text).ok_or_else(|| ParseError::InvalidLiteral(text.into()))?,
            )
        } else {
            Item::Integer(
                text.parse()
                    .map_err(|_| ParseError::InvalidLiteral(text.into()))?,
            )
        };
        Ok(leaf(Expr::Literal(item)))
    }

    fn call(&mut self, source: Option<P>, name: &str) -> Result<P, ParseError> {
        self.expect("(")?;
        let mut args = Vec::new();
        let mut depth = source.as_ref().map_or(0, |s| s.depth);
        if self.peek() != &Tok::Sym(")") {
            loop {
                let a = self.expr(0)?;
                depth = depth.max(a.depth);
                args.push(a.expr);
                if self.peek() == &Tok::Sym(",") {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        let call = build_call(name, args)?;
        node(
            Expr::Call(source.map(|s| Box::new(s.expr)), Box::new(call)),
            depth,
        )
    }
}

fn build_call(name: &str, mut args: Vec<Expr>) -> Result<Call, ParseError> {
    let (func, min, max) =
        Func::lookup(name).ok_or_else(|| ParseError::UnknownFunction(name.to_string()))?;
    if args.len() < min || args.len() > max {
        return Err(ParseError::Arity {
            name: name.to_string(),
            expected: if min == max {
                min.to_string()
            } else {
                format!("{min}..{max}")
            },
            got: args.len(),
        });
    }
    let mut type_arg = None;
    if matches!(func, Func::Is | Func::As | Func::OfType) {
        let first = args
            .first()
            .ok_or_else(|| ParseError::InvalidLiteral("type specifier".into()))?;
        type_arg = Some(expr_to_type(first)?);
        args.clear();
    }
    let regex = match (func, args.first()) {
        (Func::Matches | Func::ReplaceMatches, Some(Expr::Literal(Item::String(p)))) => {
            Some(compile_regex(p, false)?)
        }
        (Func::MatchesFull, Some(Expr::Literal(Item::String(p)))) => Some(compile_regex(p, true)?),
        _ => None,
    };
    Ok(Call {
        func,
        args,
        regex,
        type_arg,
    })
}

/// Compiles a FHIRPath regex; `full` anchors it to the whole string.
/// Patterns run in single-line mode (`.` matches newlines) per the spec.
pub(crate) fn compile_regex(pattern: &str, full: bool) -> Result<Regex, ParseError> {
    let src = if full {
        format!("(?s)^(?:{pattern})$")
    } else {
        format!("(?s){pattern}")
    };
    Regex::new(&src).map_err(|e| ParseError::InvalidRegex(e.to_string()))
}

fn expr_to_type(e: &Expr) -> Result<TypeSpec, ParseError> {
    match e {
        Expr::Member(None, name) => Ok(TypeSpec {
            namespace: None,
            name: name.clone(),
        }),
        Expr::Member(Some(ns), name) => match ns.as_ref() {
            Expr::Member(None, ns) => Ok(TypeSpec {
                namespace: Some(ns.clone()),
                name: name.clone(),
            }),
            _ => Err(ParseError::InvalidLiteral("type specifier".into())),
        },
        _ => Err(ParseError::InvalidLiteral("type specifier".into())),
    }
}

fn variable(name: &str) -> Result<Var, ParseError> {
    Ok(match name {
        "context" => Var::Context,
        "resource" => Var::Resource,
        "rootResource" => Var::RootResource,
        "ucum" => Var::Const("http://unitsofmeasure.org".into()),
        "sct" => Var::Const("http://snomed.info/sct".into()),
        "loinc" => Var::Const("http://loinc.org".into()),
        _ => {
            if let Some(vs) = name.strip_prefix("vs-") {
                Var::Const(format!("http://hl7.org/fhir/ValueSet/{vs}"))
            } else if let Some(ext) = name.strip_prefix("ext-") {
                Var::Const(format!("http://hl7.org/fhir/StructureDefinition/{ext}"))
            } else {
                return Err(ParseError::UnknownVariable(name.to_string()));
            }
        }
    })
}

fn temporal_literal(body: &str) -> Result<Item<'static>, ParseError> {
    let bad = || ParseError::InvalidLiteral(format!("@{body}"));
    if let Some(time) = body.strip_prefix('T') {
        return Temporal::parse_time(time).map(Item::Time).ok_or_else(bad);
    }
    if body.contains('T') {
        let t = Temporal::parse_datetime(body).ok_or_else(bad)?;
        return Ok(Item::DateTime(t));
    }
    let t = Temporal::parse_date(body).ok_or_else(bad)?;
    Ok(Item::Date(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let e = parse("1 + 2 * 3 = 7 and true").unwrap();
        assert!(matches!(e, Expr::Binary(BinOp::And, _, _)));
        let e = parse("a | b is C").unwrap();
        assert!(matches!(e, Expr::Binary(BinOp::Union, _, _)));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse("foo()"),
            Err(ParseError::UnknownFunction(_))
        ));
        assert!(matches!(parse("where()"), Err(ParseError::Arity { .. })));
        assert!(matches!(
            parse("%nope"),
            Err(ParseError::UnknownVariable(_))
        ));
        assert!(parse("2 + 2 /").is_err());
        assert!(parse("'a'.matches('(')").is_err());
        assert!(parse("@T14:34:28Z").is_err());
        assert!(parse("99999999999999999999").is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "(".repeat(200) + "1" + &")".repeat(200);
        assert!(matches!(parse(&deep), Err(ParseError::TooDeep(_))));
        let hostile = "(".repeat(100_000);
        assert!(matches!(parse(&hostile), Err(ParseError::TooDeep(_))));
        let minus = "-".repeat(100_000) + "1";
        assert!(matches!(parse(&minus), Err(ParseError::TooDeep(_))));
        let chain = vec!["a"; 300].join(".");
        assert!(matches!(parse(&chain), Err(ParseError::TooDeep(_))));
        let sum = vec!["1"; 300].join("+");
        assert!(matches!(parse(&sum), Err(ParseError::TooDeep(_))));
        assert!(parse(&vec!["a"; 100].join(".")).is_ok());
    }

    #[test]
    fn quantities_and_types() {
        assert!(matches!(
            parse("4 days").unwrap(),
            Expr::Literal(Item::Quantity(_))
        ));
        assert!(matches!(
            parse("x.is(FHIR.Patient)").unwrap(),
            Expr::Call(_, _)
        ));
        assert!(parse("x.is(1)").is_err());
    }
}
