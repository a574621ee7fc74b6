//! Splitting a bench's `--strategies` list: `a,b(x: 1, y: 2),c` at the top-level commas
//! (shared by benches/search_suite.rs and benches/search_moo.rs).

/// Splits `a,b(x: 1, y: 2),c` at the top-level commas.
pub fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for ch in s.chars() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}
