//! Feeds arbitrary UTF-8 to the whole front end: parse, lower, check (shapes over
//! the space included). A panic, or a diagnostic span outside its source or off a
//! char boundary, is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let source = bma::Source::new("fuzz.bma", text);
    let compiled = bma::compile(&source);
    for d in &compiled.diagnostics {
        for label in std::iter::once(&d.primary).chain(&d.secondary) {
            let Some(src) = compiled.sources.get(label.span.file) else { panic!("span in an unknown file: {d:?}") };
            let (start, end) = (label.span.start as usize, label.span.end as usize);
            assert!(start <= end && end <= src.text.len(), "span {start}..{end} outside {} bytes: {d:?}", src.text.len());
            assert!(src.text.is_char_boundary(start) && src.text.is_char_boundary(end), "span off a char boundary: {d:?}");
        }
    }
});
