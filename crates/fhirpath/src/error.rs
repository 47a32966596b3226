//! Error types for compilation and evaluation.

use thiserror::Error;

/// The expression could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("syntax error at offset {pos}: {msg}")]
    Syntax { pos: usize, msg: String },
    #[error("unknown function '{0}'")]
    UnknownFunction(String),
    #[error("function '{name}' takes {expected} argument(s), got {got}")]
    Arity {
        name: String,
        expected: String,
        got: usize,
    },
    #[error("unknown environment variable '%{0}'")]
    UnknownVariable(String),
    #[error("invalid literal: {0}")]
    InvalidLiteral(String),
    #[error("invalid regular expression: {0}")]
    InvalidRegex(String),
    #[error("expression nested deeper than {0} levels")]
    TooDeep(usize),
}

/// Evaluation failed (type errors, cardinality errors, unsupported features).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    #[error("expected a single item for {0}, got a collection of {1}")]
    NotSingleton(&'static str, usize),
    #[error("type error: {0}")]
    Type(String),
    #[error("arithmetic overflow")]
    Overflow,
    #[error("invalid regular expression: {0}")]
    InvalidRegex(String),
    #[error("'{0}' is not supported by this evaluator")]
    Unsupported(String),
    #[error("evaluation exceeded its work budget")]
    BudgetExceeded,
    #[error("{0}")]
    Other(String),
}
