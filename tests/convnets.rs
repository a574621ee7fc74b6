//! The checker on the modern convnet layers (`conv2d`'s `groups`, `conv_transpose2d`,
//! `upsample`, `groupnorm`, `rmsnorm`, `multiply`) and the std::blocks built on them:
//! clean specs check clean; bad arguments and shapes anywhere in the search space are
//! reported with their code, the argument's span, and help.

use bma::Source;

/// The diagnostics of a digits experiment whose model is `model`: (code, message, the
/// primary label's source text, help).
fn check(model: &str) -> Vec<(String, String, String, String)> {
    check_space("", model)
}

/// As [`check`], with a `space { … }` body.
fn check_space(space: &str, model: &str) -> Vec<(String, String, String, String)> {
    let space = if space.is_empty() { String::new() } else { format!("space {{ {space} }}\n") };
    let src = format!(
        "use std::blocks::{{squeeze_excite, inverted_residual}}\n\
         experiment t {{\n  data = digits(split: [0.7, 0.15, 0.15], seed: 1)\n  {space}  model {{\n    {model}\n  }}\n  \
         objective {{ maximize accuracy }}\n}}\n"
    );
    let compiled = bma::compile(&Source::new("t.bma", &src));
    compiled
        .diagnostics
        .iter()
        .filter(|d| d.severity == bma::diagnostic::Severity::Error)
        .map(|d| {
            let span = &src[d.primary.span.start as usize..d.primary.span.end as usize];
            (d.code.as_str().to_string(), d.message.clone(), span.to_string(), d.help.clone().unwrap_or_default())
        })
        .collect()
}

fn one_error(model: &str) -> (String, String, String, String) {
    let errors = check(model);
    assert_eq!(errors.len(), 1, "{model}: {errors:#?}");
    errors.into_iter().next().unwrap_or_default()
}

#[test]
fn the_new_layers_check_clean() {
    for model in [
        "reshape(4, 4, 4) conv2d(8, groups: 2) conv2d(8, kernel: 3, groups: 8) global_avgpool dense(data.classes)",
        "reshape(4, 4, 4) conv_transpose2d(2, kernel: 3, stride: 2, padding: valid) flatten dense(data.classes)",
        "reshape(4, 4, 4) upsample(2, mode: bilinear) groupnorm(4) rmsnorm flatten dense(data.classes)",
        "reshape(8, 8) rmsnorm flatten dense(data.classes)",
        "reshape(4, 4, 4)\n let m = conv2d(4)\n let g = m -> global_avgpool -> sigmoid\n multiply(m, g) flatten dense(data.classes)",
        "conv2d(8) squeeze_excite(8, ratio: 4) inverted_residual(16, 8, 1) inverted_residual(16, 12, 2) \
         global_avgpool dense(data.classes)",
    ] {
        assert_eq!(check(model), Vec::new(), "{model}");
    }
}

#[test]
fn groups_that_do_not_divide_the_channels_are_reported_at_the_point_that_has_them() {
    // Over the whole space: groups 3 divides neither 4 channels nor 8 filters.
    let errors =
        check_space("g: int in {1, 2, 3}", "reshape(4, 4, 4) conv2d(8, groups: g) flatten dense(data.classes)");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let (code, message, span, help) = errors.into_iter().next().unwrap_or_default();
    assert_eq!(code, "invalid_value");
    assert!(message.contains("`groups: 3` does not divide the 4 input channels and the 8 filters"), "{message}");
    assert_eq!(span, "g");
    assert!(help.contains("one of 1, 2, 4"), "{help}");
    let (code, message, span, _) = one_error("reshape(4, 4, 4) conv2d(4, groups: 0) flatten dense(data.classes)");
    assert_eq!((code.as_str(), span.as_str()), ("invalid_value", "0"), "{message}");
}

#[test]
fn groupnorm_needs_a_divisor_of_the_channels_and_an_image() {
    let (code, message, span, help) = one_error("reshape(4, 4, 4) conv2d(6) groupnorm(4) flatten dense(data.classes)");
    assert_eq!(code, "invalid_value");
    assert_eq!(message, "`groupnorm(4)` does not divide the 6 channels");
    assert_eq!(span, "4");
    assert!(help.contains("one of 1, 2, 3, 6"), "{help}");
    let (code, message, _, _) = one_error("flatten groupnorm(2) dense(data.classes)");
    assert_eq!(code, "shape_error");
    assert!(message.contains("`groupnorm` needs an image input"), "{message}");
}

#[test]
fn transposed_convolutions_and_upsampling_need_images_and_known_modes() {
    let (code, message, span, _) = one_error("flatten conv_transpose2d(4) dense(data.classes)");
    assert_eq!(code, "shape_error");
    assert!(message.contains("`conv_transpose2d` needs an image input"), "{message}");
    assert_eq!(span, "conv_transpose2d(4)");
    let (code, message, _, _) = one_error("flatten upsample(2) dense(data.classes)");
    assert_eq!(code, "shape_error");
    assert!(message.contains("`upsample` needs an image input"), "{message}");
    let errors = check("upsample(2, mode: cubic) flatten dense(data.classes)");
    assert!(!errors.is_empty() && errors.iter().all(|e| e.2 == "cubic"), "{errors:#?}");
    let (code, _, span, _) = one_error("upsample(factor: 0) flatten dense(data.classes)");
    assert_eq!((code.as_str(), span.as_str()), ("invalid_value", "0"));
}

#[test]
fn multiply_takes_one_shape_or_a_per_channel_scale() {
    let (code, message, _, help) = one_error(
        "reshape(4, 4, 4)\n let m = conv2d(4)\n let g = m -> global_avgpool -> dense(3)\n multiply(m, g) flatten dense(data.classes)",
    );
    assert_eq!(code, "shape_error");
    assert_eq!(message, "cannot multiply tensors of these shapes");
    assert!(help.contains("one per channel; this one has 3"), "{help}");
    let (code, _, _, help) = one_error(
        "reshape(4, 4, 4)\n let a = conv2d(4)\n let b = a -> conv2d(4, stride: 2)\n multiply(a, b) flatten dense(data.classes)",
    );
    assert_eq!(code, "shape_error");
    assert!(help.contains("[4, 2, 2] does not fit [4, 4, 4]"), "{help}");
    let (code, _, _, _) = one_error("reshape(4, 4, 4)\n let a = conv2d(4)\n multiply(a) flatten dense(data.classes)");
    assert_eq!(code, "bad_arguments");
}
