//! Constant-time comparison of secrets. Every comparison of a MAC, a token hash or any other
//! secret-derived value in this crate goes through [`eq`]; `==` on such bytes would return at the
//! first differing byte and leak, over many tries, how much of a guess was right.
//! (Password verification compares inside `argon2`, which also uses `subtle`.)

use subtle::ConstantTimeEq;

/// `a == b` in time that depends only on the lengths, never on the contents. Lengths are not
/// secret here (MACs and hashes have fixed sizes), so unequal lengths return `false` at once.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_contents_and_lengths() {
        assert!(eq(b"", b""));
        assert!(eq(b"abc", b"abc"));
        assert!(!eq(b"abc", b"abd"));
        assert!(!eq(b"abc", b"ab"));
        assert!(!eq(b"xbc", b"abc"));
    }

    /// Guards the "constant-time compare use" requirement: the modules that compare secrets must
    /// call `ct::eq` and must not compare their secret values with `==`/`!=`.
    #[test]
    fn secret_comparisons_use_constant_time_eq() {
        let context = include_str!("context.rs");
        let refresh = include_str!("refresh.rs");
        let password = include_str!("password.rs");
        assert!(
            context.contains("ct::eq(&expected_tag, &tag)"),
            "context MAC must use ct::eq"
        );
        assert!(
            refresh.contains("ct::eq("),
            "refresh hash comparison must use ct::eq"
        );
        // argon2's PasswordVerifier compares the computed hash with subtle internally.
        assert!(
            password.contains("verify_password("),
            "password check must go through argon2"
        );
        for (name, src) in [("context.rs", context), ("refresh.rs", refresh)] {
            let code = src.split("#[cfg(test)]").next().unwrap();
            for needle in [
                "tag ==", "== tag", "tag !=", "!= tag", "hash ==", "== hash", "hash !=", "!= hash",
            ] {
                assert!(
                    !code.contains(needle),
                    "{name} compares a secret with `{needle}`"
                );
            }
        }
    }
}
