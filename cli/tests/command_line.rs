//! The command line's conventions: `--help` per subcommand, `--version`, completions, and the
//! exit codes of API.md (a usage error is 1, never clap's 2, which would read as a rejection).

use std::process::{Command, Output};

fn emeterai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emeterai")).args(args).env_remove("EMETERAI_ISSUER_KEY_FILE").output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_answer_with_exit_0() {
    let version = emeterai(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(text(&version.stdout).trim(), format!("emeterai {}", env!("CARGO_PKG_VERSION")));
    for sub in ["stamp", "verify", "token", "completions", "redrive"] {
        let help = emeterai(&[sub, "--help"]);
        assert_eq!(help.status.code(), Some(0), "{sub} --help");
        assert!(text(&help.stdout).contains(&format!("Usage: emeterai {sub}")), "{sub}: {}", text(&help.stdout));
    }
    assert!(text(&emeterai(&["stamp", "--help"]).stdout).contains("--x-mm <X>"));
}

#[test]
fn usage_errors_exit_1_with_the_reason_on_stderr() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage: emeterai <COMMAND>"),
        (&["bogus"], "unrecognized subcommand 'bogus'"),
        (&["stamp", "in.pdf", "--output", "out.pdf", "--serial", "lowercase"], "invalid value 'lowercase' for '--serial <SN>'"),
        (&["stamp", "in.pdf", "--output", "out.pdf", "--serial", "0123456789ABCDEFGHIJKL", "--x-mm", "10"], "--y-mm <Y>"),
        (&["stamp", "in.pdf", "--output", "out.pdf", "--serial", "0123456789ABCDEFGHIJKL", "--x-mm", "-1", "--y-mm", "1"], "unexpected argument '-1'"),
        (&["stamp", "in.pdf", "--output", "out.pdf", "--serial", "0123456789ABCDEFGHIJKL", "--page", "0"], "invalid value '0' for '--page <N>'"),
        (&["stamp", "in.pdf", "--output", "out.pdf", "--serial", "0123456789ABCDEFGHIJKL", "--at", "yesterday"], "invalid value 'yesterday' for '--at <RFC3339>'"),
        (&["token"], "--sub <ACCOUNT>"),
        (&["token", "--sub", "alice", "--ttl", "0"], "invalid value '0' for '--ttl <SECONDS>'"),
        (&["verify", "a.pdf", "b.pdf"], "unexpected argument 'b.pdf'"),
        (&["redrive", "--queue-url", "http://127.0.0.1:1/q"], "--function-name <NAME>"),
        (&["redrive", "--queue-url", "q", "--function-name", "stamp", "--max", "0"], "invalid value '0' for '--max <N>'"),
        (&["redrive", "--queue-url", "q", "--function-name", "stamp", "--max", "10001"], "invalid value '10001' for '--max <N>'"),
        (&["completions", "cmd.exe"], "invalid value 'cmd.exe'"),
    ];
    for (args, expected) in cases {
        let out = emeterai(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(expected), "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_missing_input_is_a_failure_not_a_rejection() {
    let out = emeterai(&["verify", "/nonexistent/letter.pdf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: cannot read /nonexistent/letter.pdf"));
}

#[test]
fn completions_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = emeterai(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        for sub in ["stamp", "verify", "token", "completions", "redrive"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
}

/// `redrive` against a queue it cannot reach: exit 1 with the call that failed, no summary.
#[test]
fn redrive_of_an_unreadable_queue_is_a_failure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let endpoint = format!("http://{closed}");
    let out = Command::new(env!("CARGO_BIN_EXE_emeterai"))
        .args(["redrive", "--queue-url", &format!("{endpoint}/000000000000/dead"), "--function-name", "stamp"])
        .env("AWS_ENDPOINT_URL_SQS", &endpoint)
        .env("AWS_ENDPOINT_URL_LAMBDA", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "ap-southeast-3")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("error: sqs:ReceiveMessage on "), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}
