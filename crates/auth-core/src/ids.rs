//! Identity newtypes, parsed once where data enters (token claims, request bodies, database rows)
//! so the rest of the code cannot mix a tenant id with a user id or hold an unnormalized email.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an already-typed UUID (e.g. from a database row).
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The inner UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses the canonical hyphenated form (any case). Other UUID spellings (braced,
            /// `urn:uuid:`, simple) are refused so one id has one spelling.
            pub fn parse(s: &str) -> Result<Self, Error> {
                if s.len() != 36 {
                    return Err(Error::InvalidId);
                }
                Uuid::try_parse(s).map(Self).map_err(|_| Error::InvalidId)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id! {
    /// A tenant (organisation) id.
    TenantId
}
uuid_id! {
    /// A user id (the token's `sub`).
    UserId
}

/// A user's role. `Admin` satisfies everything `User` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An ordinary user of a tenant.
    User,
    /// A tenant administrator.
    Admin,
}

impl Role {
    /// The wire form: `"user"` or `"admin"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// Whether a caller with this role may do what `required` allows.
    pub const fn satisfies(self, required: Role) -> bool {
        matches!(
            (self, required),
            (Role::Admin, _) | (Role::User, Role::User)
        )
    }
}

impl FromStr for Role {
    type Err = Error;
    /// Exactly `user` or `admin` (case-sensitive, as stored and as issued).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::InvalidRole),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Longest email accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// An email address, trimmed and lower-cased, of a sane shape: `local@domain`, one `@`, local part
/// 1..=64 bytes, domain 1..=253 bytes of dot-separated non-empty labels, no whitespace, control
/// characters, quotes or angle brackets. It is a lookup key, not a deliverability check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Normalizes and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() || s.len() > MAX_EMAIL_LEN {
            return Err(Error::InvalidEmail);
        }
        let (local, domain) = s.split_once('@').ok_or(Error::InvalidEmail)?;
        let bad_char = |c: char| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '@' | '"' | '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '\\'
                )
        };
        if local.is_empty() || local.len() > 64 || local.chars().any(bad_char) {
            return Err(Error::InvalidEmail);
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(Error::InvalidEmail);
        }
        if domain.is_empty()
            || domain.len() > 253
            || domain.chars().any(bad_char)
            || domain
                .split('.')
                .any(|label| label.is_empty() || label.len() > 63)
        {
            return Err(Error::InvalidEmail);
        }
        Ok(Self(s))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_canonical_only() {
        let s = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(UserId::parse(s).unwrap().to_string(), s);
        assert_eq!(
            TenantId::parse(&s.to_uppercase()).unwrap().to_string(),
            s,
            "display is lower case"
        );
        for bad in [
            "",
            "x",
            "6f1c2a8e3b4d4e5f8a9b0c1d2e3f4a5b",
            "{6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b}",
            "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5g",
        ] {
            assert_eq!(UserId::parse(bad), Err(Error::InvalidId), "{bad}");
        }
        let json = serde_json::to_string(&UserId::parse(s).unwrap()).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert!(serde_json::from_str::<TenantId>("\"nope\"").is_err());
    }

    #[test]
    fn roles() {
        assert_eq!("user".parse::<Role>(), Ok(Role::User));
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        for bad in ["Admin", "ADMIN", "root", "", " user"] {
            assert_eq!(bad.parse::<Role>(), Err(Error::InvalidRole));
        }
        assert!(Role::Admin.satisfies(Role::User));
        assert!(Role::Admin.satisfies(Role::Admin));
        assert!(Role::User.satisfies(Role::User));
        assert!(!Role::User.satisfies(Role::Admin));
    }

    #[test]
    fn emails_are_normalized() {
        assert_eq!(
            Email::parse("  Alice@Example.COM \n").unwrap().as_str(),
            "alice@example.com"
        );
        assert_eq!(
            Email::parse("a.b+tag@sub.example.org").unwrap().as_str(),
            "a.b+tag@sub.example.org"
        );
        assert_eq!(
            Email::parse("Ünïcode@exämple.de").unwrap().as_str(),
            "ünïcode@exämple.de"
        );
    }

    #[test]
    fn bad_emails() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_all = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "   ",
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "a b@example.com",
            "alice@exa mple.com",
            "alice@example..com",
            "alice@.example.com",
            "alice@example.com.",
            ".alice@example.com",
            "al..ice@example.com",
            "alice.@example.com",
            "\"a\"@example.com",
            "<a@example.com>",
            "a\u{0}@example.com",
            long_local.as_str(),
            long_all.as_str(),
        ] {
            assert_eq!(Email::parse(bad), Err(Error::InvalidEmail), "{bad:?}");
        }
    }
}
