#![allow(clippy::print_stdout)]
fn main() {
    let p = std::env::args().nth(1).unwrap_or_default();
    let t = std::fs::read_to_string(&p).unwrap_or_default();
    match bma::syntax::parse(bma::source::FileId(0), &t) {
        Ok(f) => println!("{} items", f.items.len()),
        Err(d) => {
            let mut s = bma::source::Sources::default();
            s.add(bma::source::Source::new(p, t));
            println!("{}", bma::diagnostic::render(&d, &s, bma::diagnostic::RenderOptions { width: 80, color: false }))
        }
    }
}
