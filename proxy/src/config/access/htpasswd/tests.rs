use super::*;

fn argon2_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

#[test]
fn bcrypt_and_argon2_users_verify() {
    let bcrypt_2y = bcrypt::hash_with_result("s3cret", 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    assert!(bcrypt_2y.starts_with("$2y$"));
    let bcrypt_2b = bcrypt::hash("other", 4).unwrap();
    let argon = argon2_hash("argon-pass");
    let text = format!("# users\nalice:{bcrypt_2y}\nbob:{bcrypt_2b}\n\ncarol:{argon}\n");
    let file = Htpasswd::parse(&text).unwrap();
    assert_eq!(file.len(), 3);
    for (user, password, expected) in [
        ("alice", "s3cret", true),
        ("alice", "s3cret ", false),
        ("alice", "other", false),
        ("bob", "other", true),
        ("carol", "argon-pass", true),
        ("carol", "Argon-pass", false),
    ] {
        let hash = file.hash_of(user).unwrap();
        assert_eq!(
            verify(hash, password.as_bytes()),
            expected,
            "{user}/{password}"
        );
    }
    assert!(file.hash_of("dave").is_none());
}

#[test]
fn weak_and_broken_forms_are_refused_with_their_line() {
    let text = "a:$apr1$abc$defghijklmnopqrstuvwx.\n\
                b:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\
                c:rl0ZkEFxJj1QM\n\
                d:plaintext-password\n\
                e:$2y$10$short\n\
                no-colon\n\
                :$2y$04$abcdefghijklmnopqrstuu\n";
    let errors = Htpasswd::parse(text).unwrap_err();
    assert_eq!(errors.len(), 7, "{errors:#?}");
    assert!(
        errors[0].starts_with("line 1 (user \"a\"): MD5"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("SHA-1"), "{}", errors[1]);
    assert!(errors[2].contains("DES crypt"), "{}", errors[2]);
    assert!(errors[3].contains("plain-text"), "{}", errors[3]);
    assert!(errors[4].contains("invalid bcrypt hash"), "{}", errors[4]);
    assert_eq!(errors[5], "line 6: expected user:hash");
    assert_eq!(errors[6], "line 7: empty user name");
}

#[test]
fn a_user_listed_twice_is_an_error() {
    let hash = bcrypt::hash("x", 4).unwrap();
    let errors = Htpasswd::parse(&format!("a:{hash}\na:{hash}\n")).unwrap_err();
    assert_eq!(
        errors,
        vec!["line 2: user \"a\" is listed twice".to_string()]
    );
}
