//! `parse` never panics, whatever the text: arbitrary strings, YAML-shaped noise, and the
//! example config with bytes deleted, inserted and lines shuffled. Every error it returns
//! has a position inside the text (or 1:1) and a message.

use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../examples/levee.yaml");

fn check(text: &str) {
    match levee_config::parse(text, "fuzz.yaml") {
        Ok(_) => {}
        Err(err) => {
            let lines = text.lines().count().max(1) + 1;
            for p in err.problems() {
                assert!(!p.message.is_empty());
                // The loader catches a panic in the YAML parser and reports it as this.
                assert!(!p.message.contains("internal error"), "{p}\n{text:?}");
                assert!(
                    p.line >= 1 && p.line <= lines,
                    "{p} (text has {lines} lines)"
                );
                assert!(p.column >= 1, "{p}");
            }
        }
    }
}

/// Characters that mean something to YAML, plus letters and digits.
fn yaml_noise() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("\n".to_string()),
            Just("  ".to_string()),
            Just("- ".to_string()),
            Just(": ".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(", ".to_string()),
            Just("&a ".to_string()),
            Just("*a".to_string()),
            Just("<<: ".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("|\n".to_string()),
            Just("? ".to_string()),
            Just("!!str ".to_string()),
            Just("---\n".to_string()),
            Just("\t".to_string()),
            Just("#".to_string()),
            "[a-z_]{1,12}",
            "[0-9]{1,5}(ms|s)?",
            Just("listeners".to_string()),
            Just("routes".to_string()),
            Just("upstreams".to_string()),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in "\\PC*") {
        check(&text);
    }

    #[test]
    fn yaml_shaped_noise(text in yaml_noise()) {
        check(&text);
    }

    #[test]
    fn mutated_example(cuts in proptest::collection::vec((0usize..4000, 0usize..40, "\\PC{0,4}"), 1..6)) {
        let mut text: Vec<char> = EXAMPLE.chars().collect();
        for (at, len, insert) in cuts {
            let at = at % (text.len() + 1);
            let end = (at + len).min(text.len());
            text.splice(at..end, insert.chars());
        }
        check(&text.into_iter().collect::<String>());
    }

    #[test]
    fn shuffled_example_lines(swaps in proptest::collection::vec((0usize..200, 0usize..200), 1..8)) {
        let mut lines: Vec<&str> = EXAMPLE.lines().collect();
        for (a, b) in swaps {
            let (a, b) = (a % lines.len(), b % lines.len());
            lines.swap(a, b);
        }
        check(&lines.join("\n"));
    }
}

#[test]
fn every_prefix_of_the_example() {
    let chars: Vec<(usize, char)> = EXAMPLE.char_indices().collect();
    for (i, _) in chars.iter().step_by(7) {
        check(&EXAMPLE[..*i]);
    }
}

#[test]
fn known_hostile_inputs() {
    for text in [
        "{---",
        "[".repeat(100_000).as_str(),
        "{a: ".repeat(10_000).as_str(),
        "- ".repeat(10_000).as_str(),
        "a: &a [*a]",
        "? [a, b]\n: c",
        "\u{feff}listeners: []",
        "\0",
        "a: \"\\u00",
        "...\n...",
        "%YAML 1.2\n---\na: 1",
        "a: !!binary aGVsbG8=",
        "routes: [{upstream: x, match: {headers: {a: [1]}}}]",
    ] {
        check(text);
    }
}
