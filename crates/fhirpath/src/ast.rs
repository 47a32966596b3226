//! Compiled expression tree.

use regex::Regex;

use crate::value::Item;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// A type name as written in `is`, `as` and `ofType`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TypeSpec {
    /// `System`, `FHIR` or none.
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Var {
    Context,
    Resource,
    RootResource,
    /// Variables with a fixed string value (`%ucum`, `%sct`, `%vs-x`...).
    Const(String),
}

#[derive(Debug)]
pub(crate) struct Call {
    pub func: Func,
    pub args: Vec<Expr>,
    /// Pre-compiled pattern when the first argument is a string literal.
    pub regex: Option<Regex>,
    /// Type argument of `is`, `as`, `ofType`.
    pub type_arg: Option<TypeSpec>,
}

#[derive(Debug)]
pub(crate) enum Expr {
    Literal(Item<'static>),
    Empty,
    This,
    Index,
    Total,
    Var(Var),
    /// Child navigation; `None` source means the current focus (`$this`).
    Member(Option<Box<Expr>>, String),
    Call(Option<Box<Expr>>, Box<Call>),
    Indexer(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Is(Box<Expr>, TypeSpec),
    As(Box<Expr>, TypeSpec),
    /// A subexpression independent of the current item inside a lambda,
    /// computed once per evaluation (see `optimize`).
    Invariant(Box<Expr>),
}

macro_rules! functions {
    ($($variant:ident = $name:literal ($min:literal, $max:literal)),* $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Func { $($variant),* }

        impl Func {
            /// Looks a function up by name: (function, min args, max args).
            pub(crate) fn lookup(name: &str) -> Option<(Func, usize, usize)> {
                match name {
                    $($name => Some((Func::$variant, $min, $max)),)*
                    _ => None,
                }
            }

            pub(crate) fn name(self) -> &'static str {
                match self { $(Func::$variant => $name),* }
            }
        }
    };
}

functions! {
    Empty = "empty"(0, 0),
    Exists = "exists"(0, 1),
    All = "all"(1, 1),
    AllTrue = "allTrue"(0, 0),
    AnyTrue = "anyTrue"(0, 0),
    AllFalse = "allFalse"(0, 0),
    AnyFalse = "anyFalse"(0, 0),
    SubsetOf = "subsetOf"(1, 1),
    SupersetOf = "supersetOf"(1, 1),
    Count = "count"(0, 0),
    Distinct = "distinct"(0, 0),
    IsDistinct = "isDistinct"(0, 0),
    Where = "where"(1, 1),
    Select = "select"(1, 1),
    Repeat = "repeat"(1, 1),
    OfType = "ofType"(1, 1),
    Is = "is"(1, 1),
    As = "as"(1, 1),
    Type = "type"(0, 0),
    First = "first"(0, 0),
    Last = "last"(0, 0),
    Tail = "tail"(0, 0),
    Skip = "skip"(1, 1),
    Take = "take"(1, 1),
    Single = "single"(0, 0),
    Iif = "iif"(2, 3),
    Not = "not"(0, 0),
    HasValue = "hasValue"(0, 0),
    Children = "children"(0, 0),
    Descendants = "descendants"(0, 0),
    Trace = "trace"(1, 2),
    Matches = "matches"(1, 1),
    MatchesFull = "matchesFull"(1, 1),
    ReplaceMatches = "replaceMatches"(2, 2),
    StartsWith = "startsWith"(1, 1),
    EndsWith = "endsWith"(1, 1),
    Contains = "contains"(1, 1),
    Substring = "substring"(1, 2),
    IndexOf = "indexOf"(1, 1),
    Length = "length"(0, 0),
    Upper = "upper"(0, 0),
    Lower = "lower"(0, 0),
    Replace = "replace"(2, 2),
    Split = "split"(1, 1),
    Join = "join"(0, 1),
    Trim = "trim"(0, 0),
    ToChars = "toChars"(0, 0),
    ToString = "toString"(0, 0),
    ToInteger = "toInteger"(0, 0),
    ToDecimal = "toDecimal"(0, 0),
    ToBoolean = "toBoolean"(0, 0),
    ToDate = "toDate"(0, 0),
    ToDateTime = "toDateTime"(0, 0),
    ToTime = "toTime"(0, 0),
    ToQuantity = "toQuantity"(0, 1),
    ConvertsToString = "convertsToString"(0, 0),
    ConvertsToInteger = "convertsToInteger"(0, 0),
    ConvertsToDecimal = "convertsToDecimal"(0, 0),
    ConvertsToBoolean = "convertsToBoolean"(0, 0),
    ConvertsToDate = "convertsToDate"(0, 0),
    ConvertsToDateTime = "convertsToDateTime"(0, 0),
    ConvertsToTime = "convertsToTime"(0, 0),
    ConvertsToQuantity = "convertsToQuantity"(0, 1),
    Today = "today"(0, 0),
    Now = "now"(0, 0),
    TimeOfDay = "timeOfDay"(0, 0),
    Resolve = "resolve"(0, 0),
    Extension = "extension"(1, 1),
    MemberOf = "memberOf"(1, 1),
    ConformsTo = "conformsTo"(1, 1),
    HtmlChecks = "htmlChecks"(0, 0),
    Combine = "combine"(1, 1),
    Union = "union"(1, 1),
    Intersect = "intersect"(1, 1),
    Exclude = "exclude"(1, 1),
    Abs = "abs"(0, 0),
    Ceiling = "ceiling"(0, 0),
    Floor = "floor"(0, 0),
    Round = "round"(0, 1),
    Sqrt = "sqrt"(0, 0),
    Truncate = "truncate"(0, 0),
    Ln = "ln"(0, 0),
    Log = "log"(1, 1),
    Power = "power"(1, 1),
    Exp = "exp"(0, 0),
    Aggregate = "aggregate"(1, 2),
    Sort = "sort"(0, 8),
    Precision = "precision"(0, 0),
    LowBoundary = "lowBoundary"(0, 1),
    HighBoundary = "highBoundary"(0, 1),
    Comparable = "comparable"(1, 1),
    Encode = "encode"(1, 1),
    Decode = "decode"(1, 1),
    Escape = "escape"(1, 1),
    Unescape = "unescape"(1, 1),
}

impl Func {
    /// Functions whose arguments are evaluated per input item with `$this`
    /// bound to that item.
    pub(crate) fn is_lambda(self) -> bool {
        matches!(
            self,
            Func::Exists
                | Func::All
                | Func::Where
                | Func::Select
                | Func::Repeat
                | Func::Aggregate
                | Func::Sort
        )
    }
}
