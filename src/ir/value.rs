//! Run-time values of `.bma` expressions and their evaluation.
//!
//! Names that nothing binds evaluate to symbols (`mlp`, `relu`), and calls of
//! names that are neither builtins nor `fn`s evaluate to [`CallValue`]s
//! (`adam(lr)`, `leaky_relu(0.1)`): the checker decides where those are welcome.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ast::{self, BinaryOp, ExprKind, NumberKind, UnaryOp};
use crate::source::Span;

/// The largest magnitude an int may have: numbers pass through f64, which is exact up to 2^53
/// (about 9.007e15); past this a literal or a result is no longer the number meant.
pub const MAX_INT: f64 = 9e15;

/// A value a parameter or expression can take.
///
/// Stored as untagged JSON (saved models, the store): serde tries the variants in order, and
/// a struct also reads from a JSON array of its fields, so `List` comes before the structs
/// (`Sym`, `Duration`, `Call`, which are written as objects): otherwise `["id"]` would read
/// back as the symbol `id` and `[1.5]` as a duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    List(Vec<Value>),
    Sym(Symbol),
    /// A duration in seconds.
    Duration(Duration),
    Call(CallValue),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Symbol {
    pub sym: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Duration {
    pub seconds: f64,
}

/// `name(args)` for a name that is not a function: a layer, optimizer, strategy...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallValue {
    pub name: String,
    pub args: Vec<(Option<String>, Value)>,
}

impl CallValue {
    /// The argument named `name`, else the positional one at `index`.
    pub fn arg(&self, name: &str, index: usize) -> Option<&Value> {
        self.args
            .iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .or_else(|| self.args.iter().filter(|(n, _)| n.is_none()).nth(index))
            .map(|(_, v)| v)
    }
}

impl Value {
    pub fn sym(s: impl Into<String>) -> Value {
        Value::Sym(Symbol { sym: s.into() })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Duration(d) => Some(d.seconds),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < MAX_INT => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The symbol's name, or a call's name with no arguments, or a bare call name.
    pub fn as_sym(&self) -> Option<&str> {
        match self {
            Value::Sym(s) => Some(&s.sym),
            _ => None,
        }
    }

    /// The head name of a symbol or call: `relu` for both `relu` and `leaky_relu(0.1)`'s `leaky_relu`.
    pub fn head(&self) -> Option<&str> {
        match self {
            Value::Sym(s) => Some(&s.sym),
            Value::Call(c) => Some(&c.name),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
            Value::Sym(_) => "symbol",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
            Value::Call(_) => "call",
        }
    }

    /// Equality as `==` sees it: ints and floats compare by value.
    pub fn loosely_eq(&self, other: &Value) -> bool {
        match (self.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => self == other,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Sym(s) => f.write_str(&s.sym),
            Value::Duration(d) => write!(f, "{}s", d.seconds),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Call(c) => {
                write!(f, "{}(", c.name)?;
                for (i, (n, v)) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if let Some(n) = n {
                        write!(f, "{n}: ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub span: Span,
    pub message: String,
}

fn err<T>(span: Span, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError { span, message: message.into() })
}

/// What names mean while evaluating.
pub trait Env {
    /// The value bound to `name`, if any.
    fn lookup(&self, name: &str) -> Option<Value>;
    /// A user `fn` by name.
    fn function(&self, name: &str) -> Option<&ast::FnDef>;
}

/// The math builtins every expression may call.
pub const BUILTINS: [&str; 15] =
    ["exp", "ln", "log2", "log10", "sqrt", "sin", "cos", "tan", "tanh", "abs", "min", "max", "floor", "ceil", "round"];

/// The constants every expression may use.
pub const CONSTANTS: [&str; 2] = ["pi", "e"];

/// Calls deeper than this are taken for runaway recursion.
const MAX_DEPTH: usize = 64;

/// Evaluates `expr` against `env`.
pub fn eval(expr: &ast::Expr, env: &dyn Env) -> Result<Value, EvalError> {
    eval_at(expr, env, 0)
}

fn eval_at(expr: &ast::Expr, env: &dyn Env, depth: usize) -> Result<Value, EvalError> {
    let span = expr.span;
    if depth > MAX_DEPTH {
        return err(span, "functions call each other too deeply");
    }
    Ok(match &expr.kind {
        ExprKind::Number(v, NumberKind::Int) if v.abs() < MAX_INT => Value::Int(*v as i64),
        ExprKind::Number(v, NumberKind::Duration) => Value::Duration(Duration { seconds: *v }),
        ExprKind::Number(v, _) => Value::Float(*v),
        ExprKind::Str(s) => Value::Str(s.clone()),
        ExprKind::Bool(b) => Value::Bool(*b),
        ExprKind::Name(n) => match env.lookup(n) {
            Some(v) => v,
            None => match n.as_str() {
                "pi" => Value::Float(std::f64::consts::PI),
                "e" => Value::Float(std::f64::consts::E),
                _ => Value::sym(n.clone()),
            },
        },
        ExprKind::List(items) => Value::List(items.iter().map(|e| eval_at(e, env, depth)).collect::<Result<_, _>>()?),
        ExprKind::Unary(op, e) => {
            let v = eval_at(e, env, depth)?;
            match (op, &v) {
                (UnaryOp::Neg, Value::Int(i)) => Value::Int(i.checked_neg().ok_or_else(|| overflow(span))?),
                (UnaryOp::Neg, Value::Float(f)) => Value::Float(-f),
                (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
                (UnaryOp::Neg, _) => return err(span, format!("cannot negate a {}", v.type_name())),
                (UnaryOp::Not, _) => return err(span, format!("`not` needs a bool, found a {}", v.type_name())),
            }
        }
        ExprKind::Binary(op, a, b) => {
            let a_v = eval_at(a, env, depth)?;
            // `and` / `or` short-circuit, so guards like `x > 0 and y` read naturally.
            match (op, &a_v) {
                (BinaryOp::And, Value::Bool(false)) => return Ok(Value::Bool(false)),
                (BinaryOp::Or, Value::Bool(true)) => return Ok(Value::Bool(true)),
                _ => {}
            }
            let b_v = eval_at(b, env, depth)?;
            binary(*op, &a_v, &b_v, span)?
        }
        ExprKind::Call(callee, args) => {
            let name = match &callee.kind {
                ExprKind::Name(n) => n.clone(),
                ExprKind::Field(..) => dotted(callee).unwrap_or_default(),
                _ => return err(callee.span, "only names can be called"),
            };
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push((a.name.as_ref().map(|n| n.name.clone()), eval_at(&a.value, env, depth)?));
            }
            if let Some(f) = env.function(&name) {
                return call_fn(f, &values, env, span, depth);
            }
            if BUILTINS.contains(&name.as_str()) && env.lookup(&name).is_none() {
                return builtin(&name, &values, span);
            }
            // A metric with an argument (`top_k(5)`) is bound under its written form.
            if let [(None, Value::Int(k))] = values.as_slice()
                && let Some(v) = env.lookup(&crate::catalogue::metric_key(&name, *k))
            {
                return Ok(v);
            }
            Value::Call(CallValue { name, args: values })
        }
        ExprKind::Field(base, field) => {
            if let Some(path) = dotted(expr)
                && let Some(v) = env.lookup(&path)
            {
                return Ok(v);
            }
            match eval_at(base, env, depth)? {
                Value::Sym(s) => Value::sym(format!("{}.{}", s.sym, field.name)),
                v => return err(field.span, format!("a {} has no field `{}`", v.type_name(), field.name)),
            }
        }
        ExprKind::If(c, a, b) => match eval_at(c, env, depth)? {
            Value::Bool(true) => eval_at(a, env, depth)?,
            Value::Bool(false) => eval_at(b, env, depth)?,
            v => return err(c.span, format!("`if` needs a bool, found a {}", v.type_name())),
        },
        ExprKind::Match(s, arms) => {
            let v = eval_at(s, env, depth)?;
            for arm in arms {
                if pattern_matches(&arm.pattern, &v) {
                    return eval_at(&arm.value, env, depth);
                }
            }
            return err(span, format!("no arm matches `{v}`"));
        }
    })
}

/// `a.b.c` as one string, when the expression is a chain of names.
pub fn dotted(expr: &ast::Expr) -> Option<String> {
    match &expr.kind {
        ExprKind::Name(n) => Some(n.clone()),
        ExprKind::Field(base, f) => dotted(base).map(|b| format!("{b}.{}", f.name)),
        _ => None,
    }
}

/// Whether a value matches a pattern (`_` matches everything).
pub fn pattern_matches(pattern: &ast::Pattern, v: &Value) -> bool {
    pattern.alts.iter().any(|alt| match alt {
        ast::PatternAlt::Wildcard(_) => true,
        ast::PatternAlt::Name(n) => v.head() == Some(n.name.as_str()),
        ast::PatternAlt::Number(x, _) => v.as_f64() == Some(*x),
        ast::PatternAlt::Str(s, _) => matches!(v, Value::Str(t) if t == s),
        ast::PatternAlt::Bool(b, _) => v.as_bool() == Some(*b),
    })
}

fn overflow(span: Span) -> EvalError {
    EvalError { span, message: "integer overflow".into() }
}

fn binary(op: BinaryOp, a: &Value, b: &Value, span: Span) -> Result<Value, EvalError> {
    use BinaryOp::*;
    match op {
        Eq => return Ok(Value::Bool(a.loosely_eq(b))),
        Ne => return Ok(Value::Bool(!a.loosely_eq(b))),
        And | Or => {
            return match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => Ok(Value::Bool(if op == And { *x && *y } else { *x || *y })),
                _ => err(span, format!("`{}` needs bools, found {} and {}", op.as_str(), a.type_name(), b.type_name())),
            };
        }
        _ => {}
    }
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let (x, y) = (*x, *y);
        // `Some(result)` for integer arithmetic; `None` falls through to floats (`/`, negative powers).
        let r = match op {
            Add => Some(x.checked_add(y)),
            Sub => Some(x.checked_sub(y)),
            Mul => Some(x.checked_mul(y)),
            Rem if y == 0 => return err(span, "remainder by zero"),
            Rem => Some(Some(x.rem_euclid(y))),
            Pow if (0..=62).contains(&y) => Some(x.checked_pow(y as u32)),
            Lt => return Ok(Value::Bool(x < y)),
            Le => return Ok(Value::Bool(x <= y)),
            Gt => return Ok(Value::Bool(x > y)),
            Ge => return Ok(Value::Bool(x >= y)),
            _ => None,
        };
        if let Some(r) = r {
            return r.map(Value::Int).ok_or_else(|| overflow(span));
        }
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return err(span, format!("`{}` needs numbers, found {} and {}", op.as_str(), a.type_name(), b.type_name()));
    };
    let dur = matches!(a, Value::Duration(_)) || matches!(b, Value::Duration(_));
    let num = |v: f64| if dur { Value::Duration(Duration { seconds: v }) } else { Value::Float(v) };
    Ok(match op {
        Add => num(x + y),
        Sub => num(x - y),
        Mul => num(x * y),
        Div if y == 0.0 => return err(span, "division by zero"),
        Div => num(x / y),
        Rem if y == 0.0 => return err(span, "remainder by zero"),
        Rem => num(x.rem_euclid(y)),
        Pow => Value::Float(x.powf(y)),
        Lt => Value::Bool(x < y),
        Le => Value::Bool(x <= y),
        Gt => Value::Bool(x > y),
        Ge => Value::Bool(x >= y),
        Eq | Ne | And | Or => Value::Bool(false), // handled above
    })
}

fn builtin(name: &str, args: &[(Option<String>, Value)], span: Span) -> Result<Value, EvalError> {
    let nums: Vec<f64> = args
        .iter()
        .map(|(_, v)| {
            v.as_f64().ok_or_else(|| EvalError {
                span,
                message: format!("`{name}` needs numbers, found a {}", v.type_name()),
            })
        })
        .collect::<Result<_, _>>()?;
    let all_int = args.iter().all(|(_, v)| matches!(v, Value::Int(_)));
    if matches!(name, "min" | "max") {
        if nums.is_empty() {
            return err(span, format!("`{name}` needs at least one argument"));
        }
        let pick = |f: fn(f64, f64) -> f64| nums.iter().copied().fold(nums[0], f);
        let r = if name == "min" { pick(f64::min) } else { pick(f64::max) };
        return Ok(if all_int { Value::Int(r as i64) } else { Value::Float(r) });
    }
    let [x] = nums[..] else {
        return err(span, format!("`{name}` takes 1 argument, found {}", nums.len()));
    };
    let to_int = |v: f64| -> Result<Value, EvalError> {
        if v.is_finite() && v.abs() < MAX_INT { Ok(Value::Int(v as i64)) } else { Err(overflow(span)) }
    };
    Ok(match name {
        "exp" => Value::Float(x.exp()),
        "ln" => Value::Float(x.ln()),
        "log2" => Value::Float(x.log2()),
        "log10" => Value::Float(x.log10()),
        "sqrt" => Value::Float(x.sqrt()),
        "sin" => Value::Float(x.sin()),
        "cos" => Value::Float(x.cos()),
        "tan" => Value::Float(x.tan()),
        "tanh" => Value::Float(x.tanh()),
        "abs" if all_int => to_int(x.abs())?,
        "abs" => Value::Float(x.abs()),
        "floor" => to_int(x.floor())?,
        "ceil" => to_int(x.ceil())?,
        _ => to_int(x.round())?,
    })
}

struct FnEnv<'a> {
    locals: BTreeMap<String, Value>,
    outer: &'a dyn Env,
}

impl Env for FnEnv<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        // A fn body sees its own parameters and the builtin constants only.
        self.locals
            .get(name)
            .cloned()
            .or_else(|| if name.starts_with("data.") { self.outer.lookup(name) } else { None })
    }

    fn function(&self, name: &str) -> Option<&ast::FnDef> {
        self.outer.function(name)
    }
}

fn call_fn(
    f: &ast::FnDef,
    args: &[(Option<String>, Value)],
    env: &dyn Env,
    span: Span,
    depth: usize,
) -> Result<Value, EvalError> {
    let mut locals = BTreeMap::new();
    let mut positional = args.iter().filter(|(n, _)| n.is_none()).map(|(_, v)| v);
    for p in &f.params {
        let named = args.iter().find(|(n, _)| n.as_deref() == Some(p.name.name.as_str())).map(|(_, v)| v);
        let v = match named.or_else(|| positional.next()) {
            Some(v) => v.clone(),
            None => match &p.default {
                Some(d) => eval_at(d, env, depth + 1)?,
                None => return err(span, format!("`{}` needs an argument for `{}`", f.name.name, p.name.name)),
            },
        };
        let v = match (p.ty.map(|t| t.0), &v) {
            (Some(ast::TypeName::Float), Value::Int(i)) => Value::Float(*i as f64),
            _ => v,
        };
        locals.insert(p.name.name.clone(), v);
    }
    eval_at(&f.body, &FnEnv { locals, outer: env }, depth + 1)
}

/// An environment of plain variables and no functions.
impl Env for BTreeMap<String, Value> {
    fn lookup(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }

    fn function(&self, _: &str) -> Option<&ast::FnDef> {
        None
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    /// Every kind of value reads back from its JSON as itself; one-element lists of strings,
    /// numbers and pairs are lists, not the symbol, duration or call that has as many fields.
    #[test]
    fn values_round_trip_through_json_lists_included() {
        let sym = |s: &str| Value::Sym(Symbol { sym: s.into() });
        let values = vec![
            Value::List(vec![Value::Str("id".into())]),
            Value::List(vec![Value::Float(1.5)]),
            Value::List(vec![Value::Str("f".into()), Value::List(vec![])]),
            Value::List(vec![sym("relu"), Value::Duration(Duration { seconds: 2.0 })]),
            sym("id"),
            Value::Duration(Duration { seconds: 1.5 }),
            Value::Call(CallValue {
                name: "csv".into(),
                args: vec![
                    (None, Value::Str("d.csv".into())),
                    (Some("ignore".into()), Value::List(vec![Value::Str("id".into())])),
                ],
            }),
            Value::Int(3),
            Value::Float(0.25),
            Value::Bool(true),
            Value::Str("x".into()),
        ];
        for v in values {
            let json = serde_json::to_string(&v).expect("serialises");
            let back: Value = serde_json::from_str(&json).expect("deserialises");
            assert_eq!(back, v, "{json}");
        }
    }
}
