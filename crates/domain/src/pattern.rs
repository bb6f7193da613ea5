//! The rules of the parsed string values, as the OpenAPI document states them: a regular
//! expression (ECMA 262, anchored) and lengths next to each parser, and a test that the two agree.

/// A string schema with `pattern`, `minLength`, `maxLength`, a description and an example.
#[cfg(feature = "openapi")]
pub(crate) fn string_schema(
    pattern: String,
    lengths: (usize, usize),
    description: &str,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .min_length(Some(lengths.0))
        .max_length(Some(lengths.1))
        .description(Some(description))
        .examples([example])
        .into()
}

/// Asserts that a published rule (`pattern` and a length bound in characters) accepts exactly
/// what `parses` accepts, over `samples` and every string of up to `depth` characters from
/// `alphabet`.
#[cfg(test)]
pub(crate) fn assert_agrees(
    pattern: &str,
    max_len: usize,
    parses: impl Fn(&str) -> bool,
    samples: &[&str],
    alphabet: &[char],
    depth: usize,
) {
    let regex = regex::Regex::new(pattern).unwrap();
    let mut all: Vec<String> = samples.iter().map(|s| (*s).to_owned()).collect();
    let mut frontier = vec![String::new()];
    for _ in 0..depth {
        frontier = frontier
            .iter()
            .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
            .collect();
        all.extend(frontier.iter().cloned());
    }
    for s in &all {
        let published = regex.is_match(s) && s.chars().count() <= max_len;
        assert_eq!(published, parses(s), "pattern and parser disagree on {s:?}");
    }
}
