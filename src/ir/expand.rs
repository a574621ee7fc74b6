//! Expansion: a model template and one point of the space → a concrete [`SubModel`].
//!
//! Walks the template's statements (chains, `repeat`, `match`/`if`, `residual`,
//! `parallel`, `let` nodes, block calls) with the point's values in scope, and asks the
//! layer table (`ir::layers`) for each built-in layer. Expansion is deterministic: the
//! same point gives the same graph with the same node names.
//! **Invariant:** an `Ok` sub-model has valid shapes everywhere, and its `params`
//! and `flops` are the exact sums over its nodes.

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};

use super::layers::{ArgVal, Tokens, builtin_layer};
use super::submodel::{DataInfo, ExpandError, Layer, LayerKind, Padding, Shape, SubModel, fail, fmt_shape, kind_name};
use super::{CallValue, Env, Point, Program, Value, eval, pattern_matches};
use crate::ast;
use crate::catalogue;
use crate::diagnostic::Code;
use crate::source::Span;

mod multiply;

/// Loops longer than this are taken for a mistake.
const MAX_REPEAT: i64 = 10_000;
/// Graphs larger than this are refused.
const MAX_NODES: usize = 100_000;

/// Builds the model of `body` at `point` for `data`.
pub fn expand(program: &Program, body: &ast::Body, point: &Point, data: &DataInfo) -> Result<SubModel, ExpandError> {
    let mut x = Expander {
        program,
        data,
        graph: DiGraph::new(),
        counts: BTreeMap::new(),
        notes: Vec::new(),
        depth: 0,
        steps: Vec::new(),
    };
    let input = x.add(LayerKind::Input, data.shape.clone(), Vec::new(), 0, 0, body.span, false)?;
    let mut scope = Scope { vars: point.clone(), nodes: BTreeMap::new() };
    scope.nodes.insert("input".into(), input);
    let output = x.body(body, input, &mut scope)?;
    let params = x.graph.node_weights().map(|l| l.params).sum();
    let flops = x.graph.node_weights().map(|l| l.flops).sum();
    Ok(SubModel { graph: x.graph, input, output, params, flops, notes: x.notes, steps: x.steps })
}

struct Scope {
    vars: BTreeMap<String, Value>,
    nodes: BTreeMap<String, NodeIndex>,
}

struct Expander<'a> {
    program: &'a Program,
    data: &'a DataInfo,
    graph: DiGraph<Layer, ()>,
    counts: BTreeMap<&'static str, usize>,
    notes: Vec<(Span, String)>,
    depth: usize,
    steps: Vec<(Span, usize)>,
}

struct ScopeEnv<'a> {
    scope: &'a Scope,
    program: &'a Program,
    data: &'a DataInfo,
}

impl Env for ScopeEnv<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.scope.vars.get(name) {
            return Some(v.clone());
        }
        match name {
            "data.classes" => Some(Value::Int(self.data.classes as i64)),
            "data.features" => Some(Value::Int(self.data.features() as i64)),
            "data.shape" => Some(Value::List(self.data.shape.iter().map(|d| Value::Int(*d as i64)).collect())),
            "data.vocab" => self.data.vocab.map(|v| Value::Int(v as i64)),
            _ => None,
        }
    }

    fn function(&self, name: &str) -> Option<&ast::FnDef> {
        self.program.fns.get(name)
    }
}

impl<'a> Expander<'a> {
    fn eval(&self, e: &ast::Expr, scope: &Scope) -> Result<Value, ExpandError> {
        eval(e, &ScopeEnv { scope, program: self.program, data: self.data }).map_err(|err| ExpandError {
            code: Code::InvalidValue,
            span: err.span,
            message: err.message.clone(),
            label: err.message,
            help: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        kind: LayerKind,
        shape: Shape,
        inputs: Vec<NodeIndex>,
        params: u64,
        flops: u64,
        span: Span,
        inserted: bool,
    ) -> Result<NodeIndex, ExpandError> {
        if self.graph.node_count() >= MAX_NODES {
            return fail(Code::ShapeError, span, "the model is too large", format!("more than {MAX_NODES} layers"));
        }
        let base = kind_name(&kind);
        let n = self.counts.entry(base).or_insert(0);
        *n += 1;
        let name = if base == "input" { "input".to_string() } else { format!("{base}_{n}") };
        let idx = self.graph.add_node(Layer {
            name,
            kind,
            shape,
            inputs: inputs.iter().map(|i| i.index()).collect(),
            params,
            flops,
            inserted,
            span,
        });
        for i in inputs {
            self.graph.add_edge(i, idx, ());
        }
        Ok(idx)
    }

    fn shape(&self, n: NodeIndex) -> Shape {
        self.graph[n].shape.clone()
    }

    fn body(&mut self, body: &ast::Body, mut cur: NodeIndex, scope: &mut Scope) -> Result<NodeIndex, ExpandError> {
        for stmt in &body.stmts {
            cur = self.stmt(stmt, cur, scope)?;
            if let Some(span) = compound_span(stmt) {
                self.steps.push((span, cur.index()));
            }
        }
        Ok(cur)
    }

    fn stmt(&mut self, stmt: &ast::Stmt, cur: NodeIndex, scope: &mut Scope) -> Result<NodeIndex, ExpandError> {
        match stmt {
            ast::Stmt::Chain(chain) => self.chain(chain, cur, scope),
            ast::Stmt::Let { name, chain, .. } => {
                let out = self.chain(chain, cur, scope)?;
                scope.nodes.insert(name.name.clone(), out);
                Ok(out)
            }
            ast::Stmt::Repeat { var, from, count, body, span } => {
                let start = match from {
                    Some(f) => self.int(f, scope, "a repeat bound")?,
                    None => 0,
                };
                let end = self.int(count, scope, "a repeat count")?;
                let end = if from.is_some() { end } else { start + end };
                if end - start > MAX_REPEAT {
                    return fail(
                        Code::InvalidValue,
                        count.span,
                        "this repeat is too long",
                        format!("{} repetitions", end - start),
                    );
                }
                if from.is_none() && end < 0 {
                    return fail(
                        Code::InvalidValue,
                        count.span,
                        "a repeat count cannot be negative",
                        format!("repeats {end} times"),
                    );
                }
                let mut cur = cur;
                let saved = var.as_ref().and_then(|v| scope.vars.get(&v.name).cloned());
                for i in start..end {
                    if let Some(v) = var {
                        scope.vars.insert(v.name.clone(), Value::Int(i));
                    }
                    cur = self.body(body, cur, scope)?;
                }
                if let Some(v) = var {
                    match saved {
                        Some(s) => scope.vars.insert(v.name.clone(), s),
                        None => scope.vars.remove(&v.name),
                    };
                }
                let _ = span;
                Ok(cur)
            }
            ast::Stmt::Match { scrutinee, arms, span } => {
                let v = self.eval(scrutinee, scope)?;
                match arms.iter().find(|a| pattern_matches(&a.pattern, &v)) {
                    Some(arm) => self.body(&arm.body, cur, scope),
                    None => fail(
                        Code::NonExhaustiveMatch,
                        *span,
                        format!("no arm of this match takes `{v}`"),
                        format!("nothing matches `{v}`"),
                    ),
                }
            }
            ast::Stmt::If { cond, then, otherwise, .. } => match self.eval(cond, scope)? {
                Value::Bool(true) => self.body(then, cur, scope),
                Value::Bool(false) => match otherwise {
                    Some(b) => self.body(b, cur, scope),
                    None => Ok(cur),
                },
                v => fail(Code::TypeMismatch, cond.span, "`if` needs a bool", format!("this is a {}", v.type_name())),
            },
            ast::Stmt::Residual { body, span } => {
                let out = self.body(body, cur, scope)?;
                let (in_shape, out_shape) = (self.shape(cur), self.shape(out));
                let shortcut =
                    if in_shape == out_shape { cur } else { self.projection(cur, &in_shape, &out_shape, *span)? };
                let shape = out_shape.clone();
                let flops = shape.iter().product::<usize>() as u64;
                self.add(LayerKind::Add, shape, vec![out, shortcut], 0, flops, *span, false)
            }
            ast::Stmt::Parallel { merge, branches, span } => {
                let mut outs = Vec::new();
                for b in branches {
                    outs.push(self.body(b, cur, scope)?);
                }
                if outs.is_empty() {
                    return fail(Code::ShapeError, *span, "`parallel` needs at least one branch", "no branches");
                }
                match merge.name.as_str() {
                    "concat" => self.concat(outs, *span),
                    "add" => self.add_nodes(outs, *span),
                    other => fail(
                        Code::UnknownValue,
                        merge.span,
                        format!("`parallel` merges by `concat` or `add`, not `{other}`"),
                        "unknown merge",
                    ),
                }
            }
        }
    }

    /// The 1x1 convolution or linear map that makes a residual's shortcut fit.
    fn projection(
        &mut self,
        from: NodeIndex,
        input: &Shape,
        output: &Shape,
        span: Span,
    ) -> Result<NodeIndex, ExpandError> {
        match (input.as_slice(), output.as_slice()) {
            ([n], [m]) => {
                self.notes.push((span, format!("a linear projection {n} → {m} is added to the shortcut")));
                let (n, m) = (*n as u64, *m as u64);
                self.add(
                    LayerKind::Dense { units: m as usize },
                    output.clone(),
                    vec![from],
                    n * m + m,
                    2 * n * m,
                    span,
                    true,
                )
            }
            ([c, h, w], [f, oh, ow])
                if *oh > 0 && *ow > 0 && h.div_ceil(*oh) == w.div_ceil(*ow) && h.div_ceil(*oh) >= 1 =>
            {
                let stride = h.div_ceil(*oh);
                if h.div_ceil(stride) != *oh || w.div_ceil(stride) != *ow {
                    return fail(
                        Code::ShapeError,
                        span,
                        "the residual's body changes the feature map in a way no projection can follow",
                        format!("{} in, {} out", fmt_shape(input), fmt_shape(output)),
                    );
                }
                self.notes.push((
                    span,
                    format!("a 1x1 convolution {c} → {f} channels (stride {stride}) is added to the shortcut"),
                ));
                let (c64, f64_) = (*c as u64, *f as u64);
                let params = c64 * f64_ + f64_;
                let flops = 2 * c64 * f64_ * (*oh as u64) * (*ow as u64);
                self.add(
                    LayerKind::Conv2d { filters: *f, kernel: 1, stride, padding: Padding::Same, groups: 1 },
                    output.clone(),
                    vec![from],
                    params,
                    flops,
                    span,
                    true,
                )
            }
            // A sequence [t, c] → [t', f]: a kernel-1 `conv1d`, strided when the body shortens it.
            ([t, c], [ot, f]) if *ot > 0 && t.div_ceil(t.div_ceil(*ot)) == *ot => {
                let stride = t.div_ceil(*ot);
                self.notes.push((
                    span,
                    format!("a kernel-1 conv1d {c} → {f} channels (stride {stride}) is added to the shortcut"),
                ));
                let (c64, f64_) = (*c as u64, *f as u64);
                self.add(
                    LayerKind::Conv1d {
                        filters: *f,
                        kernel: 1,
                        stride,
                        padding: Padding::Same,
                        dilation: 1,
                        groups: 1,
                    },
                    output.clone(),
                    vec![from],
                    c64 * f64_ + f64_,
                    2 * c64 * f64_ * (*ot as u64),
                    span,
                    true,
                )
            }
            _ => fail(
                Code::ShapeError,
                span,
                "the residual's body changes the rank of its input",
                format!("{} in, {} out", fmt_shape(input), fmt_shape(output)),
            ),
        }
    }

    fn concat(&mut self, nodes: Vec<NodeIndex>, span: Span) -> Result<NodeIndex, ExpandError> {
        let shapes: Vec<Shape> = nodes.iter().map(|n| self.shape(*n)).collect();
        let first = &shapes[0];
        let ok = shapes.iter().all(|s| s.len() == first.len() && s.get(1..) == first.get(1..));
        if !ok || first.is_empty() {
            let list = shapes.iter().map(|s| fmt_shape(s)).collect::<Vec<_>>().join(", ");
            return Err(ExpandError {
                code: Code::ShapeError,
                span,
                message: "cannot concatenate these shapes".into(),
                label: format!("shapes {list}"),
                help: Some("concat joins along the first (channel or feature) axis; the other axes must agree".into()),
            });
        }
        let mut shape = first.clone();
        shape[0] = shapes.iter().map(|s| s[0]).sum();
        self.add(LayerKind::Concat, shape, nodes, 0, 0, span, false)
    }

    fn add_nodes(&mut self, nodes: Vec<NodeIndex>, span: Span) -> Result<NodeIndex, ExpandError> {
        let shapes: Vec<Shape> = nodes.iter().map(|n| self.shape(*n)).collect();
        if shapes.iter().any(|s| *s != shapes[0]) {
            let list = shapes.iter().map(|s| fmt_shape(s)).collect::<Vec<_>>().join(", ");
            return Err(ExpandError {
                code: Code::ShapeError,
                span,
                message: "cannot add tensors of different shapes".into(),
                label: format!("shapes {list}"),
                help: Some(
                    "use `concat` to join different widths, or make the branches end with the same width".into(),
                ),
            });
        }
        let flops = (shapes[0].iter().product::<usize>() * (nodes.len() - 1)) as u64;
        self.add(LayerKind::Add, shapes[0].clone(), nodes, 0, flops, span, false)
    }

    fn chain(&mut self, chain: &ast::Chain, mut cur: NodeIndex, scope: &mut Scope) -> Result<NodeIndex, ExpandError> {
        for (i, link) in chain.links.iter().enumerate() {
            if link.args.is_none()
                && let Some(&node) = scope.nodes.get(&link.name.name)
                && !scope.vars.contains_key(&link.name.name)
            {
                if i == 0 {
                    cur = node;
                    continue;
                }
                return fail(
                    Code::ShapeError,
                    link.span,
                    format!("`{}` names a node; it can only start a chain", link.name.name),
                    "a node in the middle of a chain",
                );
            }
            cur = self.call(link, cur, scope)?;
            self.steps.push((link.span, cur.index()));
        }
        Ok(cur)
    }

    fn call(&mut self, call: &ast::Call, cur: NodeIndex, scope: &mut Scope) -> Result<NodeIndex, ExpandError> {
        let name = &call.name.name;
        // A parameter whose value is a layer.
        if let Some(v) = scope.vars.get(name).cloned() {
            if call.args.is_some() {
                return fail(
                    Code::TypeMismatch,
                    call.span,
                    format!("`{name}` is a parameter; it cannot take arguments"),
                    "called here",
                );
            }
            return self.layer_value(&v, cur, call.span, scope);
        }
        let merge = catalogue::kind(catalogue::LAYERS, name)
            .filter(|k| matches!(k, catalogue::Layer::Add | catalogue::Layer::Concat | catalogue::Layer::Multiply));
        if let Some(merge) = merge {
            let mut nodes = Vec::new();
            for a in call.args.iter().flatten() {
                match a.value.as_name().and_then(|n| scope.nodes.get(n)) {
                    Some(&n) => nodes.push(n),
                    None => {
                        return fail(
                            Code::UnknownName,
                            a.value.span,
                            format!("`{name}` merges named nodes"),
                            "not a node named with `let`",
                        );
                    }
                }
            }
            if nodes.len() < 2 {
                return fail(
                    Code::BadArguments,
                    call.span,
                    format!("`{name}` needs at least two nodes"),
                    "too few nodes",
                );
            }
            return match merge {
                catalogue::Layer::Add => self.add_nodes(nodes, call.span),
                catalogue::Layer::Multiply => self.multiply_nodes(nodes, call.span),
                _ => self.concat(nodes, call.span),
            };
        }
        let mut args = Vec::new();
        for a in call.args.iter().flatten() {
            args.push(ArgVal {
                name: a.name.as_ref().map(|n| n.name.clone()),
                value: self.eval(&a.value, scope)?,
                span: a.value.span,
            });
        }
        self.apply(name, &args, cur, call.span, scope)
    }

    /// Applies a layer given as a value (`relu`, `leaky_relu(0.1)`, a block name).
    fn layer_value(
        &mut self,
        v: &Value,
        cur: NodeIndex,
        span: Span,
        scope: &mut Scope,
    ) -> Result<NodeIndex, ExpandError> {
        match v {
            Value::Sym(s) => self.apply(&s.sym, &[], cur, span, scope),
            Value::Call(CallValue { name, args }) => {
                let args: Vec<ArgVal> =
                    args.iter().map(|(n, v)| ArgVal { name: n.clone(), value: v.clone(), span }).collect();
                self.apply(name, &args, cur, span, scope)
            }
            other => fail(
                Code::TypeMismatch,
                span,
                "this parameter is used as a layer",
                format!("its value here is the {} `{other}`", other.type_name()),
            ),
        }
    }

    fn apply(
        &mut self,
        name: &str,
        args: &[ArgVal],
        cur: NodeIndex,
        span: Span,
        _scope: &mut Scope,
    ) -> Result<NodeIndex, ExpandError> {
        if let Some(block) = self.program.blocks.get(name) {
            return self.block(block, args, cur, span);
        }
        let input = self.shape(cur);
        let tokens = match self.data.vocab {
            None => Tokens::None,
            Some(v) if self.graph[cur].kind == LayerKind::Input => Tokens::Ids(v),
            Some(_) => Tokens::Later,
        };
        let (kind, shape, params, flops) = builtin_layer(name, args, &input, span, tokens)?;
        self.add(kind, shape, vec![cur], params, flops, span, false)
    }

    fn block(
        &mut self,
        block: &ast::Block,
        args: &[ArgVal],
        cur: NodeIndex,
        span: Span,
    ) -> Result<NodeIndex, ExpandError> {
        if self.depth > 32 {
            return fail(
                Code::CyclicDefinition,
                span,
                format!("block `{}` uses itself", block.name.name),
                "recursion here",
            );
        }
        let mut vars = BTreeMap::new();
        let mut positional = args.iter().filter(|a| a.name.is_none());
        for a in args.iter().filter(|a| a.name.is_some()) {
            if !block.params.iter().any(|p| Some(&p.name.name) == a.name.as_ref()) {
                let known: Vec<&str> = block.params.iter().map(|p| p.name.name.as_str()).collect();
                let mut e = ExpandError {
                    code: Code::BadArguments,
                    span: a.span,
                    message: format!(
                        "block `{}` has no parameter `{}`",
                        block.name.name,
                        a.name.as_deref().unwrap_or("")
                    ),
                    label: "unknown argument".into(),
                    help: None,
                };
                if let Some(best) = crate::diagnostic::did_you_mean(a.name.as_deref().unwrap_or(""), known) {
                    e.help = Some(format!("did you mean `{best}`?"));
                }
                return Err(e);
            }
        }
        let empty = Scope { vars: BTreeMap::new(), nodes: BTreeMap::new() };
        for p in &block.params {
            let named = args.iter().find(|a| a.name.as_deref() == Some(p.name.name.as_str()));
            let v = match named.or_else(|| positional.next()) {
                Some(a) => a.value.clone(),
                None => match &p.default {
                    Some(d) => self.eval(d, &empty)?,
                    None => {
                        return fail(
                            Code::BadArguments,
                            span,
                            format!("block `{}` needs a value for `{}`", block.name.name, p.name.name),
                            format!("`{}` is missing", p.name.name),
                        );
                    }
                },
            };
            let v = match (p.ty.map(|t| t.0), v) {
                (Some(ast::TypeName::Float), Value::Int(i)) => Value::Float(i as f64),
                (_, v) => v,
            };
            vars.insert(p.name.name.clone(), v);
        }
        if let Some(extra) = positional.next() {
            return fail(
                Code::BadArguments,
                extra.span,
                format!("block `{}` takes {} arguments", block.name.name, block.params.len()),
                "one too many",
            );
        }
        let mut inner = Scope { vars, nodes: BTreeMap::new() };
        inner.nodes.insert("input".into(), cur);
        self.depth += 1;
        let out = self.body(&block.body, cur, &mut inner);
        self.depth -= 1;
        out
    }

    fn int(&self, e: &ast::Expr, scope: &Scope, what: &str) -> Result<i64, ExpandError> {
        match self.eval(e, scope)? {
            Value::Int(i) => Ok(i),
            v => fail(
                Code::TypeMismatch,
                e.span,
                format!("{what} must be an int"),
                format!("this is the {} `{v}`", v.type_name()),
            ),
        }
    }
}

/// The span of a statement that holds others (`repeat`, `match`, `if`, `residual`,
/// `parallel`); `None` for a chain, whose links are steps of their own.
fn compound_span(stmt: &ast::Stmt) -> Option<Span> {
    match stmt {
        ast::Stmt::Chain(_) | ast::Stmt::Let { .. } => None,
        ast::Stmt::Repeat { span, .. }
        | ast::Stmt::Match { span, .. }
        | ast::Stmt::If { span, .. }
        | ast::Stmt::Residual { span, .. }
        | ast::Stmt::Parallel { span, .. } => Some(*span),
    }
}
