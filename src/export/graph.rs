//! A small builder of ONNX graphs: nodes with fresh output names, constants as
//! initializers, attributes.
//!
//! Takes operator names, input names and attributes; gives the `proto::GraphProto` pieces.
//! **Invariant:** every name a node or constant gets is new in the graph (a counter, under
//! the builder's current prefix), so the nodes of several networks (an ensemble's members)
//! never collide.

use super::proto::{AttributeProto, NodeProto, TensorProto, attribute_type, data_type};

/// Nodes and constants being built, in order (nodes are added in topological order).
#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<NodeProto>,
    pub constants: Vec<TensorProto>,
    /// Prepended to every new name (`m0/` for an ensemble's first member).
    pub prefix: String,
    count: usize,
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.count += 1;
        format!("{}{hint}_{}", self.prefix, self.count)
    }

    /// One node of `op` with one output; gives the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.node_n(op, inputs, 1, attrs).swap_remove(0)
    }

    /// One node with `outputs` outputs; gives their names.
    pub fn node_n(&mut self, op: &str, inputs: &[&str], outputs: usize, attrs: Vec<AttributeProto>) -> Vec<String> {
        let name = self.fresh(op);
        let output: Vec<String> = (0..outputs.max(1)).map(|k| format!("{name}:{k}")).collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.clone(),
            name,
            op_type: op.to_string(),
            domain: String::new(),
            attribute: attrs,
        });
        output
    }

    /// A float constant of shape `dims` (row-major `values`).
    pub fn floats(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(hint);
        self.constants.push(TensorProto {
            dims: dims.iter().map(|d| *d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    /// A scalar float constant.
    pub fn scalar(&mut self, v: f32) -> String {
        self.floats("c", &[], &[v])
    }

    /// A 1-D int64 constant (shapes, axes, slice bounds).
    pub fn ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh("i");
        self.constants.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: data_type::INT64,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    // Shorthands for the operators used most.

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.node("Mul", &[a, b], vec![])
    }

    pub fn sub(&mut self, a: &str, b: &str) -> String {
        self.node("Sub", &[a, b], vec![])
    }

    pub fn matmul(&mut self, a: &str, b: &str) -> String {
        self.node("MatMul", &[a, b], vec![])
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.node("Transpose", &[x], vec![ints("perm", perm)])
    }

    /// `Reshape` to `shape` (0 copies the input's size there, -1 infers it).
    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.ints(shape);
        self.node("Reshape", &[x, &s], vec![])
    }

    pub fn unsqueeze(&mut self, x: &str, axes: &[i64]) -> String {
        let a = self.ints(axes);
        self.node("Unsqueeze", &[x, &a], vec![])
    }

    /// `ReduceSum` over `axes` (axes are an input since opset 13).
    pub fn reduce_sum(&mut self, x: &str, axes: &[i64], keep: bool) -> String {
        let a = self.ints(axes);
        self.node("ReduceSum", &[x, &a], vec![int("keepdims", i64::from(keep))])
    }

    /// `ReduceMean` / `ReduceMax` over `axes` (an attribute up to opset 17).
    pub fn reduce(&mut self, op: &str, x: &str, axes: &[i64], keep: bool) -> String {
        self.node(op, &[x], vec![ints("axes", axes), int("keepdims", i64::from(keep))])
    }

    /// `x[.., start..end, ..]` along `axis`.
    pub fn slice(&mut self, x: &str, axis: i64, start: i64, end: i64) -> String {
        let (s, e, a) = (self.ints(&[start]), self.ints(&[end]), self.ints(&[axis]));
        self.node("Slice", &[x, &s, &e, &a], vec![])
    }
}

pub fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i, ..Default::default() }
}

pub fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::FLOAT, f, ..Default::default() }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INTS, ints: v.to_vec(), ..Default::default() }
}

pub fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::STRING, s: s.as_bytes().to_vec(), ..Default::default() }
}
