//! Parses one source into an [`ast::File`].
//!
//! Takes a [`Source`] and its [`FileId`], gives the AST or one syntax diagnostic
//! saying what was expected. **Invariant:** `pest` types never leave this module.
#![allow(clippy::unwrap_used)] // the grammar guarantees the shapes unwrapped here

use pest::Parser;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};

use crate::ast::{self, BinaryOp, NumberKind, UnaryOp};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{FileId, Span};

pub mod lex;
mod recover;

pub use recover::{Damage, Recovered};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/bma.pest"]
struct BmaParser;

/// Parses `text` (the contents of file `file`) into a syntax tree.
pub fn parse(file: FileId, text: &str) -> Result<ast::File, Diagnostic> {
    let pairs = BmaParser::parse(Rule::file, text).map_err(|e| syntax_error(file, text, e))?;
    build(file, text, pairs)
}

/// The tree of a file that parses.
fn build(file: FileId, text: &str, pairs: pest::iterators::Pairs<'_, Rule>) -> Result<ast::File, Diagnostic> {
    let (depth, start) = deepest(&pairs);
    if depth > MAX_NESTING {
        let end = start + token_len(text.get(start..).unwrap_or("")).max(1);
        return Err(nested_too_deeply(Span::new(file, start, end.min(text.len()))));
    }
    let b = Builder { file, text, full: text, base: 0, pratt: pratt() };
    let file_pair = pairs.into_iter().next().unwrap();
    let items = children(file_pair).filter(|p| p.as_rule() != Rule::EOI).map(|p| b.item(p)).collect();
    Ok(ast::File { items })
}

/// Parses `text` as [`parse`] does and, when it has syntax errors, parses it again item by
/// item and a broken experiment section by section (`recover`): the items that parse, and
/// one error per broken item or section. A file without errors gives its whole tree and no
/// error; a file nested too deeply gives no tree and that error.
pub fn parse_recovering(file: FileId, text: &str) -> Recovered {
    match BmaParser::parse(Rule::file, text) {
        Ok(pairs) => match build(file, text, pairs) {
            Ok(tree) => Recovered { file: tree, ..Recovered::default() },
            Err(d) => Recovered { errors: vec![d], ..Recovered::default() },
        },
        Err(e) => recover::recover(file, text, syntax_error(file, text, e)),
    }
}

/// Parses `text` as one expression, as the command line writes values (`--strategy
/// tpe(startup: 5)`, `--set lr=1e-3`); the file id of its spans is 0.
pub fn parse_expr(text: &str) -> Result<ast::Expr, Diagnostic> {
    let file = FileId(0);
    let pairs = BmaParser::parse(Rule::expression, text).map_err(|e| syntax_error(file, text, e))?;
    let (depth, start) = deepest(&pairs);
    if depth > MAX_NESTING {
        let end = start + token_len(text.get(start..).unwrap_or("")).max(1);
        return Err(nested_too_deeply(Span::new(file, start, end.min(text.len()))));
    }
    let b = Builder { file, text, full: text, base: 0, pratt: pratt() };
    let expr = children(pairs.into_iter().next().unwrap()).find(|p| p.as_rule() == Rule::expr).unwrap();
    Ok(b.expr(expr))
}

/// How deeply a file may nest, counted in syntax-tree levels (a bracket or a block is a few) plus
/// the operators of each operator chain (`a + b + c` is a tree two deep). Every pass after
/// parsing recurses over the tree; a file nested deeper is refused here rather than overflowing
/// the stack there. The examples and the standard library stay under 40.
pub const MAX_NESTING: usize = 400;

fn nested_too_deeply(span: Span) -> Diagnostic {
    Diagnostic::error(
        Code::SyntaxError,
        "nested too deeply",
        span,
        format!("more than {MAX_NESTING} levels of blocks, brackets and operators"),
    )
    .with_help("split it up with `let` definitions, functions or blocks")
}

/// The depth of the deepest syntax node (as [`MAX_NESTING`] counts it) and where the first node
/// of that depth starts: one pass over pest's token stream, no recursion.
fn deepest(pairs: &pest::iterators::Pairs<'_, Rule>) -> (usize, usize) {
    use pest::Token;
    // Per open node: its depth, and the operators among its children so far.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut max = (0, 0);
    for token in pairs.clone().tokens() {
        match token {
            Token::Start { pos, .. } => {
                let depth = open.last().map_or(1, |&(d, ops)| d + 1 + ops);
                if depth > max.0 {
                    max = (depth, pos.pos());
                }
                open.push((depth, 0));
            }
            Token::End { rule, .. } => {
                open.pop();
                if is_operator(rule)
                    && let Some(parent) = open.last_mut()
                {
                    parent.1 += 1;
                }
            }
        }
    }
    max
}

/// The deepest nesting of a file that parses (see [`MAX_NESTING`]).
pub fn nesting(text: &str) -> Option<usize> {
    BmaParser::parse(Rule::file, text).ok().map(|pairs| deepest(&pairs).0)
}

/// Rules the Pratt parser turns into a level of the expression tree.
fn is_operator(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::op_or
            | Rule::op_and
            | Rule::op_not
            | Rule::op_eq
            | Rule::op_ne
            | Rule::op_lt
            | Rule::op_le
            | Rule::op_gt
            | Rule::op_ge
            | Rule::op_add
            | Rule::op_sub
            | Rule::op_mul
            | Rule::op_div
            | Rule::op_rem
            | Rule::op_neg
            | Rule::op_pow
            | Rule::call_args
            | Rule::field
    )
}

fn pratt() -> PrattParser<Rule> {
    PrattParser::new()
        .op(Op::infix(Rule::op_or, Assoc::Left))
        .op(Op::infix(Rule::op_and, Assoc::Left))
        .op(Op::prefix(Rule::op_not))
        .op(Op::infix(Rule::op_eq, Assoc::Left)
            | Op::infix(Rule::op_ne, Assoc::Left)
            | Op::infix(Rule::op_lt, Assoc::Left)
            | Op::infix(Rule::op_le, Assoc::Left)
            | Op::infix(Rule::op_gt, Assoc::Left)
            | Op::infix(Rule::op_ge, Assoc::Left))
        .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
        .op(Op::infix(Rule::op_mul, Assoc::Left)
            | Op::infix(Rule::op_div, Assoc::Left)
            | Op::infix(Rule::op_rem, Assoc::Left))
        .op(Op::prefix(Rule::op_neg))
        .op(Op::infix(Rule::op_pow, Assoc::Right))
        .op(Op::postfix(Rule::call_args) | Op::postfix(Rule::field))
}

fn is_punct(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::lbrace
            | Rule::rbrace
            | Rule::lparen
            | Rule::rparen
            | Rule::lbracket
            | Rule::rbracket
            | Rule::comma
            | Rule::colon
            | Rule::dot
            | Rule::path_sep
            | Rule::assign_op
            | Rule::arrow
            | Rule::fat_arrow
    ) || rule_is_keyword(rule)
}

fn rule_is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_use
            | Rule::kw_block
            | Rule::kw_fn
            | Rule::kw_experiment
            | Rule::kw_when
            | Rule::kw_let
            | Rule::kw_in
            | Rule::kw_repeat
            | Rule::kw_match
            | Rule::kw_if
            | Rule::kw_else
            | Rule::kw_residual
            | Rule::kw_parallel
            | Rule::kw_maximize
            | Rule::kw_minimize
            | Rule::kw_require
            | Rule::kw_step
            | Rule::kw_on
    )
}

/// The meaningful children of a pair: punctuation and plain keywords dropped.
fn children(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !is_punct(p.as_rule()))
}

struct Builder<'t> {
    file: FileId,
    /// The text pest parsed: the whole file, or one item or section of it (`recover`).
    text: &'t str,
    /// The whole file, which `text` starts at byte `base` of (doc comments are read here).
    full: &'t str,
    base: usize,
    pratt: PrattParser<Rule>,
}

impl Builder<'_> {
    /// The pair's span without the whitespace and comments pest's implicit
    /// `WHITESPACE` leaves at the end of a rule that ends in `*` or `?`.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.base + s.start(), self.base + trimmed_end(self.text, pair))
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> ast::Ident {
        ast::Ident { name: pair.as_str().to_string(), span: self.span(&pair) }
    }

    fn doc(&self, start: usize) -> Option<String> {
        doc_before(self.full, self.base + start)
    }

    fn item(&self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        let doc = self.doc(pair.as_span().start());
        match pair.as_rule() {
            Rule::use_item => {
                let mut module = Vec::new();
                let mut names = Vec::new();
                for p in children(pair) {
                    match p.as_rule() {
                        Rule::ident => module.push(self.ident(p)),
                        Rule::use_list => names.extend(children(p).map(|i| self.ident(i))),
                        _ => {}
                    }
                }
                if names.is_empty() && module.len() > 1 {
                    names.extend(module.pop());
                }
                ast::Item::Use(ast::Use { module, names, span })
            }
            Rule::block_item => {
                let mut it = children(pair);
                let name = self.ident(it.next().unwrap());
                let mut params = Vec::new();
                let mut body = None;
                for p in it {
                    match p.as_rule() {
                        Rule::param_decl => params.push(self.param_decl(p)),
                        Rule::model_body => body = Some(self.body(p)),
                        _ => {}
                    }
                }
                ast::Item::Block(ast::Block { name, params, body: body.unwrap(), doc, span })
            }
            Rule::fn_item => {
                let mut it = children(pair);
                let name = self.ident(it.next().unwrap());
                let mut params = Vec::new();
                let mut ret = None;
                let mut body = None;
                for p in it {
                    match p.as_rule() {
                        Rule::param_decl => params.push(self.param_decl(p)),
                        Rule::type_name => ret = Some((type_name(p.as_str()), self.span(&p))),
                        Rule::expr => body = Some(self.expr(p)),
                        _ => {}
                    }
                }
                ast::Item::Fn(ast::FnDef { name, params, ret, body: body.unwrap(), doc, span })
            }
            Rule::experiment => {
                let mut it = children(pair);
                let name = self.ident(it.next().unwrap());
                let sections = it.map(|p| self.section(p)).collect();
                ast::Item::Experiment(ast::Experiment { name, sections, doc, span })
            }
            r => unreachable!("item {r:?}"),
        }
    }

    fn param_decl(&self, pair: Pair<'_, Rule>) -> ast::ParamDecl {
        let span = self.span(&pair);
        let mut it = children(pair);
        let name = self.ident(it.next().unwrap());
        let mut ty = None;
        let mut default = None;
        for p in it {
            match p.as_rule() {
                Rule::type_name => ty = Some((type_name(p.as_str()), self.span(&p))),
                Rule::expr => default = Some(self.expr(p)),
                _ => {}
            }
        }
        ast::ParamDecl { name, ty, default, span }
    }

    fn section(&self, pair: Pair<'_, Rule>) -> ast::Section {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut it =
            pair.into_inner().filter(|p| !matches!(p.as_rule(), Rule::lbrace | Rule::rbrace | Rule::assign_op));
        let kw = it.next().unwrap();
        let keyword = self.span(&kw);
        let (kind, body) = match rule {
            Rule::data_section => (ast::SectionKind::Data, ast::SectionBody::Data(self.expr(it.next().unwrap()))),
            Rule::space_section => {
                (ast::SectionKind::Space, ast::SectionBody::Space(it.map(|p| self.space_item(p)).collect()))
            }
            Rule::model_section => (ast::SectionKind::Model, ast::SectionBody::Model(self.body(it.next().unwrap()))),
            Rule::train_section => {
                (ast::SectionKind::Train, ast::SectionBody::Assigns(it.map(|p| self.assign(p)).collect()))
            }
            Rule::search_section => {
                (ast::SectionKind::Search, ast::SectionBody::Assigns(it.map(|p| self.assign(p)).collect()))
            }
            Rule::report_section => {
                (ast::SectionKind::Report, ast::SectionBody::Assigns(it.map(|p| self.assign(p)).collect()))
            }
            Rule::average_section => {
                (ast::SectionKind::Average, ast::SectionBody::Average(it.map(|p| self.expr(p)).collect()))
            }
            Rule::objective_section => {
                (ast::SectionKind::Objective, ast::SectionBody::Objective(it.map(|p| self.objective_item(p)).collect()))
            }
            Rule::trial_section => {
                (ast::SectionKind::Trial, ast::SectionBody::Trial(it.map(|p| self.trial_item(p)).collect()))
            }
            r => unreachable!("section {r:?}"),
        };
        ast::Section { kind, keyword, body, span }
    }

    fn trial_item(&self, pair: Pair<'_, Rule>) -> ast::TrialItem {
        if pair.as_rule() != Rule::record_assign {
            return ast::TrialItem::Assign(self.assign(pair));
        }
        let span = self.span(&pair);
        let mut it = children(pair);
        let key = self.ident(it.next().unwrap());
        let fields = it
            .filter(|p| p.as_rule() == Rule::record_field)
            .map(|f| {
                let mut f = children(f);
                let name = self.ident(f.next().unwrap());
                (name, self.expr(f.next().unwrap()))
            })
            .collect();
        ast::TrialItem::Record { key, fields, span }
    }

    fn assign(&self, pair: Pair<'_, Rule>) -> ast::Assign {
        let span = self.span(&pair);
        let mut it = children(pair);
        let key = self.ident(it.next().unwrap());
        let value = self.expr(it.next().unwrap());
        ast::Assign { key, value, span }
    }

    fn objective_item(&self, pair: Pair<'_, Rule>) -> ast::ObjectiveItem {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::maximize | Rule::minimize => {
                let direction =
                    if pair.as_rule() == Rule::maximize { ast::Direction::Maximize } else { ast::Direction::Minimize };
                let mut it = children(pair).peekable();
                let name = it
                    .next_if(|p| p.as_rule() == Rule::objective_name)
                    .map(|p| self.ident(children(p).next().unwrap()));
                let metric = self.expr(it.next().unwrap());
                let on = it.next().map(|p| self.ident(children(p).next().unwrap()));
                ast::ObjectiveItem::Goal { direction, name, metric, on, span }
            }
            Rule::require => ast::ObjectiveItem::Require { expr: self.expr(children(pair).next().unwrap()), span },
            Rule::assign => ast::ObjectiveItem::Assign(self.assign(pair)),
            r => unreachable!("objective {r:?}"),
        }
    }

    fn space_item(&self, pair: Pair<'_, Rule>) -> ast::SpaceItem {
        let span = self.span(&pair);
        let doc = self.doc(pair.as_span().start());
        match pair.as_rule() {
            Rule::param_item => {
                let mut it = children(pair);
                let name = self.ident(it.next().unwrap());
                let mut ty = None;
                let mut domain = None;
                for p in it {
                    match p.as_rule() {
                        Rule::type_name => ty = Some((type_name(p.as_str()), self.span(&p))),
                        Rule::choice | Rule::range => domain = Some(self.domain(p)),
                        _ => {}
                    }
                }
                ast::SpaceItem::Param { name, ty, domain: domain.unwrap(), doc, span }
            }
            Rule::const_item => {
                let mut it = children(pair);
                let name = self.ident(it.next().unwrap());
                ast::SpaceItem::Const { name, value: self.expr(it.next().unwrap()), doc, span }
            }
            Rule::let_item => {
                let mut it = children(pair);
                let name = self.ident(it.next().unwrap());
                ast::SpaceItem::Let { name, value: self.expr(it.next().unwrap()), doc, span }
            }
            Rule::when_item => {
                let mut it = children(pair);
                let cond = self.expr(it.next().unwrap());
                ast::SpaceItem::When { cond, items: it.map(|p| self.space_item(p)).collect(), span }
            }
            r => unreachable!("space item {r:?}"),
        }
    }

    fn domain(&self, pair: Pair<'_, Rule>) -> ast::Domain {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::choice => ast::Domain::Choice { values: children(pair).map(|p| self.expr(p)).collect(), span },
            _ => {
                let mut it = children(pair);
                let lo = self.expr(it.next().unwrap());
                let inclusive = it.next().unwrap().as_str() == "..=";
                let hi = self.expr(it.next().unwrap());
                let mut log = None;
                let mut step = None;
                for m in it {
                    match m.as_rule() {
                        Rule::log_mod => log = Some(self.span(&m)),
                        _ => step = Some(self.expr(children(m).next().unwrap())),
                    }
                }
                ast::Domain::Range { lo, hi, inclusive, log, step, span }
            }
        }
    }

    fn body(&self, pair: Pair<'_, Rule>) -> ast::Body {
        let span = self.span(&pair);
        ast::Body { stmts: children(pair).map(|p| self.stmt(p)).collect(), span }
    }

    fn stmt(&self, pair: Pair<'_, Rule>) -> ast::Stmt {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::chain => ast::Stmt::Chain(self.chain(pair)),
            Rule::let_node => {
                let mut it = children(pair);
                let name = self.ident(it.next().unwrap());
                ast::Stmt::Let { name, chain: self.chain(it.next().unwrap()), span }
            }
            Rule::repeat_stmt => {
                let mut it = children(pair);
                let head = it.next().unwrap();
                let body = self.body(it.next().unwrap());
                if head.as_rule() == Rule::repeat_range {
                    let mut h = children(head);
                    let var = self.ident(h.next().unwrap());
                    let from = self.expr(h.next().unwrap());
                    let op = h.next().unwrap();
                    let mut count = self.expr(h.next().unwrap());
                    if op.as_str() == "..=" {
                        // `a..=b` runs to b inclusive: the exclusive end is b + 1.
                        let one = ast::Expr { kind: ast::ExprKind::Number(1.0, NumberKind::Int), span: count.span };
                        let s = count.span;
                        count = ast::Expr {
                            kind: ast::ExprKind::Binary(BinaryOp::Add, Box::new(count), Box::new(one)),
                            span: s,
                        };
                    }
                    ast::Stmt::Repeat { var: Some(var), from: Some(from), count, body, span }
                } else {
                    ast::Stmt::Repeat { var: None, from: None, count: self.expr(head), body, span }
                }
            }
            Rule::match_stmt => {
                let mut it = children(pair);
                let scrutinee = self.expr(it.next().unwrap());
                let arms = it
                    .map(|arm| {
                        let mut a = children(arm);
                        let pattern = self.pattern(a.next().unwrap());
                        ast::StmtArm { pattern, body: self.body(a.next().unwrap()) }
                    })
                    .collect();
                ast::Stmt::Match { scrutinee, arms, span }
            }
            Rule::if_stmt => {
                let mut it = children(pair);
                let cond = self.expr(it.next().unwrap());
                let then = self.body(it.next().unwrap());
                let otherwise = it.next().map(|p| match p.as_rule() {
                    Rule::if_stmt => {
                        let s = self.span(&p);
                        ast::Body { stmts: vec![self.stmt(p)], span: s }
                    }
                    _ => self.body(p),
                });
                ast::Stmt::If { cond, then, otherwise, span }
            }
            Rule::residual_stmt => ast::Stmt::Residual { body: self.body(children(pair).next().unwrap()), span },
            Rule::parallel_stmt => {
                let mut it = children(pair);
                let merge = self.ident(it.next().unwrap());
                ast::Stmt::Parallel { merge, branches: it.map(|p| self.body(p)).collect(), span }
            }
            r => unreachable!("stmt {r:?}"),
        }
    }

    fn chain(&self, pair: Pair<'_, Rule>) -> ast::Chain {
        let span = self.span(&pair);
        let links = children(pair)
            .map(|call| {
                let span = self.span(&call);
                let mut it = children(call);
                let name = self.ident(it.next().unwrap());
                let args = it.next().map(|a| self.args(a));
                ast::Call { name, args, span }
            })
            .collect();
        ast::Chain { links, span }
    }

    fn args(&self, pair: Pair<'_, Rule>) -> Vec<ast::Arg> {
        children(pair)
            .map(|arg| {
                let span = self.span(&arg);
                let mut name = None;
                let mut value = None;
                for p in children(arg) {
                    match p.as_rule() {
                        Rule::arg_name => name = Some(self.ident(children(p).next().unwrap())),
                        _ => value = Some(self.expr(p)),
                    }
                }
                ast::Arg { name, value: value.unwrap(), span }
            })
            .collect()
    }

    fn pattern(&self, pair: Pair<'_, Rule>) -> ast::Pattern {
        let span = self.span(&pair);
        let alts = pair
            .into_inner()
            .filter(|p| p.as_rule() != Rule::EOI)
            .map(|p| {
                let s = self.span(&p);
                match p.as_rule() {
                    Rule::wildcard => ast::PatternAlt::Wildcard(s),
                    Rule::number => {
                        let (v, _) = number(p);
                        ast::PatternAlt::Number(v, s)
                    }
                    Rule::string => ast::PatternAlt::Str(unescape(children(p).next().map_or("", |i| i.as_str())), s),
                    Rule::boolean => ast::PatternAlt::Bool(p.as_str() == "true", s),
                    _ => ast::PatternAlt::Name(self.ident(p)),
                }
            })
            .collect();
        ast::Pattern { alts, span }
    }

    fn expr(&self, pair: Pair<'_, Rule>) -> ast::Expr {
        self.pratt_expr(children(pair))
    }

    fn pratt_expr<'i>(&self, pairs: impl Iterator<Item = Pair<'i, Rule>>) -> ast::Expr {
        self.climb(pairs)
    }

    fn climb<'i>(&self, v: impl Iterator<Item = Pair<'i, Rule>>) -> ast::Expr {
        self.pratt
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, rhs| {
                let span = self.span(&op).to(rhs.span);
                let op = if op.as_rule() == Rule::op_neg { UnaryOp::Neg } else { UnaryOp::Not };
                ast::Expr { kind: ast::ExprKind::Unary(op, Box::new(rhs)), span }
            })
            .map_postfix(|lhs, op| {
                let span = lhs.span.to(self.span(&op));
                match op.as_rule() {
                    Rule::call_args => ast::Expr { kind: ast::ExprKind::Call(Box::new(lhs), self.args(op)), span },
                    _ => {
                        let name = self.ident(children(op).next().unwrap());
                        ast::Expr { kind: ast::ExprKind::Field(Box::new(lhs), name), span }
                    }
                }
            })
            .map_infix(|lhs, op, rhs| {
                let span = lhs.span.to(rhs.span);
                let op = match op.as_rule() {
                    Rule::op_or => BinaryOp::Or,
                    Rule::op_and => BinaryOp::And,
                    Rule::op_eq => BinaryOp::Eq,
                    Rule::op_ne => BinaryOp::Ne,
                    Rule::op_lt => BinaryOp::Lt,
                    Rule::op_le => BinaryOp::Le,
                    Rule::op_gt => BinaryOp::Gt,
                    Rule::op_ge => BinaryOp::Ge,
                    Rule::op_add => BinaryOp::Add,
                    Rule::op_sub => BinaryOp::Sub,
                    Rule::op_mul => BinaryOp::Mul,
                    Rule::op_div => BinaryOp::Div,
                    Rule::op_rem => BinaryOp::Rem,
                    _ => BinaryOp::Pow,
                };
                ast::Expr { kind: ast::ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span }
            })
            .parse(v)
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> ast::Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::number => {
                let (v, k) = number(pair);
                ast::ExprKind::Number(v, k)
            }
            Rule::string => ast::ExprKind::Str(unescape(children(pair).next().map_or("", |i| i.as_str()))),
            Rule::boolean => ast::ExprKind::Bool(pair.as_str() == "true"),
            Rule::ident => ast::ExprKind::Name(pair.as_str().to_string()),
            Rule::list => ast::ExprKind::List(children(pair).map(|p| self.expr(p)).collect()),
            Rule::paren => {
                // The parentheses belong to the span, so `not (k == 2)` quotes back whole.
                let mut inner = self.expr(children(pair.clone()).next().unwrap());
                inner.span = span;
                return inner;
            }
            Rule::if_expr => {
                let mut it = children(pair);
                let c = self.expr(it.next().unwrap());
                let a = self.expr(it.next().unwrap());
                let b = it.next().unwrap();
                let b = if b.as_rule() == Rule::if_expr { self.primary(b) } else { self.expr(b) };
                ast::ExprKind::If(Box::new(c), Box::new(a), Box::new(b))
            }
            Rule::match_expr => {
                let mut it = children(pair);
                let s = self.expr(it.next().unwrap());
                let arms = it
                    .map(|arm| {
                        let mut a = children(arm);
                        let pattern = self.pattern(a.next().unwrap());
                        ast::ExprArm { pattern, value: self.expr(a.next().unwrap()) }
                    })
                    .collect();
                ast::ExprKind::Match(Box::new(s), arms)
            }
            r => unreachable!("primary {r:?}"),
        };
        ast::Expr { kind, span }
    }
}

fn type_name(s: &str) -> ast::TypeName {
    match s {
        "int" => ast::TypeName::Int,
        "float" => ast::TypeName::Float,
        "bool" => ast::TypeName::Bool,
        "layer" => ast::TypeName::Layer,
        "symbol" => ast::TypeName::Symbol,
        _ => ast::TypeName::String,
    }
}

/// A number literal's value and kind; suffixes scale it (`60k`, `2ms` in seconds).
fn number(pair: Pair<'_, Rule>) -> (f64, NumberKind) {
    let text = pair.as_str();
    let suffix = pair.into_inner().find(|p| p.as_rule() == Rule::num_suffix).map(|p| p.as_str());
    let digits = &text[..text.len() - suffix.map_or(0, str::len)];
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let v: f64 = clean.parse().unwrap_or(f64::NAN);
    let written_int = !clean.contains(['.', 'e', 'E']);
    match suffix {
        None => (v, if written_int { NumberKind::Int } else { NumberKind::Float }),
        Some(s @ ("k" | "M")) => {
            let v = v * if s == "k" { 1e3 } else { 1e6 };
            (v, if v.fract() == 0.0 { NumberKind::Int } else { NumberKind::Float })
        }
        Some(s) => {
            let scale = match s {
                "us" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "min" => 60.0,
                _ => 3600.0,
            };
            (v * scale, NumberKind::Duration)
        }
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `///` lines directly above byte `start`, joined, if any.
pub fn doc_before(text: &str, start: usize) -> Option<String> {
    let before = text.get(..start)?;
    let mut lines: Vec<&str> = Vec::new();
    // Skip the indentation on the item's own line.
    let mut rest = before.trim_end_matches([' ', '\t']);
    if !(rest.is_empty() || rest.ends_with('\n')) {
        return None;
    }
    loop {
        rest = rest.strip_suffix('\n').unwrap_or(rest);
        let rest_trim = rest.strip_suffix('\r').unwrap_or(rest);
        let (head, line) = match rest_trim.rfind('\n') {
            Some(i) => (&rest_trim[..=i], &rest_trim[i + 1..]),
            None => ("", rest_trim),
        };
        let t = line.trim();
        if let Some(doc) = t.strip_prefix("///").filter(|_| !t.starts_with("////")) {
            lines.push(doc.strip_prefix(' ').unwrap_or(doc));
            rest = head;
            if rest.is_empty() {
                break;
            }
        } else {
            break;
        }
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}

fn syntax_error(file: FileId, text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let (start, end) = match e.location {
        InputLocation::Pos(p) => (p, p),
        InputLocation::Span((a, b)) => (a, b),
    };
    let start = start.min(text.len());
    // Point at the offending token (or the end of input), not an empty place.
    let end = if end > start { end } else { start + token_len(text.get(start..).unwrap_or("")) };
    let found = match text[start..end].trim() {
        "" if start >= text.trim_end().len() => "end of file".to_string(),
        "" => "something else".to_string(),
        t => format!("`{}`", t.chars().take(24).collect::<String>()),
    };
    if let ErrorVariant::CustomError { message } = &e.variant
        && message.ends_with("limit reached")
    {
        // pest's guard against overflowing the stack ("stack limit reached"): deep nesting.
        return nested_too_deeply(Span::new(file, start, end.min(text.len())));
    }
    let expected = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort_unstable();
            names.dedup();
            names
        }
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let label =
        if expected.is_empty() { "not expected here".to_string() } else { format!("expected {}", join_or(&expected)) };
    let d = Diagnostic::error(Code::SyntaxError, message, Span::new(file, start, end), label);
    match hint(text, start) {
        Some(help) => d.with_help(help),
        None => d,
    }
}

/// The length in bytes of the token that starts `rest`: a word, a string, a
/// comment opener, an operator, or one character.
fn token_len(rest: &str) -> usize {
    let Some(first) = rest.chars().next() else { return 0 };
    if first.is_ascii_alphanumeric() || first == '_' {
        return rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    }
    if first == '"' {
        let line = rest.find('\n').unwrap_or(rest.len());
        return rest[1..line].find('"').map_or(line, |i| i + 2);
    }
    const OPS: [&str; 12] = ["..=", "//", "/*", "::", "->", "=>", "==", "!=", "<=", ">=", "..", "*/"];
    OPS.iter().find(|op| rest.starts_with(**op)).map_or(first.len_utf8(), |op| op.len())
}

/// Words that can never be names (`grammar/bma.pest`'s `keyword`).
pub const KEYWORDS: [&str; 19] = [
    "use",
    "block",
    "fn",
    "experiment",
    "when",
    "let",
    "in",
    "repeat",
    "match",
    "if",
    "else",
    "maximize",
    "minimize",
    "require",
    "and",
    "or",
    "not",
    "true",
    "false",
];

/// Help for the mistakes that pest's "expected ..." explains badly.
fn hint(text: &str, start: usize) -> Option<String> {
    let before = text.get(..start)?;
    let rest = text.get(start..)?;
    let first = rest.chars().next()?;
    match lex::skip_at(text, start) {
        Some(skip) if skip.lexeme == lex::Lexeme::BlockComment && !skip.closed => {
            return Some("this `/*` comment is never closed with `*/`".into());
        }
        Some(skip) if skip.lexeme == lex::Lexeme::String && !skip.closed => {
            return Some("this string is never closed: strings end with `\"` on the same line".into());
        }
        _ => {}
    }
    if !first.is_ascii() {
        return Some(
            "names are ASCII letters, digits and `_`; other characters only go in strings and comments".into(),
        );
    }
    let word = &rest[..token_len(rest)];
    if before.ends_with(|c: char| c.is_ascii_digit() || c == '.') && first.is_ascii_alphabetic() {
        let number = before.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')).next().unwrap_or("");
        return Some(format!(
            "`{number}{word}` is not a number: the suffixes are `k` (thousands), `M` (millions) and the durations `us`, `ms`, `s`, `min`, `h`"
        ));
    }
    let previous = before.trim_end().rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("");
    const SECTIONS: [&str; 8] = ["data", "space", "model", "train", "objective", "search", "average", "report"];
    if first == '{' && SECTIONS.contains(&previous) {
        return Some(format!("`{previous}` starts a section here; is a `}}` missing before it?"));
    }
    if KEYWORDS.contains(&word) {
        return Some(format!("`{word}` is a keyword and cannot be used as a name"));
    }
    None
}

/// Where `pair` really ends: at its last token, when only trivia follows it.
fn trimmed_end(text: &str, pair: &Pair<'_, Rule>) -> usize {
    let end = pair.as_span().end();
    let Some(last) = pair.clone().into_inner().last() else { return end };
    let inner = trimmed_end(text, &last);
    match text.get(inner..end) {
        Some(gap) if is_trivia(gap) => inner,
        _ => end,
    }
}

/// Whether `s` holds only whitespace and comments (closed ones).
fn is_trivia(s: &str) -> bool {
    let mut i = 0;
    loop {
        i = s.len() - s[i..].trim_start().len();
        if i == s.len() {
            return true;
        }
        match lex::skip_at(s, i) {
            Some(skip) if skip.lexeme != lex::Lexeme::String && skip.closed => i = skip.end,
            _ => return false,
        }
    }
}

fn join_or(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] if init.len() < 6 => format!("{} or {last}", init.join(", ")),
        _ => format!("{}, ...", names[..6].join(", ")),
    }
}

/// How a rule is named in "expected ..." messages; `None` hides it.
fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::comma => "`,`",
        Rule::colon => "`:`",
        Rule::dot => "`.`",
        Rule::path_sep => "`::`",
        Rule::assign_op => "`=`",
        Rule::arrow => "`->`",
        Rule::fat_arrow => "`=>`",
        Rule::range_op => "`..` or `..=`",
        Rule::ident => "a name",
        Rule::expr | Rule::number | Rule::string | Rule::boolean | Rule::list | Rule::paren => "an expression",
        Rule::if_expr | Rule::match_expr | Rule::prefix_op | Rule::op_neg | Rule::op_not => "an expression",
        Rule::infix_op
        | Rule::op_or
        | Rule::op_and
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_mul
        | Rule::op_div
        | Rule::op_rem
        | Rule::op_pow => "an operator",
        Rule::call_args | Rule::postfix_op => "`(`",
        Rule::field => "`.`",
        Rule::type_name => "a type (`int`, `float`, `bool`, ...)",
        Rule::kw_in => "`in`",
        Rule::kw_else => "`else`",
        Rule::use_item | Rule::kw_use => "`use`",
        Rule::block_item | Rule::kw_block => "`block`",
        Rule::fn_item | Rule::kw_fn => "`fn`",
        Rule::experiment | Rule::kw_experiment => "`experiment`",
        Rule::data_section | Rule::space_section | Rule::model_section | Rule::train_section => "a section",
        Rule::objective_section | Rule::search_section | Rule::average_section | Rule::report_section => "a section",
        Rule::param_item | Rule::const_item | Rule::let_item | Rule::when_item => "a parameter",
        Rule::domain | Rule::choice | Rule::range => "a domain (`{a, b}` or `lo..hi`)",
        Rule::log_mod => "`log`",
        Rule::step_mod => "`step`",
        Rule::repeat_stmt | Rule::match_stmt | Rule::if_stmt | Rule::residual_stmt | Rule::parallel_stmt => "a layer",
        Rule::let_node | Rule::chain | Rule::layer_call => "a layer",
        Rule::model_body => "`{`",
        Rule::maximize | Rule::minimize | Rule::require => "`maximize`, `minimize`, `require` or `rank`",
        Rule::assign => "a setting (`name = value`)",
        Rule::on_split => "`on`",
        Rule::pattern | Rule::wildcard => "a pattern",
        Rule::stmt_arm | Rule::expr_arm => "a match arm",
        Rule::param_decl => "a parameter",
        Rule::EOI => "end of file",
        Rule::use_list => "`{`",
        Rule::arg | Rule::arg_name => "an argument",
        Rule::repeat_range => "a name",
        _ => return None,
    })
}
