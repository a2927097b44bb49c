//! Key paths such as `routes[1].fallback.static.status`: how problems name a setting, and how
//! the checks find the line and column of a setting in the positioned tree.
//!
//! List indices count from 0, as in JSON Path and jq. A key that is not a plain word (it holds
//! a dot, a space, a quote…) is written in double quotes: `upstreams."inventory.v2"`.

use crate::yaml::{Kind, Node, Pos};
use std::fmt;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    /// The root.
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path, then `key`.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        KeyPath(segs)
    }

    /// This path, then `key.sub.keys` split at dots.
    pub fn keys(&self, dotted: &str) -> KeyPath {
        let mut segs = self.0.clone();
        segs.extend(dotted.split('.').map(|k| Seg::Key(k.to_string())));
        KeyPath(segs)
    }

    /// This path, then list item `index`.
    pub fn index(&self, index: usize) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    /// The node at this path, or the deepest node on the way when the path goes past what the
    /// file wrote (a key left at its default), and whether the whole path was found.
    fn walk<'n>(&self, root: &'n Node) -> (&'n Node, bool) {
        let mut node = root;
        for seg in &self.0 {
            let next = match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(_)) => node.get(k),
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return (node, false),
            }
        }
        (node, true)
    }

    /// The position to report for this path: its value, or the nearest enclosing node the
    /// file wrote; and whether the whole path was found.
    pub fn locate(&self, root: &Node) -> (Pos, bool) {
        let (node, found) = self.walk(root);
        (node.pos, found)
    }

    /// Like [`KeyPath::locate`], but for a path ending in a key, the position of the key
    /// itself rather than of its value: for problems with the key (a bad name).
    pub fn locate_key(&self, root: &Node) -> (Pos, bool) {
        let Some((Seg::Key(key), parent)) = self.0.split_last() else {
            return self.locate(root);
        };
        let (parent, found) = KeyPath(parent.to_vec()).walk(root);
        match parent.entry(key) {
            Some(entry) if found => (entry.key.pos, true),
            _ => (parent.pos, false),
        }
    }
}

/// True when `key` can be written without quotes in a path.
fn is_word(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn write_key(out: &mut impl fmt::Write, key: &str) -> fmt::Result {
    if is_word(key) {
        out.write_str(key)
    } else {
        write!(out, "{key:?}")
    }
}

/// `path` followed by `key`, both as display text (used where no [`KeyPath`] is at hand).
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let mut out = String::from(path);
    if !out.is_empty() {
        out.push('.');
    }
    let _ = write_key(&mut out, key);
    out
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write_key(f, k)?;
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_jq() {
        let p = KeyPath::root().key("routes").index(1).key("upstream");
        assert_eq!(p.to_string(), "routes[1].upstream");
        let p = KeyPath::root()
            .key("upstreams")
            .key("inventory.v2")
            .keys("breaker.open");
        assert_eq!(p.to_string(), "upstreams.\"inventory.v2\".breaker.open");
        assert_eq!(join_key("a[0]", "x-id"), "a[0].x-id");
        assert_eq!(join_key("", "a b"), "\"a b\"");
    }

    #[test]
    fn locates_the_deepest_written_node() {
        let doc = crate::yaml::read("routes:\n  - upstream: a\n    match: {path: /x}\n")
            .expect("valid")
            .root
            .expect("root");
        let p = KeyPath::root().key("routes").index(0).key("upstream");
        assert_eq!(
            p.locate(&doc),
            (
                Pos {
                    line: 2,
                    column: 15
                },
                true
            )
        );
        let p = KeyPath::root()
            .key("routes")
            .index(0)
            .keys("retry.max_attempts");
        assert_eq!(p.locate(&doc), (Pos { line: 2, column: 5 }, false));
        let p = KeyPath::root().key("routes").index(7);
        assert!(!p.locate(&doc).1);
    }
}
