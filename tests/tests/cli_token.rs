//! `emeterai token`: a local bearer token the local gateway accepts (HS256, iss/aud of API.md).

use std::process::Command;

use emeterai::auth::local_jwt;
use emeterai_tests::cli_binary;

fn token(args: &[&str], secret: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(cli_binary());
    cmd.arg("token").args(args).env_remove("EMETERAI_LOCAL_JWT_SECRET");
    if let Some(s) = secret {
        cmd.env("EMETERAI_LOCAL_JWT_SECRET", s);
    }
    cmd.output().expect("emeterai runs")
}

#[test]
fn prints_a_token_for_the_subject_signed_with_the_local_secret() {
    let out = token(&["--sub", "alice"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let now = chrono::Utc::now().timestamp();
    let claims = local_jwt::validate(local_jwt::DEFAULT_SECRET, text.trim(), now).expect("valid token");
    assert_eq!((claims.sub.as_str(), claims.iss.as_str(), claims.aud.as_str()), ("alice", "emeterai-local", "emeterai"));
    assert!(claims.exp > now);

    let out = token(&["--sub", "bob"], Some("other-secret"));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(local_jwt::validate("other-secret", text.trim(), now).is_ok());
    assert!(local_jwt::validate(local_jwt::DEFAULT_SECRET, text.trim(), now).is_err());
}

#[test]
fn bad_arguments_exit_1_with_a_message() {
    for args in [&[][..], &["--sub"][..], &["--sub", ""][..], &["--sub", "a", "--ttl", "-5"][..], &["--sub", "a", "extra"][..]] {
        let out = token(args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}
