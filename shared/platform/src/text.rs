//! Free text the services keep and show to people (names of participants,
//! schools and delivery partners; notes). A name must show something: one
//! made only of spaces, zero-width or other format characters would pass
//! "is required" yet be blank on every screen. Bidirectional controls are
//! refused everywhere: U+202E and friends reorder what a reader sees (a name
//! that displays as another, an audit line that reads backwards).

use crate::error::FieldViolation;

/// Unicode's bidirectional formatting characters (UAX #9): ALM, LRM, RLM,
/// LRE..RLO, LRI..PDI.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Unicode general category Cf (format characters, Unicode 15.1): they
/// change how neighbours render but show nothing themselves.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Characters that render as nothing: white space (Zs, Zl, Zp and the
/// spacing controls), controls (Cc), format characters (Cf), and the fillers
/// and selectors that fonts draw blank (Hangul fillers, the braille blank,
/// the combining grapheme joiner, variation selectors).
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || is_format(c)
        || matches!(
            c,
            '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FFA0}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// A required one-line name of at most `max_chars` characters, trimmed: at
/// least one visible character, no control or line-separator characters and
/// no bidirectional controls. Zero-width joiners inside a name stay (scripts
/// and emoji need them).
pub fn name(field: &str, value: &str, max_chars: usize) -> Result<String, FieldViolation> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(FieldViolation::new(field, format!("is longer than {max_chars} characters")));
    }
    if trimmed.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
        return Err(FieldViolation::new(field, "contains control characters or line breaks: a name is one line"));
    }
    refuse_bidi_controls(field, trimmed)?;
    if trimmed.chars().all(is_invisible) {
        return Err(FieldViolation::new(
            field,
            "is required: it has no visible character (only spaces, zero-width or other format characters)",
        ));
    }
    Ok(trimmed.to_owned())
}

/// An optional free-text note of at most `max_chars` characters, trimmed:
/// line breaks and tabs allowed, other controls and bidirectional controls
/// refused.
pub fn note(field: &str, value: &str, max_chars: usize) -> Result<String, FieldViolation> {
    if value.chars().count() > max_chars {
        return Err(FieldViolation::new(field, format!("is longer than {max_chars} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(FieldViolation::new(field, "contains control characters"));
    }
    refuse_bidi_controls(field, value)?;
    Ok(value.trim().to_owned())
}

fn refuse_bidi_controls(field: &str, value: &str) -> Result<(), FieldViolation> {
    match value.chars().find(|c| is_bidi_control(*c)) {
        Some(c) => Err(FieldViolation::new(
            field,
            format!(
                "contains the bidirectional control character U+{:04X}, which reorders what a reader sees: remove it",
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_of_only_zero_width_or_format_characters_is_refused_as_blank() {
        for blank in
            ["\u{200B}", "\u{200B}\u{200C}\u{200D}", " \u{FEFF} ", "\u{2060}\u{00AD}", "\u{3164}", "\u{00A0}\u{3000}"]
        {
            let err = name("full_name", blank, 200).expect_err(blank);
            assert_eq!(err.field, "full_name");
            assert!(err.description.starts_with("is required"), "{blank:?}: {}", err.description);
        }
    }

    #[test]
    fn every_bidirectional_control_is_refused_in_names_and_notes() {
        let controls = ['\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}'];
        for c in controls.into_iter().chain('\u{2066}'..='\u{2069}') {
            let text = format!("Ada {c}ecalevoL");
            let err = name("name", &text, 200).expect_err("bidi in a name");
            assert!(err.description.contains("bidirectional"), "{}", err.description);
            assert!(note("note", &text, 2000).is_err(), "bidi in a note: U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn names_in_any_script_with_joiners_inside_are_kept() {
        for ok in ["Ada Lovelace", "محمد علی", "שרה כהן", "क्‍ष", "Zoë O'Brien-Smith", "👩\u{200D}🏫 Jo"]
        {
            assert_eq!(name("n", &format!("  {ok} "), 200).as_deref(), Ok(ok));
        }
    }

    #[test]
    fn a_line_separator_in_a_name_is_refused_but_a_note_keeps_its_line_breaks() {
        assert!(name("n", "Ada\u{2028}Lovelace", 200).is_err());
        assert!(name("n", "Ada\nLovelace", 200).is_err());
        assert_eq!(note("note", "first line\nsecond line", 2000).as_deref(), Ok("first line\nsecond line"));
        assert_eq!(note("note", "", 2000).as_deref(), Ok(""));
    }
}
