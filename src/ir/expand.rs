//! Expansion: a model template and one point of the space → a concrete [`SubModel`].
//!
//! The sub-model is a petgraph DAG of layers whose every attribute is a number
//! and every output shape is known. Expansion is deterministic: the same point
//! gives the same graph with the same node names.
//! **Invariant:** an `Ok` sub-model has valid shapes everywhere, and its `params`
//! and `flops` are the exact sums over its nodes.

use std::collections::BTreeMap;
use std::fmt;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::{CallValue, Env, Point, Program, Value, eval, pattern_matches};
use crate::ast;
use crate::diagnostic::Code;
use crate::source::Span;

/// A layer's output shape, batch dimension excluded: `[n]` flat, `[c, h, w]` images.
pub type Shape = Vec<usize>;

/// What the data looks like, as far as the model is concerned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataInfo {
    pub name: String,
    pub shape: Shape,
    /// Number of classes (1 for regression).
    pub classes: usize,
    pub task: Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Regression,
}

impl DataInfo {
    pub fn features(&self) -> usize {
        self.shape.iter().product()
    }

    /// The width the model's last layer must have.
    pub fn outputs(&self) -> usize {
        match self.task {
            Task::Classification => self.classes,
            Task::Regression => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    Same,
    Valid,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    Silu,
    LeakyRelu(f64),
    Softmax,
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    Input,
    Dense { units: usize },
    Conv2d { filters: usize, kernel: usize, stride: usize, padding: Padding },
    MaxPool { kernel: usize, stride: usize },
    AvgPool { kernel: usize, stride: usize },
    GlobalAvgPool,
    Flatten,
    Reshape { shape: Shape },
    BatchNorm,
    LayerNorm,
    Dropout { p: f64 },
    Activation(Activation),
    Add,
    Concat,
}

/// One node of a sub-model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// A stable name: the layer kind and its position, `dense_3`.
    pub name: String,
    pub kind: LayerKind,
    /// The output shape.
    pub shape: Shape,
    /// The nodes feeding this one, in order (concat order matters).
    pub inputs: Vec<usize>,
    /// Trainable parameters of this node.
    pub params: u64,
    /// Multiply-adds counted as two FLOPs, per sample.
    pub flops: u64,
    /// Inserted by bma (a residual projection), not written by the user.
    pub inserted: bool,
    #[serde(skip)]
    pub span: Span,
}

/// The node type of the sub-model graph.
pub type Node = Layer;

/// One concrete network.
#[derive(Debug, Clone)]
pub struct SubModel {
    pub graph: DiGraph<Layer, ()>,
    pub input: NodeIndex,
    pub output: NodeIndex,
    pub params: u64,
    pub flops: u64,
    /// Notes met on the way (residual projections), with where they come from.
    pub notes: Vec<(Span, String)>,
}

impl SubModel {
    pub fn output_shape(&self) -> &Shape {
        &self.graph[self.output].shape
    }

    /// Nodes in the order they were created, which is a topological order.
    pub fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.graph.node_indices().map(|i| &self.graph[i])
    }

    /// The graph in Graphviz DOT, with shapes.
    pub fn to_dot(&self, title: &str) -> String {
        let mut s = format!(
            "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
            title.replace('"', "'")
        );
        for i in self.graph.node_indices() {
            let l = &self.graph[i];
            let style = if l.inserted { ", style=dashed" } else { "" };
            s.push_str(&format!(
                "  n{} [label=\"{}\\n{}\\n{}\"{}];\n",
                i.index(),
                l.name,
                describe(&l.kind),
                fmt_shape(&l.shape),
                style
            ));
        }
        for i in self.graph.node_indices() {
            for &j in &self.graph[i].inputs {
                s.push_str(&format!("  n{j} -> n{};\n", i.index()));
            }
        }
        s.push_str(&format!("  label=\"params {}  flops {}\";\n}}\n", self.params, self.flops));
        s
    }
}

/// `[1, 8, 8]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("[{}]", shape.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

fn describe(kind: &LayerKind) -> String {
    match kind {
        LayerKind::Input => "input".into(),
        LayerKind::Dense { units } => format!("dense({units})"),
        LayerKind::Conv2d { filters, kernel, stride, padding } => {
            format!(
                "conv2d({filters}, kernel: {kernel}, stride: {stride}, padding: {})",
                if *padding == Padding::Same { "same" } else { "valid" }
            )
        }
        LayerKind::MaxPool { kernel, stride } => format!("maxpool({kernel}, stride: {stride})"),
        LayerKind::AvgPool { kernel, stride } => format!("avgpool({kernel}, stride: {stride})"),
        LayerKind::GlobalAvgPool => "global_avgpool".into(),
        LayerKind::Flatten => "flatten".into(),
        LayerKind::Reshape { shape } => format!("reshape{}", fmt_shape(shape)),
        LayerKind::BatchNorm => "batchnorm".into(),
        LayerKind::LayerNorm => "layernorm".into(),
        LayerKind::Dropout { p } => format!("dropout({p})"),
        LayerKind::Activation(a) => match a {
            Activation::LeakyRelu(x) => format!("leaky_relu({x})"),
            other => format!("{other:?}").to_lowercase(),
        },
        LayerKind::Add => "add".into(),
        LayerKind::Concat => "concat".into(),
    }
}

/// Why a point's model cannot be built.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandError {
    pub code: Code,
    pub span: Span,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.label)
    }
}

fn fail<T>(code: Code, span: Span, message: impl Into<String>, label: impl Into<String>) -> Result<T, ExpandError> {
    Err(ExpandError { code, span, message: message.into(), label: label.into(), help: None })
}

/// The layers built into the language.
pub const LAYERS: [&str; 19] = [
    "dense",
    "conv2d",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "flatten",
    "reshape",
    "batchnorm",
    "layernorm",
    "dropout",
    "relu",
    "gelu",
    "tanh",
    "sigmoid",
    "silu",
    "leaky_relu",
    "softmax",
    "add",
    "concat",
];

/// Loops longer than this are taken for a mistake.
const MAX_REPEAT: i64 = 10_000;
/// Graphs larger than this are refused.
const MAX_NODES: usize = 100_000;

/// Builds the model of `body` at `point` for `data`.
pub fn expand(program: &Program, body: &ast::Body, point: &Point, data: &DataInfo) -> Result<SubModel, ExpandError> {
    let mut x = Expander { program, data, graph: DiGraph::new(), counts: BTreeMap::new(), notes: Vec::new(), depth: 0 };
    let input = x.add(LayerKind::Input, data.shape.clone(), Vec::new(), 0, 0, body.span, false)?;
    let mut scope = Scope { vars: point.clone(), nodes: BTreeMap::new() };
    scope.nodes.insert("input".into(), input);
    let output = x.body(body, input, &mut scope)?;
    let params = x.graph.node_weights().map(|l| l.params).sum();
    let flops = x.graph.node_weights().map(|l| l.flops).sum();
    Ok(SubModel { graph: x.graph, input, output, params, flops, notes: x.notes })
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
            _ => None,
        }
    }

    fn function(&self, name: &str) -> Option<&ast::FnDef> {
        self.program.fns.get(name)
    }
}

/// An argument after evaluation.
struct ArgVal {
    name: Option<String>,
    value: Value,
    span: Span,
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
                    LayerKind::Conv2d { filters: *f, kernel: 1, stride, padding: Padding::Same },
                    output.clone(),
                    vec![from],
                    params,
                    flops,
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
        if matches!(name.as_str(), "add" | "concat") {
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
            return if name == "add" { self.add_nodes(nodes, call.span) } else { self.concat(nodes, call.span) };
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
        let (kind, shape, params, flops) = builtin_layer(name, args, &input, span)?;
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

fn kind_name(kind: &LayerKind) -> &'static str {
    match kind {
        LayerKind::Input => "input",
        LayerKind::Dense { .. } => "dense",
        LayerKind::Conv2d { .. } => "conv2d",
        LayerKind::MaxPool { .. } => "maxpool",
        LayerKind::AvgPool { .. } => "avgpool",
        LayerKind::GlobalAvgPool => "global_avgpool",
        LayerKind::Flatten => "flatten",
        LayerKind::Reshape { .. } => "reshape",
        LayerKind::BatchNorm => "batchnorm",
        LayerKind::LayerNorm => "layernorm",
        LayerKind::Dropout { .. } => "dropout",
        LayerKind::Activation(a) => match a {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Silu => "silu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Softmax => "softmax",
        },
        LayerKind::Add => "add",
        LayerKind::Concat => "concat",
    }
}

/// A builtin layer's parameters: name, and default (`None` = required).
pub fn layer_signature(name: &str) -> Option<&'static [(&'static str, Option<&'static str>)]> {
    Some(match name {
        "dense" => &[("units", None)],
        "conv2d" => &[("filters", None), ("kernel", Some("3")), ("stride", Some("1")), ("padding", Some("same"))],
        "maxpool" | "avgpool" => &[("kernel", Some("2")), ("stride", Some("kernel"))],
        "dropout" => &[("p", None)],
        "leaky_relu" => &[("a", Some("0.01"))],
        "global_avgpool" | "flatten" | "batchnorm" | "layernorm" | "relu" | "gelu" | "tanh" | "sigmoid" | "silu"
        | "softmax" => &[],
        _ => return None,
    })
}

type Built = (LayerKind, Shape, u64, u64);

fn builtin_layer(name: &str, args: &[ArgVal], input: &Shape, span: Span) -> Result<Built, ExpandError> {
    if name == "reshape" {
        return reshape(args, input, span);
    }
    let Some(sig) = layer_signature(name) else {
        let mut e = ExpandError {
            code: Code::UnknownLayer,
            span,
            message: format!("unknown layer `{name}`"),
            label: "no such layer or block".into(),
            help: None,
        };
        if let Some(b) = crate::diagnostic::did_you_mean(name, LAYERS) {
            e.help = Some(format!("did you mean `{b}`?"));
        }
        return Err(e);
    };
    let bound = bind(name, sig, args, span)?;
    let get = |k: &str| bound.iter().find(|(n, _, _)| *n == k).map(|(_, v, s)| (v.clone(), *s));
    let size: u64 = input.iter().product::<usize>() as u64;
    let positive = |k: &str| -> Result<usize, ExpandError> {
        let (v, s) = get(k).unwrap_or((Value::Int(0), span));
        match v {
            Value::Int(i) if i >= 1 => Ok(i as usize),
            Value::Int(i) => {
                fail(Code::InvalidValue, s, format!("`{name}` needs a positive `{k}`"), format!("`{k}` is {i} here"))
            }
            other => Err(ExpandError {
                code: Code::TypeMismatch,
                span: s,
                message: format!("`{k}` of `{name}` must be an int"),
                label: format!("this is the {} `{other}`", other.type_name()),
                help: matches!(other, Value::Float(_))
                    .then(|| "use `floor(x)` or `round(x)` to make an int".to_string()),
            }),
        }
    };
    let image = |what: &str| -> Result<(usize, usize, usize), ExpandError> {
        match input.as_slice() {
            [c, h, w] => Ok((*c, *h, *w)),
            _ => fail(
                Code::ShapeError,
                span,
                format!("`{what}` needs an image input [channels, height, width]"),
                format!("the input here is {}", fmt_shape(input)),
            ),
        }
    };
    let act = |a: Activation| Ok((LayerKind::Activation(a), input.clone(), 0, size));
    match name {
        "dense" => {
            let units = positive("units")?;
            let [n] = input.as_slice() else {
                return Err(ExpandError {
                    code: Code::ShapeError,
                    span,
                    message: "`dense` needs a flat input".into(),
                    label: format!("the input here is {}", fmt_shape(input)),
                    help: Some("add `flatten` (or `global_avgpool`) before it".into()),
                });
            };
            let (n, u) = (*n as u64, units as u64);
            Ok((LayerKind::Dense { units }, vec![units], n * u + u, 2 * n * u))
        }
        "conv2d" => {
            let filters = positive("filters")?;
            let kernel = positive("kernel")?;
            let stride = positive("stride")?;
            let padding = match get("padding").map(|(v, s)| (v.as_sym().map(str::to_string), s)) {
                Some((Some(p), _)) if p == "same" => Padding::Same,
                Some((Some(p), _)) if p == "valid" => Padding::Valid,
                Some((_, s)) => return fail(Code::UnknownValue, s, "padding is `same` or `valid`", "unknown padding"),
                None => Padding::Same,
            };
            let (c, h, w) = image("conv2d")?;
            let (oh, ow) = match padding {
                Padding::Same => (h.div_ceil(stride), w.div_ceil(stride)),
                Padding::Valid => {
                    if h < kernel || w < kernel {
                        return fail(
                            Code::ShapeError,
                            span,
                            format!("the feature map is {h}x{w}, smaller than the {kernel}x{kernel} kernel"),
                            "no room for the kernel",
                        );
                    }
                    ((h - kernel) / stride + 1, (w - kernel) / stride + 1)
                }
            };
            let (k, c64, f64_) = (kernel as u64, c as u64, filters as u64);
            let params = k * k * c64 * f64_ + f64_;
            let flops = 2 * k * k * c64 * f64_ * (oh * ow) as u64;
            Ok((LayerKind::Conv2d { filters, kernel, stride, padding }, vec![filters, oh, ow], params, flops))
        }
        "maxpool" | "avgpool" => {
            let kernel = positive("kernel")?;
            let stride = if get("stride").is_some_and(|(v, _)| v.as_sym() != Some("kernel")) {
                positive("stride")?
            } else {
                kernel
            };
            let (c, h, w) = image(name)?;
            if h < kernel || w < kernel {
                return Err(ExpandError {
                    code: Code::ShapeError,
                    span,
                    message: format!("`{name}({kernel})` shrinks the {h}x{w} feature map to nothing"),
                    label: format!("the feature map is {h}x{w} here"),
                    help: Some("use fewer pooling layers, or a smaller kernel".into()),
                });
            }
            let (oh, ow) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
            let kind = if name == "maxpool" {
                LayerKind::MaxPool { kernel, stride }
            } else {
                LayerKind::AvgPool { kernel, stride }
            };
            Ok((kind, vec![c, oh, ow], 0, (c * oh * ow * kernel * kernel) as u64))
        }
        "global_avgpool" => {
            let (c, _, _) = image("global_avgpool")?;
            Ok((LayerKind::GlobalAvgPool, vec![c], 0, size))
        }
        "flatten" => Ok((LayerKind::Flatten, vec![size as usize], 0, 0)),
        "batchnorm" => {
            let c = input.first().copied().unwrap_or(0) as u64;
            Ok((LayerKind::BatchNorm, input.clone(), 2 * c, 4 * size))
        }
        "layernorm" => {
            let d = input.last().copied().unwrap_or(0) as u64;
            Ok((LayerKind::LayerNorm, input.clone(), 2 * d, 5 * size))
        }
        "dropout" => {
            let (v, s) = get("p").unwrap_or((Value::Float(0.0), span));
            match v.as_f64() {
                Some(p) if (0.0..1.0).contains(&p) => Ok((LayerKind::Dropout { p }, input.clone(), 0, 0)),
                Some(p) => fail(Code::InvalidValue, s, "a dropout rate is in [0, 1)", format!("the rate is {p} here")),
                None => fail(
                    Code::TypeMismatch,
                    s,
                    "a dropout rate must be a number",
                    format!("this is a {}", v.type_name()),
                ),
            }
        }
        "relu" => act(Activation::Relu),
        "gelu" => act(Activation::Gelu),
        "tanh" => act(Activation::Tanh),
        "sigmoid" => act(Activation::Sigmoid),
        "silu" => act(Activation::Silu),
        "softmax" => act(Activation::Softmax),
        _ => {
            let (v, s) = get("a").unwrap_or((Value::Float(0.01), span));
            match v.as_f64() {
                Some(a) => act(Activation::LeakyRelu(a)),
                None => fail(
                    Code::TypeMismatch,
                    s,
                    "the slope of `leaky_relu` must be a number",
                    format!("this is a {}", v.type_name()),
                ),
            }
        }
    }
}

fn reshape(args: &[ArgVal], input: &Shape, span: Span) -> Result<Built, ExpandError> {
    let mut dims = Vec::new();
    let values: Vec<&ArgVal> = args.iter().collect();
    let flat: Vec<(Value, Span)> = match values.as_slice() {
        [one] if matches!(one.value, Value::List(_)) => match &one.value {
            Value::List(items) => items.iter().map(|v| (v.clone(), one.span)).collect(),
            _ => Vec::new(),
        },
        _ => values.iter().map(|a| (a.value.clone(), a.span)).collect(),
    };
    for (v, s) in flat {
        match v {
            Value::Int(i) if i >= 1 => dims.push(i as usize),
            other => {
                return fail(
                    Code::InvalidValue,
                    s,
                    "`reshape` takes positive int dimensions",
                    format!("found `{other}`"),
                );
            }
        }
    }
    let size: usize = input.iter().product();
    if dims.is_empty() || dims.iter().product::<usize>() != size {
        return Err(ExpandError {
            code: Code::ShapeError,
            span,
            message: format!("cannot reshape {} into {}", fmt_shape(input), fmt_shape(&dims)),
            label: format!("{} values in, {} out", size, dims.iter().product::<usize>()),
            help: None,
        });
    }
    Ok((LayerKind::Reshape { shape: dims.clone() }, dims, 0, 0))
}

/// The value of a default written in a signature: `3`, `0.01`, `same`.
fn default_value(d: &str) -> Value {
    if let Ok(i) = d.parse::<i64>() {
        Value::Int(i)
    } else if let Ok(f) = d.parse::<f64>() {
        Value::Float(f)
    } else {
        Value::sym(d)
    }
}

/// Matches arguments to a signature: `(name, value, span)` for each parameter given or defaulted.
fn bind(
    layer: &str,
    sig: &[(&'static str, Option<&'static str>)],
    args: &[ArgVal],
    span: Span,
) -> Result<Vec<(&'static str, Value, Span)>, ExpandError> {
    let mut out: Vec<(&'static str, Value, Span)> = Vec::new();
    let mut positional = args.iter().filter(|a| a.name.is_none());
    for a in args.iter().filter(|a| a.name.is_some()) {
        let n = a.name.as_deref().unwrap_or("");
        if !sig.iter().any(|(k, _)| *k == n) {
            let known: Vec<&str> = sig.iter().map(|(k, _)| *k).collect();
            let help = match crate::diagnostic::did_you_mean(n, known.iter().copied()) {
                Some(b) => format!("did you mean `{b}`?"),
                None if known.is_empty() => format!("`{layer}` takes no arguments"),
                None => {
                    format!("`{layer}` takes {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
                }
            };
            return Err(ExpandError {
                code: Code::BadArguments,
                span: a.span,
                message: format!("`{layer}` has no argument `{n}`"),
                label: "unknown argument".into(),
                help: Some(help),
            });
        }
    }
    for (k, default) in sig {
        let named = args.iter().find(|a| a.name.as_deref() == Some(*k));
        match named.or_else(|| positional.next()) {
            Some(a) => out.push((k, a.value.clone(), a.span)),
            None => match default {
                Some(d) => out.push((k, default_value(d), span)),
                None => {
                    return fail(
                        Code::BadArguments,
                        span,
                        format!("`{layer}` needs `{k}`"),
                        format!("`{k}` is missing"),
                    );
                }
            },
        }
    }
    if let Some(extra) = positional.next() {
        return fail(
            Code::BadArguments,
            extra.span,
            format!("`{layer}` takes at most {} arguments", sig.len()),
            "one too many",
        );
    }
    Ok(out)
}
