//! A serde `Deserializer` over the positioned tree, so that every error serde or levee-core
//! raises lands on the node it is about, with its key path.
//!
//! Why not a YAML crate's own serde support: those report one position per error at best and
//! fold the key path into the message text. Walking our own tree, each node's deserializer
//! stamps its position and path on any error that has none yet, so the innermost node wins:
//! an unknown key points at the key, a bad duration at the value, a missing key at the block.
//! The `serde::de::Error` constructors are where messages get their fixes: unknown keys list
//! the allowed ones and suggest the closest, unknown values list the choices, type errors say
//! what to write in YAML words ("a list", "a whole number") rather than Rust type names.
//!
//! Scalars: a plain scalar is resolved by the YAML 1.2 core schema for untyped requests (so
//! `50` is a number, `5s` text), while a string field accepts any scalar as text (`name: 42`
//! is the name "42"). An empty value (`retry:`) in place of a block, list or mapping means an
//! empty one, so the defaults apply.

use crate::path::KeyPath;
use crate::suggest;
use crate::yaml::{Entry, Kind, Node, Pos, Value};
use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, Unexpected, Visitor};
use std::fmt;

/// A deserialization error, positioned once a node claims it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeError {
    pub message: String,
    pub pos: Option<Pos>,
    pub path: Option<KeyPath>,
    /// The required key this error says is missing (the loader tells these apart when it
    /// checks keys one by one, where every other required key is missing on purpose).
    pub missing: Option<&'static str>,
}

impl DeError {
    fn new(message: String) -> DeError {
        DeError {
            message,
            pos: None,
            path: None,
            missing: None,
        }
    }

    /// Claims the error for `node` at `path` unless an inner node already did.
    pub fn at(mut self, node: &Node, path: &KeyPath) -> DeError {
        if self.pos.is_none() {
            self.pos = Some(node.pos);
            self.path = Some(path.clone());
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

/// Serde's words for what it expected, in YAML terms.
fn expected_words(expected: &dyn de::Expected) -> String {
    let text = expected.to_string();
    match text.as_str() {
        "u8" => "a whole number from 0 to 255".to_string(),
        "u16" => "a whole number from 0 to 65535".to_string(),
        "u32" | "u64" | "usize" => "a whole number (0 or more)".to_string(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a boolean" => "true or false".to_string(),
        "a string" => "a text value".to_string(),
        "a sequence" => "a list (`- item` lines or `[a, b]`)".to_string(),
        "a map" => "a mapping (`key: value` lines or `{key: value}`)".to_string(),
        t if t.starts_with("struct ") => {
            "a block of settings (`key: value` lines or `{key: value}`)".to_string()
        }
        t if t.starts_with("enum ") => "one of the allowed words".to_string(),
        _ => text,
    }
}

/// What was found, in YAML terms.
fn found_words(unexpected: &Unexpected<'_>) -> String {
    match unexpected {
        Unexpected::Bool(b) => format!("`{b}`"),
        Unexpected::Unsigned(n) => format!("the number {n}"),
        Unexpected::Signed(n) => format!("the number {n}"),
        Unexpected::Float(n) => format!("the number {n}"),
        Unexpected::Char(c) => format!("the text \"{c}\""),
        Unexpected::Str(s) => format!("the text \"{s}\""),
        Unexpected::Unit | Unexpected::Option => "nothing (an empty value)".to_string(),
        Unexpected::Seq => "a list".to_string(),
        Unexpected::Map => "a mapping".to_string(),
        Unexpected::UnitVariant => "a word".to_string(),
        other => other.to_string(),
    }
}

/// A hint for a common type mistake.
fn type_hint(unexpected: &Unexpected<'_>, expected: &str) -> &'static str {
    match unexpected {
        Unexpected::Str(s) if expected == "true or false" => {
            if matches!(
                s.to_ascii_lowercase().as_str(),
                "yes" | "no" | "on" | "off" | "y" | "n"
            ) {
                "; YAML 1.2 reads this as text, so write true or false"
            } else {
                ""
            }
        }
        Unexpected::Str(s) if expected.contains("number") && s.trim().parse::<f64>().is_ok() => {
            "; remove the quotes"
        }
        _ => "",
    }
}

/// Fixes for required keys, by key name.
fn missing_hint(field: &str) -> &'static str {
    match field {
        "listeners" => ": add `listeners: [{address: 127.0.0.1:8080}]` (where traffic comes in)",
        "upstreams" => {
            ": add `upstreams:` with at least one named upstream and its `endpoints` \
             (host:port list)"
        }
        "routes" => {
            ": add `routes:` with at least one route, such as `- {match: {path_prefix: /}, \
             upstream: NAME}`"
        }
        "address" => ": write the `host:port` to listen on, such as `address: 127.0.0.1:8080`",
        "endpoints" => {
            ": list the upstream's `host:port` addresses, such as `endpoints: [127.0.0.1:7001]`"
        }
        "upstream" => {
            ": name the upstream this route sends to, such as `upstream: inventory` (a key of \
             `upstreams`)"
        }
        "path" => ": give the path to request, such as `path: /healthz`",
        "cert" => ": give the PEM certificate chain file, such as `cert: certs/server.pem`",
        "key" => ": give the PEM private key file, such as `key: certs/server.key`",
        "max_stale" => ": say how old a served response may be, such as `max_stale: 5m`",
        "rate" => ": give the sustained rate, such as `rate: 100/s`",
        "percent" => ": say which share of attempts get the fault, 0 to 100, such as `percent: 10`",
        "status" => ": give the status the injected answer has, such as `status: 503`",
        "duration" => ": say how long the delay is, such as `duration: 200ms`",
        _ => "",
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        let expected = expected_words(expected);
        let hint = type_hint(&unexpected, &expected);
        DeError::new(format!(
            "expected {expected}, found {}{hint}",
            found_words(&unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DeError::new(format!(
            "{} is out of range: expected {}",
            found_words(&unexpected),
            expected_words(expected)
        ))
    }

    fn invalid_length(len: usize, expected: &dyn de::Expected) -> Self {
        DeError::new(format!(
            "expected {}, found {len} items",
            expected_words(expected)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(format!(
            "unknown value \"{variant}\"{} (use one of: {})",
            suggest::did_you_mean(variant, expected.iter().copied()),
            expected.join(", ")
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        if expected.is_empty() {
            return DeError::new(format!("unknown key \"{field}\": this block takes no keys"));
        }
        DeError::new(format!(
            "unknown key \"{field}\"{} (allowed here: {})",
            suggest::did_you_mean(field, expected.iter().copied()),
            expected.join(", ")
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            missing: Some(field),
            ..DeError::new(format!(
                "missing required key \"{field}\"{}",
                missing_hint(field)
            ))
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::new(format!("duplicate key \"{field}\": keep one of them"))
    }
}

/// Deserializes `T` from `node`, which sits at `path`.
pub(crate) fn from_node<T: de::DeserializeOwned>(node: &Node, path: KeyPath) -> Result<T, DeError> {
    let claimed = path.clone();
    T::deserialize(NodeDe { node, path }).map_err(|e| e.at(node, &claimed))
}

/// The deserializer of one node.
struct NodeDe<'a> {
    node: &'a Node,
    path: KeyPath,
}

impl<'a> NodeDe<'a> {
    fn unexpected(&self) -> Unexpected<'a> {
        match &self.node.kind {
            Kind::Scalar(s) => match s.resolve() {
                Value::Null => Unexpected::Unit,
                Value::Bool(b) => Unexpected::Bool(b),
                Value::U64(n) => Unexpected::Unsigned(n),
                Value::I64(n) => Unexpected::Signed(n),
                Value::F64(n) => Unexpected::Float(n),
                Value::Str(_) => Unexpected::Str(&s.text),
            },
            Kind::Seq(_) => Unexpected::Seq,
            Kind::Map(_) => Unexpected::Map,
        }
    }

    fn seq<'de, V: Visitor<'de>>(self, visitor: V, items: &'a [Node]) -> Result<V::Value, DeError> {
        visitor.visit_seq(SeqDe {
            items: items.iter().enumerate(),
            path: &self.path,
        })
    }

    fn map<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        entries: &'a [Entry],
    ) -> Result<V::Value, DeError> {
        visitor.visit_map(MapDe {
            entries: entries.iter(),
            value: None,
            path: &self.path,
        })
    }
}

macro_rules! forward_and_claim {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                self.deserialize_any(visitor)
            }
        )*
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        let result = match &node.kind {
            Kind::Scalar(s) => match s.resolve() {
                Value::Null => visitor.visit_unit(),
                Value::Bool(b) => visitor.visit_bool(b),
                Value::U64(n) => visitor.visit_u64(n),
                Value::I64(n) => visitor.visit_i64(n),
                Value::F64(n) => visitor.visit_f64(n),
                Value::Str(t) => visitor.visit_str(t),
            },
            Kind::Seq(items) => self.seq(visitor, items),
            Kind::Map(entries) => self.map(visitor, entries),
        };
        result.map_err(|e| e.at(node, &path))
    }

    forward_and_claim! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_ignored_any
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        let result = match &node.kind {
            Kind::Scalar(s) if !node.is_null() => visitor.visit_str(&s.text),
            _ => Err(DeError::invalid_type(self.unexpected(), &visitor)),
        };
        result.map_err(|e| e.at(node, &path))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        let result = if node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        };
        result.map_err(|e| e.at(node, &path))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.at(node, &path))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        let result = match &node.kind {
            Kind::Seq(items) => self.seq(visitor, items),
            _ if node.is_null() => self.seq(visitor, &[]),
            _ => Err(DeError::invalid_type(self.unexpected(), &visitor)),
        };
        result.map_err(|e| e.at(node, &path))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        let result = match &node.kind {
            Kind::Map(entries) => self.map(visitor, entries),
            _ if node.is_null() => self.map(visitor, &[]),
            _ => Err(DeError::invalid_type(self.unexpected(), &visitor)),
        };
        result.map_err(|e| e.at(node, &path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        let result = match &node.kind {
            Kind::Scalar(s) if !node.is_null() => visitor.visit_enum(WordEnum {
                word: &s.text,
                node,
                path: &path,
            }),
            Kind::Map(entries) if entries.len() == 1 => visitor.visit_enum(MapEnum {
                entry: &entries[0],
                path: &path,
            }),
            _ => Err(DeError::new(format!(
                "expected one of: {}; found {}",
                variants.join(", "),
                found_words(&self.unexpected())
            ))),
        };
        result.map_err(|e| e.at(node, &path))
    }
}

/// List items, each at `path[i]`.
struct SeqDe<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'p KeyPath,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let path = self.path.index(i);
                let claimed = path.clone();
                seed.deserialize(NodeDe { node, path })
                    .map(Some)
                    .map_err(|e| e.at(node, &claimed))
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Mapping entries; keys are text, values sit at `path.key`.
struct MapDe<'a, 'p> {
    entries: std::slice::Iter<'a, Entry>,
    value: Option<(&'a Node, KeyPath)>,
    path: &'p KeyPath,
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let text = entry.key.as_text().unwrap_or_default();
        let path = self.path.key(text);
        let key: de::value::StrDeserializer<'_, DeError> = text.into_deserializer();
        let key = seed.deserialize(key).map_err(|e| e.at(&entry.key, &path))?;
        self.value = Some((&entry.value, path));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, path) = self
            .value
            .take()
            .ok_or_else(|| DeError::new("a value was read before its key".to_string()))?;
        let claimed = path.clone();
        seed.deserialize(NodeDe { node, path })
            .map_err(|e| e.at(node, &claimed))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum written as a word: `balancer: round_robin`.
struct WordEnum<'a, 'p> {
    word: &'a str,
    node: &'a Node,
    path: &'p KeyPath,
}

impl<'de, 'a, 'p> de::EnumAccess<'de> for WordEnum<'a, 'p> {
    type Error = DeError;
    type Variant = WordVariant;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, WordVariant), DeError> {
        let word: de::value::StrDeserializer<'_, DeError> = self.word.into_deserializer();
        let value = seed
            .deserialize(word)
            .map_err(|e| e.at(self.node, self.path))?;
        Ok((value, WordVariant))
    }
}

/// The variant of a word enum: a unit variant only.
struct WordVariant;

impl<'de> de::VariantAccess<'de> for WordVariant {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a mapping `{word: value}`",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a mapping `{word: [values]}`",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a mapping `{word: {key: value}}`",
        ))
    }
}

/// An enum written as a one-entry mapping: `{word: value}`.
struct MapEnum<'a, 'p> {
    entry: &'a Entry,
    path: &'p KeyPath,
}

impl<'de, 'a, 'p> de::EnumAccess<'de> for MapEnum<'a, 'p> {
    type Error = DeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), DeError> {
        let text = self.entry.key.as_text().unwrap_or_default();
        let path = self.path.key(text);
        let word: de::value::StrDeserializer<'_, DeError> = text.into_deserializer();
        let value = seed
            .deserialize(word)
            .map_err(|e| e.at(&self.entry.key, &path))?;
        Ok((
            value,
            NodeDe {
                node: &self.entry.value,
                path,
            },
        ))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        if self.node.is_null() {
            Ok(())
        } else {
            Err(DeError::invalid_type(self.unexpected(), &"nothing").at(self.node, &self.path))
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        size: u32,
        #[serde(default)]
        ratio: f64,
        #[serde(default)]
        on: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind2 {
        RoundRobin,
        LeastRequest,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        kind: Option<Kind2>,
    }

    fn de<T: de::DeserializeOwned>(text: &str) -> Result<T, DeError> {
        let doc = crate::yaml::read(text).expect("valid yaml");
        from_node(&doc.root.expect("root"), KeyPath::root())
    }

    #[test]
    fn reads_values_and_text() {
        let out: Outer = de(
            "name: 42\nitems:\n  - {size: 3, ratio: 1}\nlabels: {a: 1, b: x}\n\
                             kind: least_request\n",
        )
        .expect("valid");
        assert_eq!(out.name, "42");
        assert_eq!(
            out.items,
            [Inner {
                size: 3,
                ratio: 1.0,
                on: false
            }]
        );
        assert_eq!(out.labels.get("a").map(String::as_str), Some("1"));
        assert_eq!(out.kind, Some(Kind2::LeastRequest));
    }

    #[test]
    fn errors_land_on_their_node() {
        let err = de::<Outer>("name: x\nitems:\n  - size: 3\n    sise: 4\n").expect_err("bad");
        assert_eq!(err.pos, Some(Pos { line: 4, column: 5 }));
        assert_eq!(
            err.path.map(|p| p.to_string()).as_deref(),
            Some("items[0].sise")
        );
        assert!(err
            .message
            .starts_with("unknown key \"sise\"; did you mean \"size\"?"));

        let err = de::<Outer>("name: x\nitems:\n  - ratio: 1\n").expect_err("bad");
        assert_eq!(err.pos, Some(Pos { line: 3, column: 5 }));
        assert!(err.message.starts_with("missing required key \"size\""));

        let err = de::<Outer>("name: x\nitems: [{size: -1}]\n").expect_err("bad");
        assert_eq!(
            err.pos,
            Some(Pos {
                line: 2,
                column: 16
            })
        );
        assert!(err.message.contains("the number -1"), "{}", err.message);

        let err = de::<Outer>("name: x\nitems: [{size: 1, on: yes}]\n").expect_err("bad");
        assert!(
            err.message.contains("write true or false"),
            "{}",
            err.message
        );

        let err = de::<Outer>("name: x\nkind: roundrobin\n").expect_err("bad");
        assert_eq!(err.pos, Some(Pos { line: 2, column: 7 }));
        assert!(
            err.message
                .starts_with("unknown value \"roundrobin\"; did you mean \"round_robin\"?"),
            "{}",
            err.message
        );

        let err = de::<Outer>("name: [a]\n").expect_err("bad");
        assert_eq!(err.message, "expected a text value, found a list");
        let err = de::<Outer>("name:\n").expect_err("bad");
        assert_eq!(
            err.message,
            "expected a text value, found nothing (an empty value)"
        );
    }

    #[test]
    fn empty_values_mean_empty_blocks() {
        let out: Outer = de("name: x\nitems:\nlabels:\n").expect("valid");
        assert!(out.items.is_empty() && out.labels.is_empty());
    }
}
