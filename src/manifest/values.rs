//! Leaf values with rules of their own — names, durations, interface names, addresses — each parsed once
//! into a proper type, with a JSON Schema that accepts exactly what the parser accepts.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

use super::decode::{Cx, FromNode, parse_str};
use super::yaml::Node;

/// The pattern of object names: DNS-label-like, but case is kept so the guide's `WebServices` stays.
pub const NAME_PATTERN: &str = "^[A-Za-z][A-Za-z0-9-]{0,62}$";
/// The pattern of durations: one or more `<integer><unit>` with unit ms, s, m or h (`200ms`, `1m30s`).
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";

/// An object name (`metadata.name`, members, node references).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(pub String);

impl Name {
    /// Checks the naming rule: 1–63 letters, digits and `-`, starting with a letter.
    pub fn parse(text: &str) -> Result<Name, String> {
        let first_ok = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if first_ok && rest_ok && text.len() <= 63 {
            Ok(Name(text.to_string()))
        } else {
            Err(format!(
                "invalid name \"{text}\"; valid: 1 to 63 letters, digits and '-', starting with a letter (e.g. \"WebServices\", \"ha1\")"
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromNode for Name {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        parse_str(node, cx, "invalid-name", Name::parse)
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": NAME_PATTERN,
            "description": "1 to 63 letters, digits and '-', starting with a letter; case is kept."
        })
    }
}

/// A duration written as text (`200ms`, `5s`, `2m`, `1m30s`): the units operators read without a manual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses `<integer><unit>` repeated, units `ms`, `s`, `m`, `h`.
    pub fn parse(text: &str) -> Result<Dur, String> {
        let bad = || {
            format!(
                "invalid duration \"{text}\"; valid: an integer with a unit ms, s, m or h, e.g. \"200ms\", \"5s\", \"2m\", \"1m30s\""
            )
        };
        let mut rest = text;
        let mut total = Duration::ZERO;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit_ms, len) = if rest.starts_with("ms") {
                (1, 2)
            } else if rest.starts_with('s') {
                (1_000, 1)
            } else if rest.starts_with('m') {
                (60_000, 1)
            } else if rest.starts_with('h') {
                (3_600_000, 1)
            } else {
                return Err(bad());
            };
            rest = &rest[len..];
            let ms = number.checked_mul(unit_ms).ok_or_else(bad)?;
            total = total.checked_add(Duration::from_millis(ms)).ok_or_else(bad)?;
        }
        Ok(Dur(total))
    }
}

impl fmt::Display for Dur {
    /// The shortest exact rendering in the manifest's own syntax, so canonical output reads like input.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1_000 % 60, ms % 1_000);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        if rest > 0 {
            write!(f, "{rest}ms")?;
        }
        Ok(())
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromNode for Dur {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        parse_str(node, cx, "invalid-duration", Dur::parse)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: integers with units ms, s, m, h, e.g. \"200ms\", \"5s\", \"2m\", \"1m30s\"."
        })
    }
}

/// A Linux network interface name, as the kernel accepts it (`dev_valid_name`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct IfName(pub String);

impl IfName {
    /// 1–15 bytes (IFNAMSIZ − 1), not `.` or `..`, no `/`, `:` or white space.
    pub fn parse(text: &str) -> Result<IfName, String> {
        let ok = !text.is_empty()
            && text.len() <= 15
            && text != "."
            && text != ".."
            && !text.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
        if ok {
            Ok(IfName(text.to_string()))
        } else {
            Err(format!(
                "invalid interface name \"{text}\"; valid: 1 to 15 bytes without '/', ':' or spaces (e.g. \"eth0\")"
            ))
        }
    }
}

impl FromNode for IfName {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        parse_str(node, cx, "invalid-interface", IfName::parse)
    }
}

impl JsonSchema for IfName {
    fn schema_name() -> Cow<'static, str> {
        "InterfaceName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[^/:\\s]{1,15}$",
            "not": { "enum": [".", ".."] },
            "description": "A Linux interface name: 1 to 15 bytes without '/', ':' or spaces."
        })
    }
}

/// An IP address with its prefix length (`192.0.2.10/24`), as `ip addr add` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Prefixed(pub IpNet);

impl FromNode for Prefixed {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        parse_str(node, cx, "invalid-address", |t| {
            t.parse::<IpNet>().map(Prefixed).map_err(|_| {
                format!(
                    "invalid address \"{t}\"; valid: an IPv4 or IPv6 address with its prefix length, e.g. \"192.0.2.10/24\" or \"2001:db8::10/64\""
                )
            })
        })
    }
}

impl JsonSchema for Prefixed {
    fn schema_name() -> Cow<'static, str> {
        "AddressWithPrefix".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*/[0-9]{1,3})$",
            "description": "An IPv4 or IPv6 address with prefix length, e.g. 192.0.2.10/24 or 2001:db8::10/64."
        })
    }
}

/// A plain IP address (a node's address, a probe target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Addr(pub IpAddr);

impl FromNode for Addr {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        parse_str(node, cx, "invalid-address", |t| {
            t.parse::<IpAddr>().map(Addr).map_err(|_| {
                format!("invalid address \"{t}\"; valid: an IPv4 or IPv6 address without prefix, e.g. \"192.0.2.1\"")
            })
        })
    }
}

impl JsonSchema for Addr {
    fn schema_name() -> Cow<'static, str> {
        "Address".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "anyOf": [{ "format": "ipv4" }, { "format": "ipv6" }],
            "description": "An IPv4 or IPv6 address without prefix."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_render_back() {
        for (text, ms) in [("200ms", 200), ("5s", 5_000), ("2m", 120_000), ("1m30s", 90_000), ("1h", 3_600_000)] {
            let d = Dur::parse(text).expect(text);
            assert_eq!(d.0, Duration::from_millis(ms));
            assert_eq!(d.to_string(), text);
        }
        for bad in ["", "5", "s", "5 s", "1.5s", "5sec", "-1s", "2M"] {
            assert!(Dur::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn names() {
        assert!(Name::parse("WebServices").is_ok());
        assert!(Name::parse("ha-1").is_ok());
        for bad in ["1ha", "", "a_b", "é", &"a".repeat(64)] {
            assert!(Name::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        assert!(IfName::parse("eth0").is_ok());
        assert!(IfName::parse("veth-ha1-abcdef").is_ok());
        for bad in ["", "eth0:0", "a/b", "a b", ".", "sixteen-bytes-xx"] {
            assert!(IfName::parse(bad).is_err(), "{bad}");
        }
    }
}
