//! The encoding pieces of the export: `.npy`/`.npz` test vectors and the protobuf messages.

use prost::Message;

use super::proto::{ModelProto, NodeProto};
use super::{npy, npz};

#[test]
fn npy_files_have_numpys_header_and_the_values_in_order() {
    let bytes = npy(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).expect("an ASCII header");
    assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), "{header}");
    assert!(header.ends_with('\n'));
    let body = &bytes[bytes.len() - 24..];
    assert_eq!(f32::from_le_bytes([body[20], body[21], body[22], body[23]]), 6.0);
    // The data starts 64-byte aligned, as NumPy writes it.
    assert_eq!((bytes.len() - 24) % 64, 0);
    let one = npy(&[4], &[0.0; 4]);
    assert!(std::str::from_utf8(&one[10..74]).expect("ASCII").contains("'shape': (4,)"));
}

#[test]
fn npz_archives_hold_each_array_by_name() {
    let bytes = npz(&[("input", &[1, 2], &[1.0, 2.0]), ("output", &[1, 1], &[0.5])]).expect("an archive");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let names: Vec<String> = (0..zip.len()).map(|i| zip.by_index(i).expect("entry").name().to_string()).collect();
    assert_eq!(names, ["input.npy", "output.npy"]);
}

#[test]
fn onnx_messages_round_trip_through_prost() {
    let model = ModelProto {
        ir_version: 8,
        producer_name: "bma".into(),
        graph: Some(super::proto::GraphProto {
            node: vec![NodeProto {
                op_type: "Relu".into(),
                input: vec!["x".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = model.encode_to_vec();
    // Field 1 (ir_version, varint) comes first: tag byte 0x08, then 8.
    assert_eq!(&bytes[..2], &[0x08, 8]);
    assert_eq!(ModelProto::decode(bytes.as_slice()).expect("decodes"), model);
}
