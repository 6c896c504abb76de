//! The one place the CLI writes text. Much of what it prints comes from outside: a migration's
//! log lines, a manifest's field names quoted by the parser, a `StopTask --reason`, an alarm's
//! reason. Raw, `ESC ] 0 ; … BEL` retitles the operator's terminal, `ESC [ 2 J` clears it, and a
//! bidi override makes a line read otherwise than it is. So every text passes [`clean`] (C0 and C1
//! controls, DEL, Unicode bidi and zero-width format characters shown escaped, `\u{1b}`), and JSON
//! passes [`json`] (the same characters as JSON escapes, so `--json` stays exact JSON with the same
//! values). `clippy.toml` (`disallowed-macros`) keeps `println!` and `eprintln!` out of the rest of
//! the crate: [`outln!`] and [`errln!`] are the way to print.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as it is. Newline and tab stay: the CLI's own multi-line
/// text uses them, and they move the cursor only as text does.
pub fn hostile(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        // C0, DEL and C1 (C1's CSI, U+009B, is ESC [ on terminals that read 8-bit controls).
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Format characters that reorder or hide text: soft hyphen, Arabic letter mark, Mongolian
        // vowel separator, zero-width space/joiners and LRM/RLM, line and paragraph separators,
        // bidi embeddings and overrides, word joiner and invisible operators, bidi isolates and
        // deprecated format characters, BOM, interlinear annotation, and the tag characters.
        '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' => true,
        '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' => true,
        '\u{e0000}'..='\u{e007f}' => true,
        _ => false,
    }
}

/// `text` with every [`hostile`] character written as Rust writes it escaped (`\u{1b}`), so a
/// person sees that it was there and what it was. Borrowed when there is nothing to escape.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hostile) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hostile(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` as one line of JSON whose strings carry no [`hostile`] character raw: serde already
/// escapes C0 controls; the others become `\uXXXX` escapes (UTF-16 pairs above the BMP), which a
/// JSON reader decodes to the same string.
pub fn json(value: &impl serde::Serialize) -> String {
    escape_json(serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string())))
}

/// [`json`], indented.
pub fn json_pretty(value: &impl serde::Serialize) -> String {
    escape_json(serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string())))
}

fn escape_json(text: String) -> String {
    if !text.chars().any(hostile) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    // Outside strings JSON holds only ASCII punctuation, digits, letters and whitespace, so every
    // hostile character is inside a string, where an escape means the same character.
    for c in text.chars() {
        if hostile(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Prints one line on standard output, through [`clean`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        #[allow(clippy::disallowed_macros)]
        let () = println!("{}", $crate::output::clean(&format!($($arg)*)));
    }};
}

/// Prints text on standard output without a newline of its own, through [`clean`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        #[allow(clippy::disallowed_macros)]
        let () = print!("{}", $crate::output::clean(&format!($($arg)*)));
    }};
}

/// Prints one line on standard error, through [`clean`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        #[allow(clippy::disallowed_macros)]
        let () = eprintln!("{}", $crate::output::clean(&format!($($arg)*)));
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a hostile migration, manifest, stop reason or alarm may hold: a terminal title and a
    /// clear screen, a C1 CSI, a right-to-left override, a zero-width space.
    pub const HOSTILE: &str = "ok\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}txt.exe\u{200b}!";

    #[test]
    fn controls_bidi_and_zero_width_characters_are_shown_escaped() {
        assert_eq!(clean(HOSTILE), "ok\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{9b}31m\\u{202e}txt.exe\\u{200b}!");
    }

    #[test]
    fn plain_text_newlines_and_tabs_pass_unchanged() {
        let text = "release web/4cf03d1\n\tSucceeded — 5 of 5 probes passed, 東京";
        assert!(matches!(clean(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn a_carriage_return_cannot_overwrite_the_line_it_is_on() {
        assert_eq!(clean("approved by alice\rapproved by mallory"), "approved by alice\\u{d}approved by mallory");
    }

    #[test]
    fn json_stays_exact_json_with_the_same_values_and_nothing_raw() {
        let value = serde_json::json!({"line": HOSTILE, "emoji": "🚀", "tag": "\u{e0041}"});
        let text = json(&value);
        assert!(!text.chars().any(hostile), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        let pretty = json_pretty(&value);
        assert!(!pretty.chars().any(|c| hostile(c) && c != '\n'), "{pretty}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&pretty).unwrap(), value);
    }
}
