//! What an invalidation selects (`Selector`): a key, a prefix, a tag or a route's objects. Its
//! own file, so the shared tier's purge reads it without importing the store that uses both.

/// What an invalidation selects.
#[derive(Debug, Clone)]
pub enum Selector {
    Key(String),
    Prefix(String),
    Tag(String),
    /// Everything one route stored.
    Route(String),
}

impl Selector {
    pub(super) fn field(&self) -> &'static str {
        match self {
            Selector::Key(_) => "key",
            Selector::Prefix(_) => "prefix",
            Selector::Tag(_) => "tag",
            Selector::Route(_) => "route",
        }
    }

    pub(super) fn value(&self) -> &str {
        match self {
            Selector::Key(v) | Selector::Prefix(v) | Selector::Tag(v) | Selector::Route(v) => v,
        }
    }
}
