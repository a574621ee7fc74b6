//! The typed, spanned syntax tree that `syntax` builds.
//!
//! It mirrors the text: nothing is resolved yet. Every node has a [`Span`].

use crate::source::Span;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Use(Use),
    Block(Block),
    Fn(FnDef),
    Experiment(Experiment),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `use std::blocks::{a, b}`: `module = [std, blocks]`, `names = [a, b]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    pub module: Vec<Ident>,
    pub names: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: Ident,
    pub params: Vec<ParamDecl>,
    pub body: Body,
    pub doc: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FnDef {
    pub name: Ident,
    pub params: Vec<ParamDecl>,
    pub ret: Option<(TypeName, Span)>,
    pub body: Expr,
    pub doc: Option<String>,
    pub span: Span,
}

/// A parameter of a block or fn.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: Option<(TypeName, Span)>,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeName {
    Int,
    Float,
    Bool,
    Layer,
    Symbol,
    String,
}

impl TypeName {
    pub fn as_str(self) -> &'static str {
        match self {
            TypeName::Int => "int",
            TypeName::Float => "float",
            TypeName::Bool => "bool",
            TypeName::Layer => "layer",
            TypeName::Symbol => "symbol",
            TypeName::String => "string",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub name: Ident,
    pub sections: Vec<Section>,
    pub doc: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Data,
    Space,
    Model,
    Train,
    Objective,
    Search,
    Average,
    Report,
    Trial,
}

impl SectionKind {
    pub const ALL: [SectionKind; 9] = [
        SectionKind::Data,
        SectionKind::Space,
        SectionKind::Model,
        SectionKind::Train,
        SectionKind::Objective,
        SectionKind::Search,
        SectionKind::Average,
        SectionKind::Report,
        SectionKind::Trial,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SectionKind::Data => "data",
            SectionKind::Space => "space",
            SectionKind::Model => "model",
            SectionKind::Train => "train",
            SectionKind::Objective => "objective",
            SectionKind::Search => "search",
            SectionKind::Average => "average",
            SectionKind::Report => "report",
            SectionKind::Trial => "trial",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub kind: SectionKind,
    /// The section's keyword.
    pub keyword: Span,
    pub body: SectionBody,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SectionBody {
    Data(Expr),
    Space(Vec<SpaceItem>),
    Model(Body),
    /// `train`, `search` and `report`: `key = value` lines.
    Assigns(Vec<Assign>),
    Objective(Vec<ObjectiveItem>),
    Average(Vec<Expr>),
    /// `trial`: `key = value` lines and `key = { NAME: value }` records.
    Trial(Vec<TrialItem>),
}

/// One line of `trial { }`.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialItem {
    Assign(Assign),
    /// `env = { KEY: "value", ... }`.
    Record {
        key: Ident,
        fields: Vec<(Ident, Expr)>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assign {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpaceItem {
    /// `name: type in domain`.
    Param { name: Ident, ty: Option<(TypeName, Span)>, domain: Domain, doc: Option<String>, span: Span },
    /// `name = value`.
    Const { name: Ident, value: Expr, doc: Option<String>, span: Span },
    /// `let name = expr`.
    Let { name: Ident, value: Expr, doc: Option<String>, span: Span },
    /// `when cond { items }`.
    When { cond: Expr, items: Vec<SpaceItem>, span: Span },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    Choice { values: Vec<Expr>, span: Span },
    Range { lo: Expr, hi: Expr, inclusive: bool, log: Option<Span>, step: Option<Expr>, span: Span },
}

impl Domain {
    pub fn span(&self) -> Span {
        match self {
            Domain::Choice { span, .. } | Domain::Range { span, .. } => *span,
        }
    }
}

/// A `{ ... }` of model statements.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Chain(Chain),
    Let {
        name: Ident,
        chain: Chain,
        span: Span,
    },
    Repeat {
        var: Option<Ident>,
        from: Option<Expr>,
        count: Expr,
        body: Body,
        span: Span,
    },
    Match {
        scrutinee: Expr,
        arms: Vec<StmtArm>,
        span: Span,
    },
    /// `if c { } else { }`; `else if` nests as an else body holding one `If`.
    If {
        cond: Expr,
        then: Body,
        otherwise: Option<Body>,
        span: Span,
    },
    Residual {
        body: Body,
        span: Span,
    },
    Parallel {
        merge: Ident,
        branches: Vec<Body>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StmtArm {
    pub pattern: Pattern,
    pub body: Body,
}

/// `a -> b(1) -> c`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub links: Vec<Call>,
    pub span: Span,
}

/// `name` or `name(args)` in a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Option<Vec<Arg>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Maximize,
    Minimize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ObjectiveItem {
    Goal {
        direction: Direction,
        /// `minimize loss = a^2 + b^2`: the name given to the objective, if any.
        name: Option<Ident>,
        metric: Expr,
        on: Option<Ident>,
        span: Span,
    },
    /// `require expr`; the checker insists on a comparison at the top.
    Require {
        expr: Expr,
        span: Span,
    },
    Assign(Assign),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub alts: Vec<PatternAlt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PatternAlt {
    Wildcard(Span),
    Name(Ident),
    Number(f64, Span),
    Str(String, Span),
    Bool(bool, Span),
}

impl PatternAlt {
    pub fn span(&self) -> Span {
        match self {
            PatternAlt::Wildcard(s) | PatternAlt::Number(_, s) | PatternAlt::Str(_, s) | PatternAlt::Bool(_, s) => *s,
            PatternAlt::Name(i) => i.span,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberKind {
    Int,
    Float,
    /// A duration; the value is in seconds.
    Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Number(f64, NumberKind),
    Str(String),
    Bool(bool),
    Name(String),
    List(Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Arg>),
    Field(Box<Expr>, Ident),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Match(Box<Expr>, Vec<ExprArm>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExprArm {
    pub pattern: Pattern,
    pub value: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Pow => "^",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
    }
}

impl Expr {
    /// The name, when this expression is a bare name.
    pub fn as_name(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Name(n) => Some(n),
            _ => None,
        }
    }

    /// Calls `f` on this expression and every sub-expression, parents first.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Number(..) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
            ExprKind::List(items) => items.iter().for_each(|e| e.walk(f)),
            ExprKind::Unary(_, e) | ExprKind::Field(e, _) => e.walk(f),
            ExprKind::Binary(_, a, b) => {
                a.walk(f);
                b.walk(f);
            }
            ExprKind::Call(callee, args) => {
                callee.walk(f);
                args.iter().for_each(|a| a.value.walk(f));
            }
            ExprKind::If(c, a, b) => {
                c.walk(f);
                a.walk(f);
                b.walk(f);
            }
            ExprKind::Match(s, arms) => {
                s.walk(f);
                arms.iter().for_each(|a| a.value.walk(f));
            }
        }
    }
}
