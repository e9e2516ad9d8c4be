//! The one definition of a searchable "word", shared by every store.
//!
//! Stores differ in how their full-text engines split text (SQLite's `unicode61`
//! tokenizer, PostgreSQL's parser with the `simple` configuration), so neither sees raw
//! text: they index [`index_text`] and query with [`query_terms`]. A word is a maximal run
//! of Unicode alphanumeric characters, lowercased; everything else separates words. No
//! character of a query is an operator.

/// The words of `text`, lowercased, in order, duplicates kept.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// What a store indexes for a message body: its words joined by single spaces.
#[must_use]
pub fn index_text(body: &str) -> String {
    words(body).collect::<Vec<_>>().join(" ")
}

/// The distinct words of a query; a message matches when it contains every one of them.
/// Empty when the query has no word (such a query matches nothing; it is not an error).
#[must_use]
pub fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in words(query) {
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_separators() {
        assert_eq!(
            query_terms(r#"foo* -bar "baz" AND (qux)"#),
            ["foo", "bar", "baz", "and", "qux"]
        );
    }

    #[test]
    fn unicode_words_are_lowercased_not_folded() {
        assert_eq!(index_text("Café, CAFÉ! Straße 42x"), "café café straße 42x");
    }

    #[test]
    fn no_words_is_empty() {
        assert!(query_terms("!!! ??? ***").is_empty());
    }
}
