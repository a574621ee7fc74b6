//! The exact text forms of a trial's numbers, shared by every store: JSON cannot
//! hold NaN or infinities and serde_json's float parsing is not bit-exact, so
//! floats are written as Rust's shortest round-trip text and parsed back exactly,
//! and parameter values through their bit patterns (a resumed study must ask with
//! the same points).

use std::collections::BTreeMap;

use super::StoreError;
use crate::ir::{Point, Value};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

// JSON cannot hold NaN or infinities, and its float parsing is not exact: floats are stored as text.
// Rust's shortest round-trip text, parsed back exactly (serde_json's float parsing is not).
fn float_json(x: f64) -> serde_json::Value {
    serde_json::Value::String(x.to_string())
}

fn json_float(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        serde_json::Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

pub(super) fn floats_to_text(xs: &[f64]) -> String {
    serde_json::Value::Array(xs.iter().map(|x| float_json(*x)).collect()).to_string()
}

pub(super) fn text_to_floats(s: &str) -> Vec<f64> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Array(a)) => a.iter().map(json_float).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn metrics_to_text(m: &BTreeMap<String, f64>) -> String {
    serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), float_json(*v))).collect()).to_string()
}

pub(super) fn text_to_metrics(s: &str) -> BTreeMap<String, f64> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), json_float(v))).collect(),
        _ => BTreeMap::new(),
    }
}

// Params are stored exactly: serde_json's default float parsing is not bit-exact,
// so floats go through their bit patterns (a resumed study must ask with the same points).
fn exact(v: &Value) -> serde_json::Value {
    use serde_json::json;
    match v {
        Value::Float(x) => json!({ "f64": x.to_bits().to_string() }),
        Value::List(items) => json!({ "list": items.iter().map(exact).collect::<Vec<_>>() }),
        Value::Call(c) => {
            json!({ "call": c.name, "args": c.args.iter().map(|(k, v)| json!([k, exact(v)])).collect::<Vec<_>>() })
        }
        Value::Duration(d) => json!({ "duration": d.seconds.to_bits().to_string() }),
        other => json!({ "plain": other }),
    }
}

fn inexact(j: &serde_json::Value) -> Result<Value, StoreError> {
    let bad = || backend(format!("stored value does not parse: {j}"));
    let bits =
        |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok()).map(f64::from_bits).ok_or_else(bad);
    let o = j.as_object().ok_or_else(bad)?;
    if let Some(v) = o.get("f64") {
        return Ok(Value::Float(bits(v)?));
    }
    if let Some(v) = o.get("duration") {
        return Ok(Value::Duration(crate::ir::Duration { seconds: bits(v)? }));
    }
    if let Some(serde_json::Value::Array(items)) = o.get("list") {
        return Ok(Value::List(items.iter().map(inexact).collect::<Result<_, _>>()?));
    }
    if let (Some(name), Some(serde_json::Value::Array(args))) = (o.get("call").and_then(|n| n.as_str()), o.get("args"))
    {
        let mut out = Vec::new();
        for a in args {
            let pair = a.as_array().ok_or_else(bad)?;
            let key = pair.first().and_then(|k| k.as_str()).map(str::to_string);
            out.push((key, inexact(pair.get(1).ok_or_else(bad)?)?));
        }
        return Ok(Value::Call(crate::ir::CallValue { name: name.to_string(), args: out }));
    }
    let plain = o.get("plain").ok_or_else(bad)?;
    serde_json::from_value(plain.clone()).map_err(|_| bad())
}

pub(super) fn point_to_text(p: &Point) -> Result<String, StoreError> {
    let map: serde_json::Map<String, serde_json::Value> = p.iter().map(|(k, v)| (k.clone(), exact(v))).collect();
    Ok(serde_json::Value::Object(map).to_string())
}

pub(super) fn text_to_point(s: Option<String>) -> Result<Point, StoreError> {
    let Some(s) = s else { return Ok(Point::new()) };
    let j: serde_json::Value =
        serde_json::from_str(&s).map_err(|e| backend(format!("stored params do not parse: {e}")))?;
    let o = j.as_object().ok_or_else(|| backend("stored params are not an object"))?;
    o.iter().map(|(k, v)| Ok((k.clone(), inexact(v)?))).collect()
}
